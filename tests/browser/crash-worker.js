// Test-only engine worker: the shipped one (www/engine/worker.js) plus two failures the crash
// tests (tests/browser/crash.test.mjs) set off at will, which the shipped worker has no way to
// cause: an uncaught error, which is how a crash looks from the page, and a real WebAssembly
// trap inside an engine call, which is how a Rust panic (panic = "abort" on wasm32) or an
// allocation wasm memory cannot grow for looks from worker.js.
import { Engine } from '/engine/core.js';
import '/engine/worker.js';

// (module (func (export "trap") unreachable)): what a Rust panic ends in on wasm32.
const TRAP_MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: () -> ()
  0x03, 0x02, 0x01, 0x00, // functions: one of type 0
  0x07, 0x08, 0x01, 0x04, 0x74, 0x72, 0x61, 0x70, 0x00, 0x00, // export "trap" = function 0
  0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // code: unreachable, end
]);
const trap = new WebAssembly.Instance(new WebAssembly.Module(TRAP_MODULE)).exports.trap;

// After { kind: 'test:arm-trap' }, the next tokenize() traps inside the engine call.
let armed = false;
const tokenize = Engine.prototype.tokenize;
Engine.prototype.tokenize = function (text) {
  if (armed) trap();
  return tokenize.call(this, text);
};

// Beside worker.js's own handler, which answers these messages with an error nobody waits for.
self.addEventListener('message', ({ data }) => {
  if (data?.kind === 'test:arm-trap') armed = true;
  if (data?.kind === 'test:throw') {
    setTimeout(() => {
      throw new Error('test: an uncaught error in the worker');
    });
  }
});
