// `npm run bench -- --adaptive`: the fixed cadence against the adaptive strategy (at two
// settings of its knob) on the same tasks. A realistic mix (voice ~7 s, image ~16 s,
// video ~25 s and ~90 s, each with a 3 % long tail) arrives at a steady rate; mid-run
// the image kind's durations double. Every strategy runs in its own gateway process on
// its own database, polling its own simulated upstream that holds the same tasks (same
// ids, same durations), so each upstream counts exactly one strategy's requests and all
// of them see the same load at the same time. Time-compressed by --scale (every poll
// delay and every duration × scale); all figures below are in uncompressed seconds.
//
// Printed per strategy and kind: upstream requests per task, lag (upstream completed_at
// → webhook received) p50/p99, and for the shifted kind the time until its requests and
// lag are back within 10 % of their new steady state. Also the gateway's CPU per poll
// and the database's row writes per finished task.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { request } from 'undici';
import { startEmbedded, type EmbeddedDatabase } from '../src/db/embedded.js';
import { startSimUpstream, type SimUpstream } from '../src/sim/server.js';
import { REALISTIC_MIX, drawDurationMs, pickSpec, specName, type DurationSpec } from '../src/sim/durations.js';
import { seeded } from './adaptive-model.js';
import { ROOT, freePort, gatewayEntry, procCpuSeconds, startTaskhook } from './lib.js';

const { values: argv } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--adaptive'),
  options: {
    minutes: { type: 'string', default: '16' },
    'shift-at': { type: 'string', default: '6' },
    'warm-up': { type: 'string', default: '3' },
    rate: { type: 'string', default: '1' },
    scale: { type: 'string', default: '0.2' },
    lag: { type: 'string', default: '6,3' },
    seed: { type: 'string', default: '16' },
    'cpu-tasks': { type: 'string', default: '200' },
    drain: { type: 'string', default: '900' },
    'cpu-window': { type: 'string', default: '60' },
    out: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  allowPositionals: true,
});

if (argv.help) {
  process.stdout.write(`usage: npm run bench -- --adaptive [options]
  --minutes M    run length in uncompressed minutes (default 16)
  --shift-at M   the image kind's durations double at this minute (default 6)
  --warm-up M    minutes excluded from the totals (cold start; default 3)
  --rate R       tasks per uncompressed second (default 1)
  --scale X      time compression: every delay and duration × X (default 0.2)
  --lag a,b      TASKHOOK_POLL_LAG_S of the adaptive gateways (default 6,3)
  --seed N       the tasks' random seed (default 16)
  --drain S      after the arrivals, wait up to S uncompressed seconds for the last webhooks (default 900);
                 the figures count only tasks whose webhook every strategy received
  --cpu-tasks N  the poll-loop CPU phase: N long tasks of a learned kind per gateway (default 200; 0: skip)
  --cpu-window S its measuring window, uncompressed seconds (default 60)
  --out FILE     JSON results (default bench/results/adaptive-<timestamp>.json)
  DATABASE_URL   use this server (creates and drops bench_adaptive_* databases) instead of an embedded one
`);
  process.exit(0);
}

const scale = Number(argv.scale);
const minutes = Number(argv.minutes);
const shiftAtS = Number(argv['shift-at']) * 60;
const warmUpS = Number(argv['warm-up']) * 60;
const rate = Number(argv.rate);
const lagSettings = argv.lag!.split(',').map(Number);
const log = (m: string) => process.stderr.write(`[adaptive] ${m}\n`);
const SHIFTED = 'image/generate/img-v1';

interface Strategy {
  name: string;
  env: Record<string, string>;
  sim?: SimUpstream;
  db?: string;
  url?: string;
  pid?: number;
  stop?: () => Promise<void>;
}

