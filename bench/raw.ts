// Raw capacity, the ceiling: `concurrency` loops, each doing undici.request GETs of
// /api/v2/tasks/:id back to back on one keep-alive Pool (one connection per loop),
// reading each body as a poller would, for `duration` seconds. Tasks are
// `${prefix}0 … ${prefix}{tasks-1}`, created beforehand and never finishing.
// Prints `READY {"requests","seconds","getPerS","latency":{…},"errors","cpu"}` when done
// (cpu: % of one core used in the window by this client, by the sim (given --sim-pid) and by the whole machine).
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { cpuJiffies, dist, procCpuSeconds } from './lib.js';

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
let counting = false;
let requests = 0;
let errors = 0;
const latencies: number[] = [];
let stop = false;

async function loop() {
  while (!stop) {
    const id = `${values.prefix}${i++ % tasks}`;
    const t0 = performance.now();
    try {
      const res = await pool.request({ path: `/api/v2/tasks/${id}`, method: 'GET', headers });
      const text = await res.body.text();
      if (res.statusCode !== 200 || text.length === 0) errors++;
    } catch {
      errors++;
    }
    if (counting) {
      requests++;
      if ((requests & 7) === 0) latencies.push(performance.now() - t0); // a sample is enough
    }
  }
}

const loops = Array.from({ length: concurrency }, loop);
await new Promise((r) => setTimeout(r, Number(values.warmup) * 1000));
const simPid = values['sim-pid'] ? Number(values['sim-pid']) : undefined;
const cpu = () => ({ self: procCpuSeconds(process.pid) ?? NaN, sim: simPid ? (procCpuSeconds(simPid) ?? NaN) : NaN, machine: cpuJiffies()?.busy ?? NaN });
const cpu0 = cpu();
counting = true;
const t0 = performance.now();
await new Promise((r) => setTimeout(r, Number(values.duration) * 1000));
counting = false;
const seconds = (performance.now() - t0) / 1000;
const counted = requests;
const cpu1 = cpu();
stop = true;
await Promise.all(loops);
await pool.close();
process.stdout.write(`READY ${JSON.stringify({ requests: counted, seconds, getPerS: counted / seconds, latency: dist(latencies), errors, cpu: { client: ((cpu1.self - cpu0.self) / seconds) * 100, sim: ((cpu1.sim - cpu0.sim) / seconds) * 100, machine: (cpu1.machine - cpu0.machine) / seconds } })}\n`);
process.exit(0);
