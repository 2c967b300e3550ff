// Baseline (b): the same job on pg-boss 10, the usual Postgres job queue for Node.
// One `poll` job per task: its handler GETs the task; not terminal → it inserts the
// next `poll` job with startAfter = now + 3–6 s (× scale); terminal → it inserts a
// `deliver` job, whose handler signs (standardwebhooks) and POSTs the webhook (a non-2xx
// throws, so pg-boss retries it). Durable like taskhook: every step is a row in Postgres.
// Tuned, not naive: `workers` work() loops per queue, each fetching `batch` jobs per
// round at the minimum polling interval pg-boss allows (0.5 s), the batch worked
// concurrently and the follow-up jobs inserted with one insert() per batch.
// Driven over IPC like naive.ts:
//   {type:'watch', ids, callbacks, spreadMs?} → {type:'watching', n}: first polls 2 s × scale (+ U[0, spreadMs])
//   {type:'forget'}                → {type:'forgot'}: queued poll jobs purged, older ones end unpolled
//   {type:'stats'}                 → {type:'stats', polls, errors, delivered, failed}
// Usage (forked): node --import tsx bench/pgboss.ts --database URL --upstream URL --scale S [--workers W --batch B]
import { parseArgs } from 'node:util';
import PgBoss from 'pg-boss';
import { Webhook } from 'standardwebhooks';
import { FIRST_POLL_MS, baselineStats, deliverJob, nextPollMs, pollTerminal, serveBaseline, type DeliverJob, type PollJob } from './lib.js';

const { values } = parseArgs({
  options: {
    database: { type: 'string' },
    upstream: { type: 'string' },
    scale: { type: 'string', default: '1' },
    workers: { type: 'string', default: '4' },
    batch: { type: 'string', default: '100' },
    'deliver-workers': { type: 'string', default: '2' },
    'deliver-batch': { type: 'string', default: '50' },
    pool: { type: 'string', default: '20' },
  },
});
const upstream = values.upstream!;
const scale = Number(values.scale);
const wh = new Webhook(process.env.TASKHOOK_SIGNING_SECRET!);

let generation = 0;
const stats = baselineStats();

const boss = new PgBoss({ connectionString: values.database!, max: Number(values.pool), schema: 'pgboss', schedule: false });
boss.on('error', (err) => {
  stats.errors++;
  process.stderr.write(`pg-boss error: ${String((err as Error).message ?? err)}\n`);
});
await boss.start();
await boss.createQueue('poll');
await boss.createQueue('deliver', { name: 'deliver', retryLimit: 5, retryDelay: 1 });

async function pollOne(job: PgBoss.Job<PollJob>): Promise<PgBoss.JobInsert | undefined> {
  if (job.data.gen !== generation) return undefined;
  const task = await pollTerminal(upstream, job.data.taskId, stats);
  if (task) return { name: 'deliver', data: { watchId: job.data.watchId, callback: job.data.callback, task } satisfies DeliverJob, retryLimit: 5, retryDelay: 1 };
  return { name: 'poll', data: job.data, startAfter: new Date(Date.now() + nextPollMs(scale)) };
}

const pollOpts = { batchSize: Number(values.batch), pollingIntervalSeconds: 0.5 };
for (let i = 0; i < Number(values.workers); i++) {
  await boss.work<PollJob>('poll', pollOpts, async (jobs) => {
    const next = (await Promise.all(jobs.map(pollOne))).filter((j) => j !== undefined);
    if (next.length) await boss.insert(next);
  });
}
const deliverOpts = { batchSize: Number(values['deliver-batch']), pollingIntervalSeconds: 0.5 };
for (let i = 0; i < Number(values['deliver-workers']); i++) {
  await boss.work<DeliverJob>('deliver', deliverOpts, async (jobs) => {
    const results = await Promise.allSettled(jobs.map((job) => deliverJob(wh, job.data, `msg_${job.id}`, stats)));
    const bad = results.filter((r) => r.status === 'rejected').length;
    if (bad > 0) {
      // pg-boss fails (and retries) a batch as a whole; with this receiver (always 204) it does not happen.
      throw new Error(`${bad} deliveries failed`);
    }
  });
}

serveBaseline({
  stats,
  async watch(ids, callbacks, spread) {
    const first = Date.now() + FIRST_POLL_MS * scale;
    for (let i = 0; i < ids.length; i += 1000) {
      await boss.insert(
        ids.slice(i, i + 1000).map((taskId, j) => ({
          name: 'poll',
          data: { gen: generation, watchId: `pgb_${taskId}`, taskId, callback: callbacks[(i + j) % callbacks.length]! } satisfies PollJob,
          startAfter: new Date(first + Math.random() * spread),
        })),
      );
    }
  },
  async forget() {
    generation++;
    await boss.purgeQueue('poll');
  },
});
const stop = () => {
  void boss.stop({ graceful: false, wait: false }).finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
};
process.on('disconnect', stop);
process.on('SIGTERM', stop);
process.stdout.write(`READY ${JSON.stringify({ pid: process.pid })}\n`);
