// The delivery bench (`npm run bench -- --only delivery [--quick] [--burst N] [--tsx]`): the
// deliverer alone, against the verifying receiver (bench/receiver.ts) in its own process.
// Outbox rows are written as the poller writes them at a terminal poll (one event_bodies row
// per task, one small deliveries row per watch), then one `serve --role worker` process
// delivers them. Prints:
//   - deliveries/s draining a burst (20,000; --quick 2,000) to one origin and to 4 origins
//     (many callback URLs each, as on a shared SaaS host); the row's write → the 2xx, p50/p99;
//   - outbox write → 2xx of a steady trickle, p50/p99 (the deliverer's share of the terminal
//     poll → 2xx; the full chain is run.ts's taskhook phase);
//   - the lag of a healthy URL on an idle host and of one beside a hanging URL (60 webhooks
//     never answered) on the same host:port, both in the same window;
//   - bytes stored per delivery (deliveries + event_bodies + delivery_attempts);
//   - the ceiling in the same run: signed POSTs from undici straight to the same receiver
//     (bench/raw-post.ts, no database), and the CPU each process used during each burst,
//     so a box that can't do more says so (the receiver shares its cores).
// Set BENCH_GATEWAY_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the worker.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { request } from 'undici';
import { startEmbedded, type EmbeddedDatabase } from '../src/db/embedded.js';
import { runMigrations } from '../src/db/migrate.js';
import { DEFAULT_TENANT_ID } from '../src/tenancy/bootstrap.js';
import { webhookHead } from '../src/delivery/outbox.js';
import { buildDist, cpuJiffies, dist, fmt, freePort, gatewayEntry, getJson, postJson, procCpuSeconds, ROOT, startTaskhook, startTsChild, type Child, type Dist } from './lib.js';

export interface DeliveryBenchOptions {
  quick: boolean;
  burst?: number;
  tsx: boolean;
  verbose: boolean;
  log(msg: string): void;
}

/** Callback URLs per origin in the bursts: a shared host (a URL may hold ¼ of the host's slots). */
const URLS_PER_ORIGIN = 16;
const ORIGINS = 4;

/** In-flight requests per origin for the raw ceiling: what the deliverer may have to one host for one tenant (admission.ts, aloneTenant of 32). */
const RAW_CONCURRENCY = 24;

/** CPU over an interval, % of one core: the worker, the receiver, Postgres (embedded only), the rest of the machine (this bench process included). */
interface CpuUse {
  worker: number;
  receiver: number;
  postgres: number | undefined;
  other: number | undefined;
}

interface Burst {
  origins: number;
  count: number;
  spanMs: number;
  perS: number;
  lag: Dist;
  cpu: CpuUse;
}

interface Raw {
  origins: number;
  postPerS: number;
  latency: Dist;
  errors: number;
  cpu: { client: number; receiver: number; machine: number };
}

/** The postmaster under `pgDir` and its children (backends, walwriter, …). */
function postgresPids(pgDir: string): number[] {
  try {
    const master = Number(fs.readFileSync(path.join(pgDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const pids = [master];
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === master) pids.push(Number(d));
      } catch {
        // gone
      }
    }
    return pids;
  } catch {
    return [];
  }
}

/** Starts counting CPU; the returned function reads what was used since. */
function cpuMeter(workerPid: number, receiverPid: number, pgDir: string | undefined): () => CpuUse {
  const secs = (pid: number) => procCpuSeconds(pid) ?? 0;
  const pg = () => (pgDir ? postgresPids(pgDir) : []);
  const pg0 = new Map(pg().map((p) => [p, secs(p)]));
  const w0 = secs(workerPid);
  const r0 = secs(receiverPid);
  const j0 = cpuJiffies();
  const t0 = performance.now();
  return () => {
    const el = (performance.now() - t0) / 1000;
    // (a backend born in the interval counts whole)
    const pgUsed = pg().reduce((a, p) => a + Math.max(0, secs(p) - (pg0.get(p) ?? 0)), 0);
    const j1 = cpuJiffies();
    const worker = ((secs(workerPid) - w0) / el) * 100;
    const receiver = ((secs(receiverPid) - r0) / el) * 100;
    const postgres = pgDir ? (pgUsed / el) * 100 : undefined;
    const machine = j0 && j1 ? (j1.busy - j0.busy) / el : undefined;
    return { worker, receiver, postgres, other: machine === undefined || postgres === undefined ? undefined : Math.max(0, machine - worker - receiver - postgres) };
  };
}

