// Raw capacity, the ceiling: `concurrency` loops, each doing undici.request GETs of
// /api/v2/tasks/:id back to back on one keep-alive Pool (one connection per loop),
// reading each body as a poller would, for `duration` seconds. Tasks are
// `${prefix}0 … ${prefix}{tasks-1}`, created beforehand and never finishing.
// Prints `READY {"requests","seconds","getPerS","latency":{…},"errors","cpu"}` when done
// (cpu: % of one core used in the window by this client, by the sim (given --sim-pid) and by the whole machine).
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { loadWindow } from './lib.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    prefix: { type: 'string', default: 'raw-' },
    tasks: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '64' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'sim-pid': { type: 'string' },
  },
});
const base = values.url!;
const tasks = Number(values.tasks);
const concurrency = Number(values.concurrency);
const headers = { authorization: `Bearer ${process.env.UPSTREAM_API_KEY ?? 'sk_test'}`, accept: 'application/json' };
const pool = new Pool(base, { connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 });

let i = 0;
const once = async () => {
  const id = `${values.prefix}${i++ % tasks}`;
  const res = await pool.request({ path: `/api/v2/tasks/${id}`, method: 'GET', headers });
  const text = await res.body.text();
  return res.statusCode === 200 && text.length > 0;
};
const simPid = values['sim-pid'] ? Number(values['sim-pid']) : undefined;
const r = await loadWindow({ loops: Array.from({ length: concurrency }, () => once), warmupS: Number(values.warmup), durationS: Number(values.duration), otherPid: simPid });
await pool.close();
process.stdout.write(`READY ${JSON.stringify({ requests: r.requests, seconds: r.seconds, getPerS: r.requests / r.seconds, latency: r.latency, errors: r.errors, cpu: { client: r.cpu.self, sim: r.cpu.other, machine: r.cpu.machine } })}\n`);
process.exit(0);
