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
import { loadWindow } from './lib.js';

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

function webhook(taskId: string): string {
  const data = `{"task_id":"${taskId}","status":"completed","capability":"voice","action":"clone","model":"v2","progress":100,"error":null,"credits_used":3,"created_at":1764590400,"completed_at":1764590460,"metadata":null,"audio_url":"https://sim-results.invalid/${taskId}.mp3"}`;
  return `{"type":"task.completed","timestamp":"${new Date().toISOString()}","watch_id":"wat_${taskId}","metadata":{"bench":true},"data":${data}}`;
}

function post(pool: Pool, k: number) {
  return async () => {
    const n = seq++;
    const id = `msg_raw${run}${n}`;
    const body = webhook(`raw-${run}-${n}`);
    const ts = Math.floor(Date.now() / 1000);
    const res = await pool.request({
      path: `/raw/${k % 16}`,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': signatureHeader([secret!], id, ts, body) },
      body,
    });
    await res.body.dump();
    return res.statusCode < 300;
  };
}

const receiverPid = values['receiver-pid'] ? Number(values['receiver-pid']) : undefined;
const r = await loadWindow({
  loops: pools.flatMap((p) => Array.from({ length: concurrency }, (_, k) => post(p, k))),
  warmupS: Number(values.warmup),
  durationS: Number(values.duration),
  otherPid: receiverPid,
});
await Promise.all(pools.map((p) => p.close()));
process.stdout.write(
  `READY ${JSON.stringify({
    requests: r.requests,
    seconds: r.seconds,
    postPerS: r.requests / r.seconds,
    latency: r.latency,
    errors: r.errors,
    cpu: { client: r.cpu.self, receiver: r.cpu.other, machine: r.cpu.machine },
  })}\n`,
);
process.exit(0);