const strategies: Strategy[] = [
  { name: 'fixed', env: { TASKHOOK_POLL_STRATEGY: 'fixed' } },
  ...lagSettings.map((l) => ({ name: `adaptive ${l}s`, env: { TASKHOOK_POLL_STRATEGY: 'adaptive', TASKHOOK_POLL_LAG_S: String(l) } })),
];

// ---------------------------------------------------------------- the receiver

/** watch id → ms the webhook arrived, and its upstream completed_at (ms) */
const arrivals = new Map<string, { at: number; completedAt: number }>();
/** the shifted kind's learned median (uncompressed s) over the run, per strategy */
const learnedMedian: { strategy: string; atS: number; medianS: number }[] = [];
const receiver = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const at = Date.now();
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { watch_id: string; data: { completed_at?: number } };
      if (!arrivals.has(body.watch_id)) arrivals.set(body.watch_id, { at, completedAt: (body.data.completed_at ?? 0) * 1000 });
    } catch {
      // not ours
    }
    res.writeHead(204).end();
  });
});

// ---------------------------------------------------------------- tasks

interface Task {
  id: string;
  kind: string;
  /** uncompressed seconds since the run began */
  createdS: number;
  watches: Map<string, string>;
  /** requests per strategy, read at the end */
  requests: Map<string, number>;
}

const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const apiKey = 'thk_bench_adaptive_0123456789abcdef';

async function register(s: Strategy, taskId: string, callback: string): Promise<string> {
  const res = await request(`${s.url}/v1/watches`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ task_id: taskId, callback_url: callback }),
  });
  const body = (await res.body.json()) as { id: string };
  if (res.statusCode !== 201) throw new Error(`register on ${s.name}: ${res.statusCode} ${JSON.stringify(body)}`);
  return body.id;
}

async function registerPatiently(s: Strategy, taskId: string, callback: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await register(s, taskId, callback);
    } catch (err) {
      if (attempt >= 20 || !/: 429 /.test(String(err))) throw err;
      await sleep(1_000);
    }
  }
}

async function dbWrites(sql: postgres.Sql, db: string): Promise<number> {
  const [r] = await sql<{ w: number }[]>`
    select (tup_inserted + tup_updated + tup_deleted)::float8 as w from pg_stat_database where datname = ${db}`;
  return r?.w ?? 0;
}

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN;
};

