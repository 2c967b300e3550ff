// Baseline (c): the same job on BullMQ 6 (ioredis 6) and the machine's Redis, the DIY build
// people reach for when they already run Redis. One `poll` job per task: its handler GETs the
// task; not terminal → the next poll is a delayed job, 3–6 s (× scale) ahead; terminal → it
// adds a `deliver` job, whose handler signs (standardwebhooks) and POSTs the webhook (a
// non-2xx throws, so BullMQ retries it: 5 attempts, 1 s apart). Every job is removed on
// completion (as a production app sets it, or Redis fills up).
// Tuned, not naive: `workers` Worker instances on `poll` with `concurrency` jobs in flight each
// (BullMQ's own knob for I/O-bound handlers); `deliver-workers` × `deliver-concurrency` on `deliver`.
// The next poll is scheduled one of two ways (`--reschedule`):
//   add   (default) queue.add('poll', data, { delay }) — a new job per poll, as most apps write it
//   move  job.moveToDelayed(due) + DelayedError — the same job goes back to the delayed set
//         (BullMQ's "step job" pattern: one script instead of an add plus a completion)
// Durability is Redis's: on this machine RDB and AOF are both off (`save ""`, appendonly no),
// so a Redis restart loses every watch — flattering for BullMQ next to the Postgres builds.
// Driven over IPC like naive.ts / pgboss.ts:
//   {type:'watch', ids, callbacks, spreadMs?} → {type:'watching', n}: first polls 2 s × scale (+ U[0, spreadMs])
//   {type:'forget'}                → {type:'forgot'}: waiting and delayed poll jobs removed, active ones end unpolled
//   {type:'stats'}                 → {type:'stats', polls, errors, delivered, failed}
// Redis unreachable → prints `READY {"skip": "<why>"}` and exits 0 (the orchestrator skips it).
// Keys live under a prefix of their own per process (the machine's Redis is shared), removed on exit.
// Usage (forked): node --import tsx bench/bullmq.ts --redis URL --upstream URL --scale S [--workers W --concurrency C ...]
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Webhook } from 'standardwebhooks';
import { FIRST_POLL_MS, baselineStats, deliverJob, nextPollMs, pollTerminal, serveBaseline, type DeliverJob, type PollJob } from './lib.js';

const { values } = parseArgs({
  options: {
    redis: { type: 'string', default: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    upstream: { type: 'string' },
    scale: { type: 'string', default: '1' },
    workers: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '256' },
    'deliver-workers': { type: 'string', default: '1' },
    'deliver-concurrency': { type: 'string', default: '64' },
    reschedule: { type: 'string', default: 'add' },
  },
});
const upstream = values.upstream!;
const scale = Number(values.scale);
const redisUrl = values.redis!;
const move = values.reschedule === 'move';
const wh = new Webhook(process.env.TASKHOOK_SIGNING_SECRET!);

// Redis absent (a user's machine without it): say so and leave; the bench goes on without BullMQ.
// Its pid (INFO server), when it runs on this machine, lets the bench count its CPU.
let redisPid: number | undefined;
{
  const probe = new Redis(redisUrl, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let cause = '';
  probe.on('error', (err) => (cause ||= err.message)); // the socket's reason (ECONNREFUSED …), reported below
  try {
    await probe.connect();
    const info = await probe.info('server');
    const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(new URL(redisUrl).hostname);
    if (local) redisPid = Number(/^process_id:(\d+)/m.exec(info)?.[1]) || undefined;
    probe.disconnect();
  } catch (err) {
    probe.disconnect();
    process.stdout.write(`READY ${JSON.stringify({ pid: process.pid, skip: `no Redis at ${redisUrl} (${cause || String((err as Error).message ?? err)})` })}\n`);
    process.exit(0);
  }
}

let generation = 0;
const stats = baselineStats();

// BullMQ's workers need maxRetriesPerRequest: null; one connection shared by the queues and
// the workers (each Worker duplicates it for its blocking fetch).
const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
connection.on('error', (err) => {
  stats.errors++;
  process.stderr.write(`redis error: ${err.message}\n`);
});
const prefix = `taskhook-bench-${process.pid}-${randomBytes(3).toString('hex')}`;
const pollQueue = new Queue<PollJob>('poll', { connection, prefix, defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });
const deliverQueue = new Queue<DeliverJob>('deliver', {
  connection,
  prefix,
  defaultJobOptions: { attempts: 5, backoff: { type: 'fixed', delay: 1_000 }, removeOnComplete: true, removeOnFail: 1_000 },
});

async function pollOne(job: Job<PollJob>, token?: string): Promise<void> {
  const d = job.data;
  if (d.gen !== generation) return;
  const task = await pollTerminal(upstream, d.taskId, stats);
  if (task) {
    await deliverQueue.add('deliver', { watchId: d.watchId, callback: d.callback, task });
    return;
  }
  const delay = nextPollMs(scale);
  if (move) {
    await job.moveToDelayed(Date.now() + delay, token);
    throw new DelayedError();
  }
  await pollQueue.add('poll', d, { delay });
}

const workers: Worker[] = [];
const onWorkerError = (err: Error) => {
  stats.errors++;
  process.stderr.write(`bullmq worker error: ${err.message}\n`);
};
for (let i = 0; i < Number(values.workers); i++) {
  workers.push(new Worker<PollJob>('poll', pollOne, { connection, prefix, concurrency: Number(values.concurrency) }).on('error', onWorkerError));
}
for (let i = 0; i < Number(values['deliver-workers']); i++) {
  workers.push(new Worker<DeliverJob>('deliver', (job) => deliverJob(wh, job.data, `msg_${job.id}`, stats), { connection, prefix, concurrency: Number(values['deliver-concurrency']) }).on('error', onWorkerError));
}
await Promise.all(workers.map((w) => w.waitUntilReady()));

serveBaseline({
  stats,
  async watch(ids, callbacks, spread) {
    const first = Date.now() + FIRST_POLL_MS * scale;
    for (let i = 0; i < ids.length; i += 1000) {
      await pollQueue.addBulk(
        ids.slice(i, i + 1000).map((taskId, j) => ({
          name: 'poll',
          data: { gen: generation, watchId: `bmq_${taskId}`, taskId, callback: callbacks[(i + j) % callbacks.length]! },
          opts: { delay: Math.max(0, first + Math.random() * spread - Date.now()) },
        })),
      );
    }
  },
  async forget() {
    generation++;
    await pollQueue.drain(true);
  },
});

/** Leaves nothing in the machine's Redis: every key under this process's prefix goes. */
async function removeKeys(): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 5_000).unref();
  void Promise.allSettled(workers.map((w) => w.close(true)))
    .then(() => Promise.allSettled([pollQueue.close(), deliverQueue.close()]))
    .then(removeKeys)
    .catch((err) => process.stderr.write(`bullmq cleanup: ${String(err)}\n`))
    .finally(() => {
      connection.disconnect();
      process.exit(0);
    });
};
process.on('disconnect', stop);
process.on('SIGTERM', stop);
process.stdout.write(`READY ${JSON.stringify({ pid: process.pid, prefix, storePid: redisPid })}\n`);
