// The service in Node (the fallback where neither workerd nor Deno is at hand):
//   node www/service/node.js [options]          (options: www/service/local.js)
// node:http carries the same fetch handler: each request becomes a Request whose signal aborts
// when the client goes away, and the Response's body is streamed back as it is produced.

import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import { startService } from './boot.js';
import { localSources, parseArgs } from './local.js';

const options = parseArgs(process.argv.slice(2), process.env);
const service = await startService({ ...localSources(options), runtime: 'node', log: (line) => console.error(line) });

const server = createServer(async (req, res) => {
  const gone = new AbortController();
  res.on('close', () => { if (!res.writableFinished) gone.abort(); });
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  const request = new Request(`http://${req.headers.host ?? 'localhost'}${req.url}`, {
    method: req.method,
    headers: Object.entries(req.headers).flatMap(([k, v]) => [v].flat().map((x) => [k, x])),
    body: hasBody ? Readable.toWeb(req) : undefined,
    duplex: hasBody ? 'half' : undefined,
    signal: gone.signal,
  });
  const response = await service.fetch(request);
  // A body the service refused unread (413) would be taken for the next request on a kept-alive
  // connection: close this one instead.
  const headers = Object.fromEntries(response.headers);
  if (hasBody && !req.complete) headers.connection = 'close';
  res.writeHead(response.status, headers);
  if (!response.body) return res.end();
  const reader = response.body.getReader();
  gone.signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      res.write(value);
    }
  } catch {
    // The client went away mid-stream: the cancel above has ended the generation.
  }
  res.end();
});
server.listen(options.port, options.host, () => console.error(`edgellm service on http://${options.host}:${server.address().port}/`));