// ---------------------------------------------------------------- main

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'taskhook-adaptive-'));
  gatewayEntry.script = path.join(ROOT, 'bin', 'taskhook.js');
  let embedded: EmbeddedDatabase | undefined;
  let baseUrl = process.env.DATABASE_URL;
  if (!baseUrl) {
    embedded = await startEmbedded(path.join(tmp, 'pg'), (m) => argv.verbose && log(m));
    baseUrl = embedded.url;
  }
  const admin = postgres(baseUrl, { max: 1, onnotice: () => {} });
  const rand = seeded(Number(argv.seed));
  const mix: DurationSpec[] = REALISTIC_MIX.map((s) => ({ ...s }));
  const recvPort = await freePort();
  await new Promise<void>((r) => receiver.listen(recvPort, '127.0.0.1', r));
  const callback = `http://127.0.0.1:${recvPort}/hook`;
  callback0 = callback;

  try {
    for (const [i, s] of strategies.entries()) {
      s.db = `bench_adaptive_${i}`;
      await admin.unsafe(`drop database if exists ${s.db}`);
      await admin.unsafe(`create database ${s.db}`);
      s.sim = await startSimUpstream({ apiKeys: ['sk_test'], tasks: { fractionalTimestamps: true, noProgress: true } });
      const port = await freePort();
      const u = new URL(baseUrl);
      u.pathname = `/${s.db}`;
      const g = startTaskhook(
        ['serve'],
        {
          DATABASE_URL: u.toString(),
          HOST: '127.0.0.1',
          PORT: String(port),
          UPSTREAM_BASE_URL: s.sim.url,
          UPSTREAM_API_KEY: 'sk_test',
          TASKHOOK_API_KEY: apiKey,
          TASKHOOK_SIGNING_SECRET: secret,
          TASKHOOK_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
          TASKHOOK_ALLOW_PRIVATE_CALLBACKS: '127.0.0.0/8',
          TASKHOOK_DATA_DIR: path.join(tmp, `gw${i}`),
          TASKHOOK_POLL_SCALE: String(scale),
          TASKHOOK_SHUTDOWN_TIMEOUT_S: '1',
          LOG_LEVEL: 'warn',
          ...s.env,
        },
        s.name,
        argv.verbose,
      );
      s.url = `http://127.0.0.1:${port}`;
      s.pid = g.proc.pid;
      s.stop = async () => {
        g.proc.kill('SIGTERM');
        await g.exited;
      };
      const deadline = Date.now() + 90_000;
      for (;;) {
        if (Date.now() > deadline) throw new Error(`${s.name} not ready:\n${g.stderrTail()}`);
        try {
          const res = await request(`${s.url}/readyz`);
          await res.body.dump();
          if (res.statusCode === 200) break;
        } catch {
          // not yet
        }
        await sleep(200);
      }
      log(`${s.name}: gateway ${s.url}, database ${s.db}`);
    }

    const cpu0 = new Map(strategies.map((s) => [s.name, procCpuSeconds(s.pid!) ?? 0]));
    const writes0 = new Map<string, number>();
    for (const s of strategies) writes0.set(s.name, await dbWrites(admin, s.db!));

    // Arrivals: Poisson at `rate` per uncompressed second, for `minutes`.
    const tasks: Task[] = [];
    const t0 = Date.now();
    const runS = minutes * 60;
    let next = 0;
    let shifted = false;
    let n = 0;
    const pending: Promise<void>[] = [];
    // the learned median of the shifted kind, as each gateway's /metrics says, every second or so
    let stopWatching = false;
    const watching = (async () => {
      while (!stopWatching) {
        const atS = (Date.now() - t0) / 1000 / scale;
        for (const s of strategies) {
          try {
            const res = await request(`${s.url}/metrics`);
            const text = await res.body.text();
            const m = new RegExp(`taskhook_learned_duration_seconds\\{kind="${SHIFTED}",quantile="0.5"\\} ([0-9.e+-]+)`).exec(text);
            if (m) learnedMedian.push({ strategy: s.name, atS, medianS: Number(m[1]) / scale });
          } catch {
            // a scrape missed: the next one
          }
        }
        await sleep(Math.max(200, 1000 * scale));
      }
    })();
    log(`running ${minutes} min (×${scale}: ${((runS * scale) / 60).toFixed(1)} min real) at ${rate} task/s; ${SHIFTED} doubles at minute ${shiftAtS / 60}`);
    while (next < runS) {
      const nowS = (Date.now() - t0) / 1000 / scale;
      if (nowS < next) {
        await sleep(Math.max(1, (next - nowS) * scale * 1000));
        continue;
      }
      if (!shifted && next >= shiftAtS) {
        shifted = true;
        const i = mix.findIndex((s) => specName(s) === SHIFTED);
        mix[i] = { ...mix[i]!, medianMs: mix[i]!.medianMs * 2 };
        log(`minute ${(next / 60).toFixed(1)}: ${SHIFTED} now takes twice as long`);
      }
      const spec = pickSpec(mix, rand);
      const durationMs = drawDurationMs(spec, rand, scale);
      const id = `ad-${++n}`;
      const task: Task = { id, kind: specName(spec), createdS: next, watches: new Map(), requests: new Map() };
      tasks.push(task);
      for (const s of strategies) s.sim!.createTask({ task_id: id, capability: spec.capability, action: spec.action, model: spec.model, durationMs, processingAfterMs: 100 * scale });
      pending.push(
        (async () => {
          for (const s of strategies) task.watches.set(s.name, await register(s, id, callback));
        })(),
      );
      next += -Math.log(Math.max(1e-12, rand())) / rate;
      if (n % 100 === 0) log(`minute ${(next / 60).toFixed(1)}: ${n} tasks, ${arrivals.size} webhooks`);
    }
    await Promise.all(pending);
    stopWatching = true;
    await watching;
    // let everything finish (the long tail: up to 5 × 90 s × 1.6)
    const expected = tasks.length * strategies.length;
    const until = Date.now() + Number(argv.drain) * 1000 * scale;
    while (arrivals.size < expected && Date.now() < until) await sleep(500);
    log(`${arrivals.size}/${expected} webhooks`);

    const cpu = new Map(strategies.map((s) => [s.name, (procCpuSeconds(s.pid!) ?? 0) - cpu0.get(s.name)!]));
    const writes = new Map<string, number>();
    for (const s of strategies) writes.set(s.name, (await dbWrites(admin, s.db!)) - writes0.get(s.name)!);
    for (const t of tasks) for (const s of strategies) t.requests.set(s.name, s.sim!.requests(t.id));

    // the run's table first (a failure in the CPU phase must not lose it), then again with the poll loop's line
    report(tasks, cpu, writes, undefined);
    const loop = Number(argv['cpu-tasks']) > 0 ? await pollLoopCpu().catch((err: unknown) => (log(`poll-loop CPU phase failed: ${String(err)}`), undefined)) : undefined;
    if (loop) report(tasks, cpu, writes, loop);
  } finally {
    for (const s of strategies) await s.stop?.().catch(() => {});
    for (const s of strategies) await s.sim?.close().catch(() => {});
    receiver.close();
    for (const s of strategies) if (s.db) await admin.unsafe(`drop database if exists ${s.db}`).catch(() => {});
    await admin.end();
    await embedded?.stop();
  }
}

