// A static server for the demo and the browser tests: www/ at /, the model cache at /models/,
// models/registry.json at /registry.json, eval/ at /eval/. Sends COOP/COEP (cross-origin isolation, needed for
// threads and precise timers) and a Content-Security-Policy, and answers a single byte range
// (Range: bytes=a-b, a-, -n) with 206, as file hosts do. Loopback only.
//   node scripts/serve.mjs [--port 8080]
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { extname, join, normalize, resolve } from 'node:path';
import { homedir } from 'node:os';
import { fileURLToPath } from 'node:url';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cache = process.env.EDGELLM_CACHE ?? join(homedir(), '.cache', 'edgellm');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8', '.svg': 'image/svg+xml', '.gguf': 'application/octet-stream', '.ts': 'text/plain',
};

const SECURITY_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  // 'wasm-unsafe-eval' lets the page compile WebAssembly; nothing else may run but our files.
  // connect-src allows https downloads of models the user picks (e.g. TinyLlama, a reranker).
  // worker-src blob: is for the benchmark's peer, wllama, which starts its worker from a blob.
  'Content-Security-Policy': "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; style-src 'self'; img-src 'self' data: blob:; connect-src 'self' https:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
};

/** Map a URL path to a file, or null. `mounts`: URL prefix → directory. */
function locate(mounts, urlPath) {
  const path = decodeURIComponent(urlPath.split('?')[0]);
  for (const [prefix, dir] of mounts) {
    if (!path.startsWith(prefix)) continue;
    const rel = normalize(path.slice(prefix.length)).replace(/^(\.\.[/\\])+/, '');
    let file = join(dir, rel);
    if (!file.startsWith(dir)) return null;
    try {
      if (statSync(file).isDirectory()) file = join(file, 'index.html');
      return statSync(file).isFile() ? file : null;
    } catch {
      return null;
    }
  }
  return null;
}

/**
 * The bytes [start, end] that a Range header asks of a file of `size` bytes; null for the whole
 * file (no header, or not one valid byte range: RFC 9110 lets a server ignore those);
 * 'unsatisfiable' for a range with no byte in the file (416).
 */
function byteRange(header, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header ?? '');
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') { // bytes=-n: the last n bytes
    const n = Number(m[2]);
    return n === 0 || size === 0 ? 'unsatisfiable' : [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  if (m[2] !== '' && Number(m[2]) < start) return null;
  return start >= size ? 'unsatisfiable' : [start, m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)];
}

/**
 * Serve the demo. `isolated: false` leaves out COOP/COEP (tests of the single-thread fallback).
 * `faults(req)`, for the tests of interrupted downloads (tests/browser/storage.test.mjs), is
 * asked about each file request and may answer `{ ranges: false }` (behave as a server without
 * Range support: the whole file, 200) and `{ cutAt: n }` (a connection lost mid-file: the body
 * stops at byte n of the file and the connection closes, short of its Content-Length).
 */
export function startServer({ port = 8080, host = '127.0.0.1', extraMounts = {}, isolated = true, faults } = {}) {
  const headers = isolated ? SECURITY_HEADERS : Object.fromEntries(
    Object.entries(SECURITY_HEADERS).filter(([k]) => !k.startsWith('Cross-Origin-')),
  );
  const mounts = [
    ...Object.entries(extraMounts).map(([p, d]) => [p, resolve(repo, d)]),
    ['/models/', join(cache, 'models')],
    ['/registry.json', join(repo, 'models', 'registry.json')],
    // The answer-quality sets, for the benchmark page's quality run.
    ['/eval/', join(repo, 'eval')],
    ['/', join(repo, 'www')],
  ];
  const server = createServer((req, res) => {
    const file = locate(mounts, req.url);
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain', ...headers });
      return res.end('not found');
    }
    const { size } = statSync(file);
    const fault = faults?.(req) ?? {};
    const range = fault.ranges === false ? null : byteRange(req.headers.range, size);
    if (range === 'unsatisfiable') {
      res.writeHead(416, { 'Content-Range': `bytes */${size}`, ...headers });
      return res.end();
    }
    const [start, end] = range ?? [0, size - 1];
    res.writeHead(range ? 206 : 200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': end - start + 1,
      'Cache-Control': 'no-cache',
      ...(fault.ranges === false ? {} : { 'Accept-Ranges': 'bytes' }),
      ...(range ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
      ...headers,
    });
    if (req.method === 'HEAD') return res.end();
    if (fault.cutAt === undefined || fault.cutAt > end) return (range ? createReadStream(file, { start, end }) : createReadStream(file)).pipe(res);
    res.flushHeaders();
    const body = fault.cutAt > start ? createReadStream(file, { start, end: fault.cutAt - 1 }) : Readable.from([]);
    body.pipe(res, { end: false });
    body.on('end', () => res.socket?.end());
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => ok({ server, url: `http://${host}:${server.address().port}/` }));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const { url } = await startServer({ port: i > 0 ? Number(process.argv[i + 1]) : 8080 });
  console.log(`edgellm demo: ${url}  (Ctrl-C to stop)`);
}
