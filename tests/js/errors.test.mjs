// The one error catalogue (www/engine/errors.js) against everything that creates or names codes:
// the Rust core's ErrorCode, the codes JavaScript uses in www/, index.d.ts and README.md.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ERROR_CODES, RUST_ERROR_CODES, JS_ERROR_CODES, EdgeLLMError, edgeError } from '../../www/engine/errors.js';
import { serializeError, deserializeError } from '../../www/engine/protocol.js';
import { Engine, EdgeLLMError as ExportedEdgeLLMError, ERROR_CODES as EXPORTED_CODES } from '../../www/engine/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (path) => readFileSync(join(root, path), 'utf8');
const codes = Object.keys(ERROR_CODES);

/** The `ErrorCode` variants of src/error.rs and the code `as_str` gives each, in enum order. */
function rustErrorCodes() {
  const source = read('src/error.rs');
  const body = source.match(/pub enum ErrorCode \{([\s\S]*?)\n\}/)?.[1];
  assert.ok(body, 'src/error.rs: no `pub enum ErrorCode { … }`');
  const variants = body.split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('//') && !line.startsWith('#'))
    .map((line) => line.replace(/,$/, ''));
  for (const v of variants) assert.match(v, /^[A-Z][A-Za-z0-9]*$/, `src/error.rs: unexpected line in ErrorCode: ${v}`);
  const asStr = source.match(/fn as_str\(self\)[\s\S]*?match self \{([\s\S]*?)\n\s*\}/)?.[1];
  assert.ok(asStr, 'src/error.rs: no `fn as_str(self)` with a `match self`');
  const arms = new Map([...asStr.matchAll(/Self::(\w+)\s*=>\s*"([^"]+)"/g)].map(([, variant, code]) => [variant, code]));
  assert.deepEqual([...arms.keys()].sort(), [...variants].sort(), 'ErrorCode::as_str must have one arm per variant');
  return variants.map((v) => arms.get(v));
}

/** Source files under `dir` (relative to the repository) with one of `exts`, skipping build output. */
function sourceFiles(dir, exts) {
  const skip = new Set(['pkg', 'pkg-threads', 'pkg-onnx', 'vendor', 'node_modules', 'target']);
  const out = [];
  const walk = (abs) => {
    for (const entry of readdirSync(abs, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (!skip.has(entry.name)) walk(join(abs, entry.name));
      } else if (exts.some((ext) => entry.name.endsWith(ext))) {
        out.push(relative(root, join(abs, entry.name)));
      }
    }
  };
  walk(join(root, dir));
  return out;
}

const jsSources = sourceFiles('www', ['.js', '.mjs']).filter((f) => f !== join('www', 'engine', 'errors.js'));