// ---------------------------------------------------------------- the poll loop's own CPU

/**
 * The poll loop's CPU per poll, apart from what registering and delivering cost (which
 * the whole run's CPU spreads over its polls: fewer polls for the same tasks reads as more
 * CPU per poll). Every gateway idles for a window (its background: claim loop, leases,
 * learner, cache refresh); then watches `cpu-tasks` tasks of the longest learned kind that
 * do not end while measured, registered before the window and past their first minute
 * (the adaptive gateways poll them from the learned distribution); the window's CPU
 * minus the idle rate, over the polls upstream counted in it.
 */
async function pollLoopCpu(): Promise<Map<string, { usPerPoll: number; polls: number; idleCpuPerS: number }>> {
  const windowMs = Number(argv['cpu-window']) * 1000 * scale;
  const n = Number(argv['cpu-tasks']);
  const long = REALISTIC_MIX.find((k) => k.model === 'vid-long')!;
  const cpuNow = () => new Map(strategies.map((s) => [s.name, procCpuSeconds(s.pid!) ?? 0]));
  await sleep(2_000);
  const idle0 = cpuNow();
  const t0 = Date.now();
  await sleep(windowMs);
  const idleS = (Date.now() - t0) / 1000;
  const idle1 = cpuNow();
  log(`poll-loop CPU: ${n} long ${specName(long)} tasks per gateway, window ${(windowMs / 1000).toFixed(0)} s real`);
  const ids = Array.from({ length: n }, (_, i) => `cpu-${i}`);
  for (const s of strategies) for (const id of ids) s.sim!.createTask({ task_id: id, capability: long.capability, action: long.action, model: long.model, durationMs: 3_600_000, processingAfterMs: 100 * scale });
  // (≤ 4 in flight per gateway: the failed-auth throttle counts checks in flight, at most 10)
  for (let i = 0; i < ids.length; i += 4) await Promise.all(ids.slice(i, i + 4).flatMap((id) => strategies.map((s) => registerPatiently(s, id, callback0))));
  // past the first poll and the onset jump of the adaptive schedule (≤ 60 s)
  await sleep(65_000 * scale);
  const req0 = new Map(strategies.map((s) => [s.name, ids.reduce((a, id) => a + s.sim!.requests(id), 0)]));
  const c0 = cpuNow();
  const w0 = Date.now();
  await sleep(windowMs);
  const wS = (Date.now() - w0) / 1000;
  const c1 = cpuNow();
  const out = new Map<string, { usPerPoll: number; polls: number; idleCpuPerS: number }>();
  for (const s of strategies) {
    const polls = ids.reduce((a, id) => a + s.sim!.requests(id), 0) - req0.get(s.name)!;
    const idleRate = (idle1.get(s.name)! - idle0.get(s.name)!) / idleS;
    const busy = c1.get(s.name)! - c0.get(s.name)! - idleRate * wS;
    out.set(s.name, { usPerPoll: (busy / Math.max(1, polls)) * 1e6, polls, idleCpuPerS: idleRate });
  }
  return out;
}
let callback0 = '';

