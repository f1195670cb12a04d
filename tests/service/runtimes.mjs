// Start the HTTP service (www/service/) in workerd, Deno or Node on a loopback port, the way a
// user does (README, "The service"), and stop it. The model, embedder and index are the fetched
// ones in ~/.cache/edgellm/models; the FAQ cache persists in a fresh temporary folder.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';

const ROOT = new URL('../../', import.meta.url).pathname;
export const MODELS = join(process.env.EDGELLM_CACHE ?? join(homedir(), '.cache', 'edgellm'), 'models');
export const INDEX = join(MODELS, 'edgellm-index.json');
const BIN = join(ROOT, 'node_modules', '.bin');

/** The sample corpus's index where the service reads it (scripts/build-index.mjs), built once. */
export function ensureIndex() {
  if (!existsSync(INDEX)) execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-index.mjs')], { stdio: ['ignore', 'ignore', 'inherit'] });
  return JSON.parse(readFileSync(INDEX, 'utf8'));
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** The command line that starts the service in `runtime` on `port`, with its state in `state`. */
function command(runtime, port, state, config = join(ROOT, 'www/service/workerd.capnp')) {
  const local = ['--port', String(port), '--models', MODELS, '--model-id', 'smollm2-135m', '--cache', join(state, 'answer-cache.json')];
  switch (runtime) {
    case 'node':
      return [process.execPath, [join(ROOT, 'www/service/node.js'), ...local]];
    case 'deno':
      return [join(BIN, 'deno'), ['run', '--allow-read', '--allow-write', '--allow-net=127.0.0.1', '--allow-env', '--allow-sys',
        '--no-remote', '--no-npm', '--no-lock', join(ROOT, 'www/service/deno.js'), ...local]];
    case 'workerd':
      return [join(BIN, 'workerd'), ['serve', config, '--directory-path', `files=${MODELS}`,
        '--directory-path', `state=${state}`, '--socket-addr', `http=127.0.0.1:${port}`]];
    default:
      throw new Error(`unknown runtime ${runtime}`);
  }
}

/**
 * Start the service; resolves once GET /health answers 200 (in workerd that first request is
 * what loads the model). `config`: another workerd config than the shipped one. Returns { url, pid, health, logs, stop() }.
 */
export async function startService(runtime, { timeoutMs = 120_000, config } = {}) {
  const port = await freePort();
  const state = mkdtempSync(join(tmpdir(), `edgellm-${runtime}-`));
  const [bin, args] = command(runtime, port, state, config);
  const child = spawn(bin, args, {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DENO_DIR: join(state, 'deno'), DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
  });
  const logs = [];
  for (const stream of [child.stdout, child.stderr]) stream.on('data', (d) => logs.push(String(d)));
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) throw new Error(`${runtime} exited (${JSON.stringify(exited)}) before serving:\n${logs.join('')}`);
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`${runtime} did not serve within ${timeoutMs} ms:\n${logs.join('')}`); }
    const response = await fetch(`${url}/health`).catch(() => null);
    if (response?.ok) {
      return {
        runtime, url, pid: child.pid, state, logs, health: await response.json(),
        exited: () => exited,
        stop: () => new Promise((resolve) => { if (exited) return resolve(); child.once('exit', resolve); child.kill('SIGTERM'); }),
      };
    }
    await response?.body?.cancel();
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Resident memory of a process (kB → bytes), and its peak, from /proc. */
export function processMemory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kB = (key) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1]) * 1024;
  return { rssBytes: kB('VmRSS'), peakRssBytes: kB('VmHWM') };
}

/** POST a JSON body; resolves to { status, headers, body } with the body parsed. */
export async function post(url, path, body, init = {}) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), ...init,
  });
  const text = await response.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: response.status, headers: response.headers, body: parsed };
}

/**
 * What an OpenAI client does with a streamed chat completion: read the SSE `data:` lines until
 * `[DONE]`, parsing each as a chunk. `stopAfter` chunks, it cancels (a client going away).
 */
export async function streamChat(url, body, { stopAfter = Infinity } = {}) {
  const controller = new AbortController();
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }), signal: controller.signal,
  });
  if (!response.headers.get('content-type')?.startsWith('text/event-stream')) {
    return { status: response.status, error: await response.json(), chunks: [], done: false };
  }
  const chunks = [];
  let done = false;
  let buffered = '';
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  try {
    while (!done) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buffered += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data: ')) continue;
          const data = line.slice(6);
          if (data === '[DONE]') { done = true; break; }
          chunks.push(JSON.parse(data));
        }
      }
      if (chunks.length >= stopAfter) {
        controller.abort();
        break;
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
  }
  return { status: response.status, chunks, done, text: chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join('') };
}
