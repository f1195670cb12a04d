// The service in Deno:
//   deno run --allow-read --allow-write --allow-net --allow-env --allow-sys www/service/deno.js [options]
// (options: www/service/local.js). Deno.serve aborts request.signal when a client goes away.

import { startService } from './boot.js';
import { localSources, parseArgs } from './local.js';

const options = parseArgs(Deno.args, Deno.env.toObject());
const service = await startService({ ...localSources(options), runtime: 'deno', log: (line) => console.error(line) });
Deno.serve({ hostname: options.host, port: options.port, onListen: ({ hostname, port }) => console.error(`edgellm service on http://${hostname}:${port}/`) },
  (request) => service.fetch(request));