// ---------------------------------------------------------------- the report

interface Row {
  requests: number;
  p50: number;
  p99: number;
  n: number;
}

function summarize(tasks: Task[], s: string): Row {
  const lags: number[] = [];
  let requests = 0;
  let n = 0;
  for (const t of tasks) {
    const a = arrivals.get(t.watches.get(s) ?? '');
    // the same tasks for every strategy: only those all of them delivered
    if (!a || strategies.some((o) => !arrivals.has(t.watches.get(o.name) ?? ''))) continue;
    n++;
    requests += t.requests.get(s) ?? 0;
    lags.push((a.at - a.completedAt) / scale / 1000);
  }
  return { requests: n ? requests / n : NaN, p50: q(lags, 0.5), p99: q(lags, 0.99), n };
}

function recovery(tasks: Task[], s: string): { s: number | undefined; steady: Row } {
  // after the shift, by creation time: from when on requests/task and lag p50 stay within
  // 10 % of the new steady state (the last third of the run)
  const after = tasks.filter((t) => t.kind === SHIFTED && t.createdS >= shiftAtS);
  const end = Math.max(...after.map((t) => t.createdS));
  const steady = summarize(after.filter((t) => t.createdS >= shiftAtS + (2 / 3) * (end - shiftAtS)), s);
  // requests per task in every 2-min window from then on; lag p50 pooled over every task from
  // then on (one window's p50 of ~30 lags moves ±0.5 s by chance alone)
  const win = 120;
  const windows: { from: number; row: Row }[] = [];
  for (let from = shiftAtS; from + win <= end; from += 30) windows.push({ from, row: summarize(after.filter((t) => t.createdS >= from && t.createdS < from + win), s) });
  const ok = (r: Row) => r.n === 0 || Math.abs(r.requests - steady.requests) <= 0.1 * steady.requests;
  const lagOk = (from: number) => summarize(after.filter((t) => t.createdS >= from), s).p50 <= steady.p50 * 1.1 + 0.25;
  for (let i = 0; i < windows.length; i++) if (windows.slice(i).every((w) => ok(w.row)) && lagOk(windows[i]!.from)) return { s: windows[i]!.from - shiftAtS, steady };
  return { s: undefined, steady };
}

