// Baseline (d): the same job on graphile-worker 0.16 (the line that runs on Node 20), the other
// Postgres job queue Node apps reach for, on the bench's Postgres (its own database). One `poll`
// job per task: its task GETs the task; not terminal → it adds the next `poll` job with
// run_at = now + 3–6 s (× scale); terminal → it adds a `deliver` job, whose task signs
// (standardwebhooks) and POSTs the webhook (a non-2xx throws, so graphile-worker retries it
// with its exponential backoff, up to 5 attempts). Durable like taskhook: every step is a row.
// Settings: one run() with `concurrency` jobs in flight (graphile-worker's knob; one worker
// loop per slot, each fetching one job per get_job call), a pg pool of concurrency + 2, and
// `pollInterval` for the jobs that become due while a loop is idle (new jobs wake idle loops at
// once through LISTEN/NOTIFY `jobs:insert`, which it does by default). Its info log (a line per
// job) is off, as in a production app.
// Driven over IPC like naive.ts / pgboss.ts:
//   {type:'watch', ids, callbacks, spreadMs?} → {type:'watching', n}: first polls 2 s × scale (+ U[0, spreadMs])
//   {type:'forget'}                → {type:'forgot'}: queued poll jobs deleted, running ones end unpolled
//   {type:'stats'}                 → {type:'stats', polls, errors, delivered, failed}
// Usage (forked): node --import tsx bench/graphile.ts --database URL --upstream URL --scale S [--concurrency C --poll-interval MS]
import { parseArgs } from 'node:util';
import { Logger, makeWorkerUtils, run, type JobHelpers, type TaskList } from 'graphile-worker';
import { Webhook } from 'standardwebhooks';
import { FIRST_POLL_MS, baselineStats, deliverJob, nextPollMs, pollTerminal, serveBaseline, type DeliverJob, type PollJob } from './lib.js';

const { values } = parseArgs({
  options: {
    database: { type: 'string' },
    upstream: { type: 'string' },
    scale: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '32' },
    'poll-interval': { type: 'string', default: '2000' },
  },
});
const upstream = values.upstream!;
const scale = Number(values.scale);
const concurrency = Number(values.concurrency);
const wh = new Webhook(process.env.TASKHOOK_SIGNING_SECRET!);

let generation = 0;
const stats = baselineStats();

/** Warnings and errors only: graphile-worker logs a line per job at info. */
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') process.stderr.write(`graphile-worker ${level}: ${message}\n`);
});

const taskList: TaskList = {
  async poll(payload: unknown, helpers: JobHelpers) {
    const d = payload as PollJob;
    if (d.gen !== generation) return;
    const task = await pollTerminal(upstream, d.taskId, stats);
    if (task) {
      await helpers.addJob('deliver', { watchId: d.watchId, callback: d.callback, task } satisfies DeliverJob, { maxAttempts: 5 });
      return;
    }
    await helpers.addJob('poll', d, { runAt: new Date(Date.now() + nextPollMs(scale)) });
  },
  deliver: (payload: unknown, helpers: JobHelpers) => deliverJob(wh, payload as DeliverJob, `msg_${helpers.job.id}`, stats),
};

const connectionString = values.database!;
// the schema is installed by the first run(); the utils share it (and add the first jobs in bulk)
const runner = await run({
  connectionString,
  concurrency,
  maxPoolSize: concurrency + 2,
  pollInterval: Number(values['poll-interval']),
  noHandleSignals: true,
  logger,
  taskList,
});
const utils = await makeWorkerUtils({ connectionString, logger });

serveBaseline({
  stats,
  async watch(ids, callbacks, spread) {
    const first = Date.now() + FIRST_POLL_MS * scale;
    for (let i = 0; i < ids.length; i += 1000) {
      const specs = ids.slice(i, i + 1000).map((taskId, j) => ({
        identifier: 'poll',
        payload: { gen: generation, watchId: `grw_${taskId}`, taskId, callback: callbacks[(i + j) % callbacks.length]! } satisfies PollJob,
        run_at: new Date(first + Math.random() * spread).toISOString(),
      }));
      // graphile_worker.add_jobs(job_spec[]): its own bulk insert (one statement, one NOTIFY)
      await utils.withPgClient((client) =>
        client.query(
          `select count(*) from graphile_worker.add_jobs(array(select json_populate_record(null::graphile_worker.job_spec, x) from json_array_elements($1::json) as x))`,
          [JSON.stringify(specs)],
        ),
      );
    }
  },
  async forget() {
    generation++;
    await utils.withPgClient((client) =>
      client.query(
        `delete from graphile_worker._private_jobs j using graphile_worker._private_tasks t
          where t.id = j.task_id and t.identifier = 'poll' and j.locked_at is null`,
      ),
    );
  },
});
const stop = () => {
  setTimeout(() => process.exit(0), 3000).unref();
  void Promise.allSettled([runner.stop(), utils.release()]).finally(() => process.exit(0));
};
process.on('disconnect', stop);
process.on('SIGTERM', stop);
process.stdout.write(`READY ${JSON.stringify({ pid: process.pid })}\n`);
