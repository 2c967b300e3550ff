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
import { FIRST_POLL_MS, TERMINAL, nextPollMs, postSignedWebhook } from './lib.js';

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
const headers = { authorization: `Bearer ${process.env.UPSTREAM_API_KEY ?? 'sk_test'}`, accept: 'application/json' };

interface PollData {
  /** generation: the orchestrator's 'forget' bumps it and older poll jobs end without polling */
  gen: number;
  watchId: string;
  taskId: string;
  callback: string;
}
interface DeliverData {
  watchId: string;
  callback: string;
  task: { status?: string; task_id?: string };
}

let generation = 0;
let polls = 0;
let errors = 0;
let delivered = 0;
let failed = 0;

/** Warnings and errors only: graphile-worker logs a line per job at info. */
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') process.stderr.write(`graphile-worker ${level}: ${message}\n`);
});

const taskList: TaskList = {
  async poll(payload: unknown, helpers: JobHelpers) {
    const d = payload as PollData;
    if (d.gen !== generation) return;
    try {
      const res = await fetch(`${upstream}/api/v2/tasks/${encodeURIComponent(d.taskId)}`, { headers });
      const task = (await res.json()) as { status?: string };
      polls++;
      if (res.ok && task.status && TERMINAL.has(task.status)) {
        await helpers.addJob('deliver', { watchId: d.watchId, callback: d.callback, task } satisfies DeliverData, { maxAttempts: 5 });
        return;
      }
    } catch {
      errors++;
    }
    await helpers.addJob('poll', d, { runAt: new Date(Date.now() + nextPollMs(scale)) });
  },
  async deliver(payload: unknown, helpers: JobHelpers) {
    const { watchId, callback, task } = payload as DeliverData;
    const status = await postSignedWebhook(wh, callback, `msg_${helpers.job.id}`, watchId, task);
    if (status < 200 || status >= 300) {
      failed++;
      throw new Error(`receiver answered HTTP ${status}`);
    }
    delivered++;
  },
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

process.on('message', (m: { type: string; ids?: string[]; callbacks?: string[]; spreadMs?: number }) => {
  void (async () => {
    try {
      if (m.type === 'watch') {
        const ids = m.ids ?? [];
        const callbacks = m.callbacks ?? [];
        const first = Date.now() + FIRST_POLL_MS * scale;
        const spread = m.spreadMs ?? 0;
        for (let i = 0; i < ids.length; i += 1000) {
          const specs = ids.slice(i, i + 1000).map((taskId, j) => ({
            identifier: 'poll',
            payload: { gen: generation, watchId: `grw_${taskId}`, taskId, callback: callbacks[(i + j) % callbacks.length]! } satisfies PollData,
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
        process.send!({ type: 'watching', n: ids.length });
      } else if (m.type === 'forget') {
        generation++;
        await utils.withPgClient((client) =>
          client.query(
            `delete from graphile_worker._private_jobs j using graphile_worker._private_tasks t
              where t.id = j.task_id and t.identifier = 'poll' and j.locked_at is null`,
          ),
        );
        process.send!({ type: 'forgot' });
      } else if (m.type === 'stats') {
        process.send!({ type: 'stats', polls, errors, delivered, failed });
      }
    } catch (err) {
      process.send!({ type: 'error', message: String(err) });
    }
  })();
});
const stop = () => {
  setTimeout(() => process.exit(0), 3000).unref();
  void Promise.allSettled([runner.stop(), utils.release()]).finally(() => process.exit(0));
};
process.on('disconnect', stop);
process.on('SIGTERM', stop);
process.stdout.write(`READY ${JSON.stringify({ pid: process.pid })}\n`);