function report(all: Tasks, cpu: Map<string, number>, writes: Map<string, number>, loop: Awaited<ReturnType<typeof pollLoopCpu>> | undefined) {
  const tasks = all.filter((t) => t.createdS >= warmUpS);
  const kinds = [...new Set(tasks.map((t) => t.kind))].sort();
  const L: string[] = [];
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '—');
  L.push(`adaptive polling bench: ${all.length} tasks over ${minutes} min at ${rate}/s, ×${scale} time compression, loaded box (${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)})`);
  L.push(`totals exclude the first ${warmUpS / 60} min (cold start); lag = upstream completed_at → webhook received, uncompressed seconds`);
  L.push('');
  L.push(`${'kind'.padEnd(26)} ${strategies.map((s) => `${s.name}: req/task lag p50/p99`.padEnd(36)).join('')}`);
  const base = new Map<string, Row>();
  for (const k of [...kinds, 'all']) {
    const sub = k === 'all' ? tasks : tasks.filter((t) => t.kind === k);
    const cells = strategies.map((s) => {
      const r = summarize(sub, s.name);
      if (s.name === 'fixed') base.set(k, r);
      return `${f(r.requests)}  ${f(r.p50)}/${f(r.p99)}`.padEnd(36);
    });
    L.push(`${k.padEnd(26)} ${cells.join('')}`);
  }
  L.push('');
  const fixed = base.get('all')!;
  const results: Record<string, unknown> = {};
  for (const s of strategies) {
    const r = summarize(tasks, s.name);
    const polls = all.reduce((a, t) => a + (t.requests.get(s.name) ?? 0), 0);
    const finished = all.filter((t) => arrivals.has(t.watches.get(s.name) ?? '')).length;
    const rec = recovery(all, s.name);
    const target = REALISTIC_MIX.find((k) => specName(k) === SHIFTED)!.medianMs * 2 / 1000;
    const mine = learnedMedian.filter((p) => p.strategy === s.name && p.atS >= shiftAtS);
    const firstOk = mine.findIndex((p, i) => mine.slice(i).every((q) => Math.abs(q.medianS - target) <= 0.1 * target));
    const followedS = firstOk >= 0 ? mine[firstOk]!.atS - shiftAtS : undefined;
    const cpuPerPoll = (cpu.get(s.name)! / Math.max(1, polls)) * 1e6;
    const writesPerTask = writes.get(s.name)! / Math.max(1, finished);
    const cpuPerTask = (cpu.get(s.name)! / Math.max(1, finished)) * 1e3;
    results[s.name] = { ...r, polls, finished, cpuPerPollUs: cpuPerPoll, cpuPerTaskMs: cpuPerTask, writesPerTask, recoveryS: rec.s, followedS, steady: rec.steady };
    L.push(
      `${s.name.padEnd(14)} requests ${f(r.requests / fixed.requests, 3)}× fixed, lag p50 ${f(r.p50 / fixed.p50, 3)}× p99 ${f(r.p99 / fixed.p99, 3)}×; ` +
        `gateway CPU ${f(cpuPerPoll, 0)} µs/poll (${f(cpuPerTask, 1)} ms/finished task), ${f(writesPerTask, 1)} row writes/finished task; ${SHIFTED} doubled: learned median within 10 % of the new one after ${followedS === undefined ? (s.name === 'fixed' ? '— (fixed does not learn for its schedule)' : 'never (in this run)') : `${followedS.toFixed(0)} s`}, requests and lag p50 within 10 % of their new steady state after ${rec.s === undefined ? 'never (in this run)' : `${rec.s} s`}`,
    );
  }
  if (loop) {
    L.push('');
    const f0 = loop.get('fixed')!;
    for (const s of strategies) {
      const r = loop.get(s.name)!;
      L.push(`${s.name.padEnd(14)} poll loop alone (${argv['cpu-tasks']} long tasks, idle ${f(r.idleCpuPerS * 1000, 1)} ms CPU/s subtracted): ${f(r.usPerPoll, 0)} µs CPU per poll over ${r.polls} polls, ${f(r.usPerPoll / f0.usPerPoll, 3)}× fixed`);
    }
    for (const s of strategies) (results[s.name] as Record<string, unknown>).pollLoop = loop.get(s.name);
  }
  const text = L.join('\n');
  process.stdout.write(`${text}\n`);
  const out = argv.out ?? path.join(ROOT, 'bench', 'results', `adaptive-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ args: argv, text, results, learnedMedian }, null, 2));
  log(`results in ${path.relative(ROOT, out)}`);
}
type Tasks = Task[];

await main();