const cpuText = (c: CpuUse) => `CPU % worker / receiver / postgres / other ${[c.worker, c.receiver, c.postgres, c.other].map((x) => (x === undefined ? '?' : fmt.int(x))).join(' / ')}`;
/** CPU per delivery (µs of one core): what a loaded box changes least. */
const perDeliveryText = (b: { cpu: CpuUse; perS: number }) =>
  `CPU µs per delivery: worker ${fmt.int((b.cpu.worker / 100 / b.perS) * 1e6)}, receiver ${fmt.int((b.cpu.receiver / 100 / b.perS) * 1e6)}, postgres ${b.cpu.postgres === undefined ? '?' : fmt.int((b.cpu.postgres / 100 / b.perS) * 1e6)}`;

/** How busy all CPUs are over `ms` (0–1), before anything of ours runs. */
async function busyShare(ms: number): Promise<number | undefined> {
  const a = cpuJiffies();
  await sleep(ms);
  const b = cpuJiffies();
  return a && b && b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : undefined;
}

export async function runDeliveryBench(o: DeliveryBenchOptions): Promise<Record<string, unknown>> {
  const { log } = o;
  const burstN = o.burst ?? (o.quick ? 2_000 : 20_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'taskhook-dbench-'));
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  let embedded: EmbeddedDatabase | undefined;
  let admin: postgres.Sql | undefined;
  let sql: postgres.Sql | undefined;
  let receiver: Child | undefined;
  let worker: ReturnType<typeof startTaskhook> | undefined;
  const busyBefore = await busyShare(1_000);
  const loadBefore = os.loadavg();
  try {
    if (o.tsx) gatewayEntry.script = path.join(ROOT, 'bin', 'taskhook.js');
    else {
      log('compiling src/ → dist/');
      buildDist();
    }
    let url: string;
    if (process.env.DATABASE_URL) {
      admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
      await admin.unsafe('drop database if exists bench_delivery with (force)');
      await admin.unsafe('create database bench_delivery');
      const u = new URL(process.env.DATABASE_URL);
      u.pathname = '/bench_delivery';
      url = u.href;
    } else {
      embedded = await startEmbedded(path.join(tmp, 'pg'), () => {});
      url = embedded.url;
    }
    const pgDir = embedded ? path.join(tmp, 'pg', 'pg') : undefined;
    await runMigrations(url);
    sql = postgres(url, { max: 4, onnotice: () => {} });
    receiver = await startTsChild('receiver.ts', ['--ports', String(ORIGINS)], { TASKHOOK_SIGNING_SECRET: secret }, { echo: o.verbose });
    const origins = receiver.ready.urls as string[];
    const control = origins[0]!;

    const port = await freePort();
    worker = startTaskhook(
      ['serve'],
      {
        DATABASE_URL: url,
        HOST: '127.0.0.1',
        PORT: String(port),
        TASKHOOK_ROLE: 'worker',
        UPSTREAM_BASE_URL: 'http://127.0.0.1:9', // nothing to poll here
        UPSTREAM_API_KEY: 'sk_test',
        TASKHOOK_API_KEY: `thk_bench_${randomBytes(18).toString('base64url')}`,
        TASKHOOK_SIGNING_SECRET: secret,
        TASKHOOK_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        TASKHOOK_ALLOW_PRIVATE_CALLBACKS: '127.0.0.0/8',
        TASKHOOK_DATA_DIR: path.join(tmp, 'gateway'),
        TASKHOOK_SHUTDOWN_TIMEOUT_S: '1',
        LOG_LEVEL: 'warn',
      },
      'worker',
      o.verbose,
    );
    for (const deadline = Date.now() + 60_000; ; ) {
      if (Date.now() > deadline) throw new Error(`worker not ready in 60 s:\n${worker.stderrTail()}`);
      try {
        const res = await request(`http://127.0.0.1:${port}/readyz`);
        await res.body.dump();
        if (res.statusCode === 200) break;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    const db = sql;

    /**
     * Outbox rows as a terminal poll writes them: per task one event body, per watch one
     * deliveries row referring to it; due at `dueInMs` (far future = held back).
     */
    async function enqueue(prefix: string, n: number, urlOf: (i: number) => string, dueInMs: number): Promise<void> {
      const head = webhookHead('task.completed', new Date());
      const urls = Array.from({ length: n }, (_, i) => urlOf(i));
      for (let i = 0; i < n; i += 5_000) {
        const part = urls.slice(i, i + 5_000);
        await db`
          with r as (
            select ${prefix} || (${i} + k - 1) as task_id, u as url from unnest(${part}::text[]) with ordinality as t(u, k)
          ), b as (
            insert into event_bodies (tenant_id, task_id, event_type, head, data)
            select ${DEFAULT_TENANT_ID}, task_id, 'task.completed', ${head},
                   '{"task_id":"' || task_id || '","status":"completed","capability":"voice","action":"clone","model":"v2","progress":100,"error":null,"credits_used":3,"created_at":1764590400,"completed_at":1764590460,"metadata":null,"audio_url":"https://sim-results.invalid/' || task_id || '.mp3"}'
              from r
            returning id, task_id
          ), w as (
            insert into watches (id, tenant_id, task_id, callback_url, metadata, events, status)
            select 'wat_' || r.task_id, ${DEFAULT_TENANT_ID}, r.task_id, r.url, '{"bench":true}', '{task.completed}', 'delivering' from r
          )
          insert into deliveries (id, tenant_id, watch_id, event_type, terminal, callback_url, endpoint, payload, body_id, next_attempt_at)
          select 'msg_' || r.task_id, ${DEFAULT_TENANT_ID}, 'wat_' || r.task_id, 'task.completed', true, r.url,
                 substring(r.url from '^[a-z][a-z0-9+.-]*://[^/?#]+'), '', b.id, now() + ${dueInMs} * interval '1 millisecond'
            from r join b on b.task_id = r.task_id`;
      }
    }
    const arrivals = (prefix: string) => postJson<Record<string, number>>(`${control}/arrivals`, { prefix });
    const count = async (prefix: string) => (await postJson<{ n: number }>(`${control}/count`, { prefix })).n;
    const createdAt = async (prefix: string) =>
      new Map(
        (await db<{ task_id: string; at: number }[]>`
          select substr(watch_id, 5) as task_id, extract(epoch from created_at)::float8 * 1000 as at from deliveries where watch_id like ${'wat_' + prefix + '%'}`).map((r) => [r.task_id, r.at]),
      );
    async function lagsOf(prefix: string, since?: number): Promise<number[]> {
      const [arr, made] = await Promise.all([arrivals(prefix), createdAt(prefix)]);
      return [...made].map(([id, at]) => (arr[id] ?? NaN) - (since ?? at)).filter((x) => Number.isFinite(x));
    }
    async function waitCount(prefix: string, n: number, timeoutMs: number): Promise<void> {
      for (const deadline = Date.now() + timeoutMs; (await count(prefix)) < n; ) {
        if (Date.now() > deadline) throw new Error(`only ${await count(prefix)} of ${n} webhooks of ${prefix} arrived within ${timeoutMs} ms`);
        await sleep(50);
      }
    }

    async function burst(label: string, originCount: number): Promise<Burst> {
      const prefix = `${label}-`;
      log(`burst: ${fmt.int(burstN)} webhooks to ${originCount} origin(s), ${URLS_PER_ORIGIN} URLs each`);
      await enqueue(prefix, burstN, (i) => `${origins[i % originCount]}/hooks/${Math.floor(i / originCount) % URLS_PER_ORIGIN}`, 3_600_000);
      const [{ due }] = (await db`
        update deliveries set next_attempt_at = now() where watch_id like ${'wat_' + prefix + '%'} and status = 'pending'
        returning extract(epoch from now())::float8 * 1000 as due`) as unknown as [{ due: number }];
      const meter = cpuMeter(worker!.proc.pid!, receiver!.pid, pgDir);
      await waitCount(prefix, burstN, 600_000);
      const cpu = meter();
      const arr = Object.values(await arrivals(prefix)).sort((a, b) => a - b);
      const spanMs = arr[arr.length - 1]! - due;
      const lag = dist(arr.map((a) => a - due));
      const perS = Math.round((burstN / spanMs) * 1000);
      log(`  ${fmt.int(perS)} deliveries/s (${fmt.int(burstN)} in ${fmt.ms(spanMs)}); ${cpuText(cpu)}`);
      return { origins: originCount, count: burstN, spanMs, perS, lag, cpu };
    }

    /** The ceiling: signed POSTs from undici straight to the receiver (bench/raw-post.ts), in the same run. */
    async function raw(originCount: number): Promise<Raw> {
      const child = await startTsChild(
        'raw-post.ts',
        ['--urls', origins.slice(0, originCount).join(','), '--concurrency', String(RAW_CONCURRENCY), '--duration', o.quick ? '1.5' : '3', '--receiver-pid', String(receiver!.pid)],
        { TASKHOOK_SIGNING_SECRET: secret },
        { readyTimeoutMs: 60_000 },
      );
      const r = child.ready as Omit<Raw, 'origins'>;
      await child.stop('SIGTERM', 5_000);
      log(`  raw ${originCount} origin(s): ${fmt.int(r.postPerS)} POST/s (p50 ${fmt.ms(r.latency.p50)}, p99 ${fmt.ms(r.latency.p99)}); CPU % client / receiver / other ${fmt.int(r.cpu.client)} / ${fmt.int(r.cpu.receiver)} / ${fmt.int(Math.max(0, r.cpu.machine - r.cpu.client - r.cpu.receiver))}`);
      return { origins: originCount, ...r };
    }

    /**
     * `rate` webhooks a second for `seconds` to each URL, all in the same window; returns,
     * per URL, each one's outbox write → arrival.
     */
    async function trickles(label: string, targetUrls: string[], rate: number, seconds: number): Promise<Dist[]> {
      const tick = 50;
      const perTick = Math.max(1, Math.round((rate * tick) / 1000));
      const ticks = Math.round((seconds * 1000) / tick);
      const prefixes = targetUrls.map((_, k) => `${label}${k}-`);
      for (let t = 0; t < ticks; t++) {
        const started = Date.now();
        for (let k = 0; k < targetUrls.length; k++) await enqueue(`${prefixes[k]}${t}-`, perTick, () => targetUrls[k]!, 0);
        await sleep(Math.max(0, tick - (Date.now() - started)));
      }
      const out: Dist[] = [];
      for (const prefix of prefixes) {
        await waitCount(prefix, ticks * perTick, 60_000);
        out.push(dist(await lagsOf(prefix)));
      }
      return out;
    }
    const trickle = async (label: string, targetUrl: string, rate: number, seconds: number) => (await trickles(label, [targetUrl], rate, seconds))[0]!;

    const results: Record<string, unknown> = {};
    // warm the connections and the JIT
    await trickle('warm', `${origins[0]}/warm`, 200, 1);
    log(`raw ceiling: undici → receiver, ${RAW_CONCURRENCY} in flight per origin, no database`);
    const rawOne = await raw(1);
    const rawFour = await raw(ORIGINS);
    const oneOrigin = await burst('b1', 1);
    const fourOrigins = await burst('b4', ORIGINS);
    log('trickle: 500 webhooks/s for 5 s to one URL (outbox write → 2xx)');
    const steady = await trickle('steady', `${origins[1]}/steady`, 500, 5);
    log(`  p50 ${fmt.ms(steady.p50)}, p99 ${fmt.ms(steady.p99)}`);

    // Both at once, so both see the same box: on a loaded one, noise between two windows
    // a few seconds apart was more than the difference measured (p99s of ~60 ms).
    log('healthy URLs, 100/s each for 5 s in the same window: one on an idle host, one beside a hanging URL (60 webhooks never answered) on the same host:port');
    await enqueue('hang-', 60, () => `${origins[2]}/hang/zap`, 0);
    await sleep(500);
    const [idle, beside] = (await trickles('healthy', [`${origins[3]}/ok`, `${origins[2]}/ok2`], 100, 5)) as [Dist, Dist];
    log(`  idle host p50 ${fmt.ms(idle.p50)}, p99 ${fmt.ms(idle.p99)}; beside the hanging URL p50 ${fmt.ms(beside.p50)}, p99 ${fmt.ms(beside.p99)}`);

    const [sizes] = await db<{ bytes: number; n: number }[]>`
      select (pg_total_relation_size('deliveries') + pg_total_relation_size('event_bodies') + pg_total_relation_size('delivery_attempts'))::float8 as bytes,
             (select count(*) from deliveries)::int as n`;
    const perDelivery = Math.round(sizes!.bytes / sizes!.n);
    const stats = await getJson<{ duplicates: number; rejected: number }>(`${control}/stats`);

    results.machine = { cores: os.cpus().length, cpu: os.cpus()[0]?.model, loadavgBefore: loadBefore, busyBefore };
    results.rawOneOrigin = rawOne;
    results.rawFourOrigins = rawFour;
    results.burstOneOrigin = oneOrigin;
    results.burstFourOrigins = fourOrigins;
    results.steady = steady;
    results.healthyIdle = idle;
    results.healthyBesideHanging = beside;
    results.bytesPerDelivery = perDelivery;
    results.receiver = stats;

    const ratio = beside.p99 / Math.max(1, idle.p99);
    const L: string[] = [];
    L.push('');
    const busy = busyBefore === undefined ? '?' : `${Math.round(busyBefore * 100)} %`;
    L.push(`Delivery bench, ${new Date().toISOString()} (one worker process; loaded box figures are ratios at best)`);
    L.push(`  machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} and ${busy} busy before the start`);
    L.push(`  raw ceiling, 1 origin (undici → receiver, no db):  ${fmt.int(rawOne.postPerS)} POST/s   CPU % client / receiver ${fmt.int(rawOne.cpu.client)} / ${fmt.int(rawOne.cpu.receiver)}`);
    L.push(`  raw ceiling, ${ORIGINS} origins:                        ${fmt.int(rawFour.postPerS)} POST/s   CPU % client / receiver ${fmt.int(rawFour.cpu.client)} / ${fmt.int(rawFour.cpu.receiver)}`);
    L.push(`  burst ${fmt.int(burstN)}, 1 origin × ${URLS_PER_ORIGIN} URLs:   ${fmt.int(oneOrigin.perS)} deliveries/s   (write → 2xx p50 ${fmt.ms(oneOrigin.lag.p50)}, p99 ${fmt.ms(oneOrigin.lag.p99)}; ${cpuText(oneOrigin.cpu)})`);
    L.push(`  burst ${fmt.int(burstN)}, ${ORIGINS} origins × ${URLS_PER_ORIGIN} URLs:  ${fmt.int(fourOrigins.perS)} deliveries/s   (write → 2xx p50 ${fmt.ms(fourOrigins.lag.p50)}, p99 ${fmt.ms(fourOrigins.lag.p99)}; ${cpuText(fourOrigins.cpu)})`);
    L.push(`    ${perDeliveryText(oneOrigin)} (1 origin); ${perDeliveryText(fourOrigins).replace('CPU µs per delivery: ', '')} (${ORIGINS} origins)`);
    L.push(`  steady 500/s, outbox write → 2xx:  p50 ${fmt.ms(steady.p50)}, p99 ${fmt.ms(steady.p99)}`);
    L.push(`  healthy URL lag, idle host:        p50 ${fmt.ms(idle.p50)}, p99 ${fmt.ms(idle.p99)}`);
    L.push(`  … beside a hanging URL, same host: p50 ${fmt.ms(beside.p50)}, p99 ${fmt.ms(beside.p99)}   (${ratio.toFixed(2)}× idle p99)`);
    L.push(`  bytes stored per delivery:         ${fmt.int(perDelivery)} (deliveries + event_bodies + attempts, ${fmt.int(sizes!.n)} rows)`);
    L.push(`  receiver: ${stats.duplicates} duplicates, ${stats.rejected} rejected signatures`);
    const judge = (what: string, ok: boolean, value: string) => L.push(`  ${ok ? 'MET   ' : 'MISSED'} ${what}: ${value}`);
    judge('deliveries/s ≥ 5,000 across 4 origins', fourOrigins.perS >= 5_000, fmt.int(fourOrigins.perS));
    judge('deliveries/s ≥ 2,000 to one origin', oneOrigin.perS >= 2_000, fmt.int(oneOrigin.perS));
    judge('write → 2xx p99 ≤ 250 ms (steady)', steady.p99 <= 250, fmt.ms(steady.p99));
    judge('healthy-URL lag beside a hanging URL ≤ 1.5× idle (p99)', ratio <= 1.5, `${ratio.toFixed(2)}×`);
    process.stdout.write(L.join('\n') + '\n');
    return results;
  } finally {
    // SIGTERM, so a --cpu-prof profile gets written; SIGKILL if it hangs
    if (worker && worker.proc.exitCode === null) {
      worker.proc.kill('SIGTERM');
      const t = setTimeout(() => worker!.proc.kill('SIGKILL'), 10_000);
      await worker.exited;
      clearTimeout(t);
    }
    await receiver?.stop('SIGTERM', 5_000).catch(() => {});
    await sql?.end({ timeout: 2 }).catch(() => {});
    if (admin) {
      await admin.unsafe('drop database if exists bench_delivery with (force)').catch(() => {});
      await admin.end({ timeout: 2 }).catch(() => {});
    }
    await embedded?.stop().catch(() => {});
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