/** Every code string a www/ source gives an error: edgeError('x', new EdgeLLMError('x', code: 'x', .code = 'x'. */
function codesUsedInJs() {
  const patterns = [
    /\bedgeError\(\s*['"`]([^'"`]+)['"`]/g,
    /\bnew EdgeLLMError\(\s*['"`]([^'"`]+)['"`]/g,
    /\bcode:\s*['"`]([^'"`]+)['"`]/g,
    /\.code\s*=\s*['"`]([^'"`]+)['"`]/g,
  ];
  const used = new Map(); // code → files
  for (const file of jsSources) {
    const text = read(file);
    for (const pattern of patterns) {
      for (const [, code] of text.matchAll(pattern)) used.set(code, [...(used.get(code) ?? []), file]);
    }
  }
  return used;
}

/** README's table of codes, rendered from the catalogue. */
function renderTable() {
  const cell = (text) => text.replaceAll('|', '\\|');
  return [
    '| code | from | what happened | what to do |',
    '|---|---|---|---|',
    ...Object.entries(ERROR_CODES).map(([code, { origin, what, action }]) => `| \`${code}\` | ${origin} | ${cell(what)} | ${cell(action)} |`),
  ].join('\n');
}

test('errors: every Rust ErrorCode is in the catalogue, marked as from Rust, and nothing else is', () => {
  const rust = rustErrorCodes();
  assert.ok(rust.length >= 15, `parsed only ${rust.length} codes from src/error.rs`);
  for (const code of rust) assert.equal(ERROR_CODES[code]?.origin, 'rust', `${code} (src/error.rs) must be in ERROR_CODES with origin 'rust'`);
  assert.deepEqual(RUST_ERROR_CODES, rust, "ERROR_CODES' Rust codes must mirror src/error.rs, in its order");
  assert.deepEqual([...RUST_ERROR_CODES, ...JS_ERROR_CODES].sort(), [...codes].sort());
  assert.ok(Object.isFrozen(ERROR_CODES) && codes.every((c) => Object.isFrozen(ERROR_CODES[c])), 'the catalogue is frozen');
  assert.equal(EXPORTED_CODES, ERROR_CODES, 'index.js exports the catalogue');
  assert.equal(ExportedEdgeLLMError, EdgeLLMError);
});

test('errors: each entry says what happened and what to do, in one line', () => {
  const origins = new Set(['rust', 'engine', 'storage', 'retrieval', 'prompt', 'documents', 'service']);
  for (const [code, entry] of Object.entries(ERROR_CODES)) {
    assert.match(code, /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/, `${code}: codes are snake_case`);
    assert.deepEqual(Object.keys(entry).sort(), ['action', 'origin', 'what'], code);
    assert.ok(origins.has(entry.origin), `${code}: unknown origin ${entry.origin}`);
    for (const key of ['what', 'action']) {
      assert.ok(typeof entry[key] === 'string' && entry[key].length > 5 && !entry[key].includes('\n'), `${code}.${key} must be one line`);
    }
  }
});

test('errors: every code the wasm glue sets by hand is in the catalogue', () => {
  // wasm/src/lib.rs and onnx/src/wasm.rs use `code.as_str()`, and onnx also sets "busy" directly.
  for (const file of ['wasm/src/lib.rs', 'onnx/src/wasm.rs']) {
    for (const [, code] of read(file).matchAll(/&"code"\.into\(\),\s*&"([^"]+)"\.into\(\)/g)) {
      assert.ok(Object.hasOwn(ERROR_CODES, code), `${file} sets code '${code}', which ERROR_CODES lacks`);
    }
  }
});

test('errors: every code used in www/ is in the catalogue, and every JS-only code is used', () => {
  const used = codesUsedInJs();
  for (const expected of ['not_loaded', 'busy', 'worker_crashed', 'empty_query', 'context_budget', 'invalid_request']) {
    assert.ok(used.has(expected), `the scan of www/ found no '${expected}': is the pattern still right?`);
  }
  for (const [code, files] of used) {
    assert.ok(Object.hasOwn(ERROR_CODES, code), `'${code}' (in ${[...new Set(files)].join(', ')}) is not in ERROR_CODES`);
  }
  // internal_error is serializeError's default and busy is also set by onnx/src/wasm.rs: look for the bare string.
  const everything = jsSources.map(read).join('\n') + read('onnx/src/wasm.rs');
  for (const code of JS_ERROR_CODES) {
    assert.ok(everything.includes(`'${code}'`) || everything.includes(`"${code}"`), `'${code}' is in ERROR_CODES but nothing creates it`);
  }
});

test('errors: JavaScript builds coded errors through the catalogue only', () => {
  const offenders = [];
  for (const file of jsSources.filter((f) => /^www[\\/](engine|rag)[\\/]/.test(f))) {
    read(file).split('\n').forEach((line, i) => {
      if (/Object\.assign\(\s*new \w*Error\(/.test(line) || /name:\s*'EdgeLLMError'/.test(line) || /\.code\s*=\s*'/.test(line)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(offenders, [], 'use edgeError(code, message) from www/engine/errors.js');
});

test('errors: errors.js imports nothing, and www/rag/ imports no engine module but it', () => {
  assert.doesNotMatch(read('www/engine/errors.js'), /^\s*import\b|\bimport\(/m);
  for (const file of sourceFiles('www/rag', ['.js'])) {
    for (const [, spec] of read(file).matchAll(/^\s*import\b[^'"]*['"]([^'"]+)['"]/gm)) {
      assert.ok(spec.startsWith('./') || spec.startsWith('../vendor/') || spec === '../engine/errors.js', `${file} imports ${spec}: www/rag/ stays pure`);
    }
  }
});

test("errors: index.d.ts's EdgeLLMErrorCode union equals the catalogue's codes", () => {
  const union = read('www/engine/index.d.ts').match(/export type EdgeLLMErrorCode =([\s\S]*?);/)?.[1];
  assert.ok(union, 'www/engine/index.d.ts: no `export type EdgeLLMErrorCode = …;`');
  const listed = [...union.replace(/\/\/.*$/gm, '').matchAll(/'([^']+)'/g)].map(([, code]) => code);
  assert.equal(new Set(listed).size, listed.length, 'a code is listed twice in EdgeLLMErrorCode');
  assert.deepEqual([...listed].sort(), [...codes].sort());
});

test('errors: README.md has the table of every code, as the catalogue renders it', () => {
  const readme = read('README.md');
  const table = renderTable();
  assert.ok(readme.includes(table), `README.md's error table is out of date; it should read:\n\n${table}\n`);
});

test('errors: edgeError makes EdgeLLMErrors and refuses unknown codes', () => {
  const cause = new Error('underneath');
  const e = edgeError('not_loaded', 'no model is loaded', { cause, details: { what: 'model' } });
  assert.ok(e instanceof Error && e instanceof EdgeLLMError);
  assert.deepEqual([e.name, e.code, e.message, e.cause, e.details], ['EdgeLLMError', 'not_loaded', 'no model is loaded', cause, { what: 'model' }]);
  assert.equal('details' in edgeError('busy', 'x'), false);
  assert.throws(() => edgeError('not_lodaed', 'typo'), (error) => error instanceof TypeError && /unknown error code "not_lodaed"/.test(error.message));
  assert.throws(() => edgeError('toString', 'inherited'), TypeError);
  // Plain errors are not EdgeLLMErrors, whatever their code.
  assert.equal(Object.assign(new Error('x'), { code: 'busy' }) instanceof EdgeLLMError, false);
});

test('errors: the worker protocol rebuilds an EdgeLLMError with the same code', () => {
  for (const code of ['invalid_gguf', 'not_loaded', 'empty_query']) {
    const copy = deserializeError(structuredClone(serializeError(edgeError(code, `failed: ${code}`))));
    assert.ok(copy instanceof EdgeLLMError && copy instanceof Error);
    assert.deepEqual([copy.name, copy.code, copy.message], ['EdgeLLMError', code, `failed: ${code}`]);
  }
  const plain = deserializeError(serializeError(new TypeError('x is not a function')));
  assert.deepEqual([plain.name, plain.code, plain.message, plain.details], ['EdgeLLMError', 'internal_error', 'x is not a function', { name: 'TypeError' }]);
  assert.equal(serializeError(new DOMException('cannot clone', 'DataCloneError')).code, 'internal_error');
  const abort = deserializeError(serializeError(new DOMException('the generation was aborted', 'AbortError')));
  assert.ok(abort instanceof DOMException && abort.name === 'AbortError');
});

test('errors: a real wasm error and the engine state errors carry catalogue codes', async () => {
  const engine = new Engine();
  await assert.rejects(engine.load(new Uint8Array(10)), (e) => {
    assert.ok(e instanceof Error && e instanceof EdgeLLMError, `not an EdgeLLMError: ${e}`);
    assert.equal(e.name, 'EdgeLLMError');
    assert.equal(e.code, 'invalid_gguf');
    assert.equal(ERROR_CODES[e.code].origin, 'rust');
    return true;
  });
  await assert.rejects(engine.load('not bytes'), (e) => e instanceof EdgeLLMError && e.code === 'invalid_request');
  await assert.rejects(engine.info(), (e) => e instanceof EdgeLLMError && e.code === 'not_loaded' && ERROR_CODES[e.code].origin === 'engine');
});
