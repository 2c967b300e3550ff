// The delivery bench's ceiling: signed webhook POSTs from undici straight to the bench
// receiver, no database and no deliverer, `concurrency` loops per origin back to back on
// one keep-alive Pool per origin, for `duration` seconds. What the same receiver on the
// same box accepts when nothing else asks for CPU: the deliverer can't beat it.
// Bodies are the size of the delivery bench's (a ~480-byte task.completed webhook), signed
// as the deliverer signs them (src/delivery/sign.ts), each with a fresh webhook-id.
// Prints `READY {"requests","seconds","postPerS","latency":{…},"errors","cpu"}` when done
// (cpu: % of one core used in the window by this client, by the receiver (given
// --receiver-pid) and by the whole machine).
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { signatureHeader } from '../src/delivery/sign.js';
import { cpuJiffies, dist, procCpuSeconds } from './lib.js';

const { values } = parseArgs({
  options: {
    urls: { type: 'string' },
    concurrency: { type: 'string', default: '24' },
    duration: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '0.5' },
    'receiver-pid': { type: 'string' },
  },
});
const secret = process.env.TASKHOOK_SIGNING_SECRET;
if (!secret || !values.urls) throw new Error('--urls and TASKHOOK_SIGNING_SECRET are required');
const origins = values.urls.split(',');
const concurrency = Number(values.concurrency);
const pools = origins.map((o) => new Pool(o, { connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 }));

let seq = 0;
// (ids unique across runs: the receiver counts a webhook-id seen twice as a duplicate)
const run = Math.random().toString(36).slice(2, 8);
let counting = false;
let requests = 0;
let errors = 0;
const latencies: number[] = [];
let stop = false;

function webhook(taskId: string): string {
  const data = `{"task_id":"${taskId}","status":"completed","capability":"voice","action":"clone","model":"v2","progress":100,"error":null,"credits_used":3,"created_at":1764590400,"completed_at":1764590460,"metadata":null,"audio_url":"https://sim-results.invalid/${taskId}.mp3"}`;
  return `{"type":"task.completed","timestamp":"${new Date().toISOString()}","watch_id":"wat_${taskId}","metadata":{"bench":true},"data":${data}}`;
}

async function loop(pool: Pool, k: number) {
  while (!stop) {
    const n = seq++;
    const id = `msg_raw${run}${n}`;
    const body = webhook(`raw-${run}-${n}`);
    const ts = Math.floor(Date.now() / 1000);
    const t0 = performance.now();
    try {
      const res = await pool.request({
        path: `/raw/${k % 16}`,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': signatureHeader([secret!], id, ts, body) },
        body,
      });
      await res.body.dump();
      if (res.statusCode >= 300) errors++;
    } catch {
      errors++;
    }
    if (counting) {
      requests++;
      if ((requests & 7) === 0) latencies.push(performance.now() - t0);
    }
  }
}

const loops = pools.flatMap((p) => Array.from({ length: concurrency }, (_, k) => loop(p, k)));
await new Promise((r) => setTimeout(r, Number(values.warmup) * 1000));
const receiverPid = values['receiver-pid'] ? Number(values['receiver-pid']) : undefined;
const cpu = () => ({ self: procCpuSeconds(process.pid) ?? NaN, receiver: receiverPid ? (procCpuSeconds(receiverPid) ?? NaN) : NaN, machine: cpuJiffies()?.busy ?? NaN });
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
await Promise.all(pools.map((p) => p.close()));
const pct = (a: number, b: number) => ((b - a) / seconds) * 100;
process.stdout.write(
  `READY ${JSON.stringify({
    requests: counted,
    seconds,
    postPerS: counted / seconds,
    latency: dist(latencies),
    errors,
    cpu: { client: pct(cpu0.self, cpu1.self), receiver: pct(cpu0.receiver, cpu1.receiver), machine: (cpu1.machine - cpu0.machine) / seconds },
  })}\n`,
);
process.exit(0);
