// Fault: the database goes away under a running gateway (CONTRACT §6). Postgres is
// restarted mid-run, or the gateway's connections are killed from the server side;
// the gateway process must ride it out by itself: /readyz turns 503 while the
// database is down and back to 200 after, nothing is lost, the process never exits.
// This file runs its OWN Postgres (the suite's server is shared by other files, so
// it must not be restarted), started with startEmbedded in a temp dir.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type EmbeddedDatabase } from '../src/db/embedded.js';
import { startSimUpstream, type SimUpstream } from '../src/sim/server.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { TEST_API_KEY, TEST_SIGNING_SECRET, testEnv } from './support/env.js';
import { spawnGateway, type GatewayProcess } from './support/process.js';

const N = 150;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// One Postgres of our own for the file (initdb takes seconds); one database per case.
let dir: string | undefined;
let server: EmbeddedDatabase | undefined;
const pgLog: string[] = [];
let dbCount = 0;

async function ensureServer(): Promise<EmbeddedDatabase> {
  server ??= await startEmbedded(dir!, (m) => pgLog.push(m));
  return server;
}

async function stopServer(): Promise<void> {
  const s = server;
  server = undefined;
  await s?.stop();
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'taskhook-outage-'));
  await ensureServer();
});

afterAll(async () => {
  await stopServer().catch(() => {});
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
});

interface Rig {
  url: string;
  sql: postgres.Sql;
  upstream: SimUpstream;
  receiver: Receiver;
  gw: GatewayProcess;
  exits: string[];
}

async function setup(): Promise<Rig> {
  // A case that failed with the server down leaves it stopped: start it again.
  const { url: adminUrl } = await ensureServer();
  const name = `outage_${++dbCount}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  // fetch_types off: postgres.js does not await that query, so a close during it would be
  // an unhandled rejection in this test process (we only read ints and text here).
  const sql = postgres(url, { max: 1, onnotice: () => {}, fetch_types: false });
  cleanups.push(() => sql.end({ timeout: 1 }));
  const upstream = await startSimUpstream({ apiKeys: ['sk_test'] });
  cleanups.push(() => upstream.close());
  const receiver = await startReceiver([TEST_SIGNING_SECRET]);
  cleanups.push(() => receiver.close());
  // Deliveries take a little while, so some are in flight when the database goes.
  receiver.fallback = { status: 200, delayMs: 100 };
  const gw = await spawnGateway(testEnv(url, upstream.url, { TASKHOOK_UPSTREAM_TIMEOUT_S: '1', TASKHOOK_DELIVERY_TIMEOUT_S: '1' }));
  cleanups.push(() => gw.kill('SIGKILL'));
  const rig: Rig = { url, sql, upstream, receiver, gw, exits: [] };
  gw.child.on('exit', (code, signal) => rig.exits.push(`exit code=${code} signal=${signal}`));
  return rig;
}

function alive(rig: Rig): boolean {
  return rig.gw.child.exitCode === null && rig.gw.child.signalCode === null && rig.exits.length === 0;
}

function expectAlive(rig: Rig) {
  expect(alive(rig), `gateway exited (${rig.exits.join(', ')}):\n${rig.gw.output()}`).toBe(true);
}

async function status(url: string): Promise<number> {
  return fetch(url, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status, () => 0);
}

/** Polls `url` until it answers `want`; returns the ms it took. */
async function waitForStatus(rig: Rig, url: string, want: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const got = await status(url);
    if (got === want) return Date.now() - started;
    expectAlive(rig);
    if (Date.now() - started > timeoutMs) throw new Error(`${url} still answers ${got} after ${timeoutMs} ms (wanted ${want})\n${rig.gw.output()}`);
    await sleep(100);
  }
}

async function registerMany(rig: Rig, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, n - i) }, async (_, j) => {
        const k = i + j;
        // finishing at staggered times over 0-3 s
        const task = rig.upstream.createTask({ durationMs: (k * 97) % 3000, processingAfterMs: 0, capability: (['voice', 'image', 'video'] as const)[k % 3] });
        const res = await fetch(`${rig.gw.url}/v1/watches`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ task_id: task.task_id, callback_url: `${rig.receiver.url}/hook`, metadata: { k } }),
        });
        expect(res.status).toBe(201);
        return ((await res.json()) as { id: string }).id;
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

/** Waits (querying the database directly) until all n watches are delivered; tolerates a database still coming up. */
async function waitAllDelivered(rig: Rig, n: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  let last = 'no answer yet';
  for (;;) {
    try {
      const rows = await rig.sql<{ status: string; n: number }[]>`select status, count(*)::int as n from watches group by status`;
      last = JSON.stringify(rows);
      if (rows.length === 1 && rows[0]!.status === 'delivered' && rows[0]!.n === n) return Date.now() - started;
    } catch (err) {
      last = `query failed: ${String(err)}`;
    }
    expectAlive(rig);
    if (Date.now() - started > timeoutMs) throw new Error(`not all ${n} watches delivered after ${timeoutMs} ms: ${last}\n${rig.gw.output()}`);
    await sleep(100);
  }
}

function tally(receiver: Receiver, ids: string[]) {
  const byWatch = new Map<string, Set<string>>();
  for (const r of receiver.received) {
    expect(r.verified, r.verifyError).toBe(true);
    const set = byWatch.get(r.json.watch_id) ?? new Set<string>();
    set.add(r.headers['webhook-id'] as string);
    byWatch.set(r.json.watch_id, set);
  }
  return {
    requests: receiver.received.length,
    watchesHit: byWatch.size,
    missing: ids.filter((id) => !byWatch.has(id)),
    maxIdsPerWatch: Math.max(...[...byWatch.values()].map((s) => s.size)),
    duplicates: receiver.received.length - byWatch.size,
  };
}

describe('database outage', () => {
  it('Postgres restarted mid-run: /readyz 503 while down, recovers by itself, no loss', async () => {
    const rig = await setup();
    const ids = await registerMany(rig, N);
    await rig.receiver.waitFor((all) => all.length >= 30, 30_000);

    const downAt = Date.now();
    await stopServer();
    const received0 = rig.receiver.received.length;
    // the stop really interrupted work
    expect(new Set(rig.receiver.received.map((r) => r.json.watch_id)).size).toBeLessThan(N);
    const notReadyMs = await waitForStatus(rig, `${rig.gw.url}/readyz`, 503, 5_000);
    expect(await status(`${rig.gw.url}/healthz`)).toBe(200);
    expectAlive(rig);
    // stay down ~3 s, checking the process is still up and /readyz stays 503 throughout
    while (Date.now() - downAt < 3_000) {
      expect(await status(`${rig.gw.url}/readyz`)).toBe(503);
      // the API says the database is unavailable (503 + Retry-After), not that it broke (500)
      const reg = await fetch(`${rig.gw.url}/v1/watches`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ task_id: 'during-outage', callback_url: `${rig.receiver.url}/hook` }),
        signal: AbortSignal.timeout(15_000),
      });
      expect(reg.status, await reg.text()).toBe(503);
      expect(reg.headers.get('retry-after')).toBe('1');
      expect(await status(`${rig.gw.url}/healthz`)).toBe(200);
      expectAlive(rig);
      await sleep(250);
    }

    await ensureServer();
    const upAt = Date.now();
    const readyMs = await waitForStatus(rig, `${rig.gw.url}/readyz`, 200, 20_000);
    await waitAllDelivered(rig, N, 45_000);
    const deliveredMs = Date.now() - upAt;
    const [pending] = await rig.sql<{ n: number }[]>`select count(*)::int as n from deliveries where status <> 'delivered'`;
    expect(pending!.n).toBe(0);

    const t = tally(rig.receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.watchesHit).toBe(N);
    expect(t.maxIdsPerWatch).toBe(1);
    expectAlive(rig);
    console.info(
      `db restart: ${N} watches, ${received0} webhooks before the stop, /readyz 503 after ${notReadyMs} ms, down ${upAt - downAt} ms; ` +
        `ready ${readyMs} ms and all ${N} delivered ${deliveredMs} ms after restart; ${t.duplicates} duplicate(s), same webhook-id; process never exited`,
    );
  });

  it('server-side termination of the gateway connections mid-run: no loss, no exit', async () => {
    const rig = await setup();
    const ids = await registerMany(rig, N);
    await rig.receiver.waitFor((all) => all.length >= 30, 30_000);

    const started = Date.now();
    let terminated = 0;
    expect(new Set(rig.receiver.received.map((r) => r.json.watch_id)).size).toBeLessThan(N);
    for (let i = 0; i < 5; i++) {
      const rows = await rig.sql<{ ok: boolean }[]>`
        select pg_terminate_backend(pid) as ok from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()`;
      terminated += rows.filter((r) => r.ok).length;
      expectAlive(rig);
      await sleep(500);
    }
    expect(terminated).toBeGreaterThan(0);
    expect(await status(`${rig.gw.url}/healthz`)).toBe(200);

    const readyMs = await waitForStatus(rig, `${rig.gw.url}/readyz`, 200, 20_000);
    await waitAllDelivered(rig, N, 45_000);
    const deliveredMs = Date.now() - started;
    const t = tally(rig.receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.watchesHit).toBe(N);
    expect(t.maxIdsPerWatch).toBe(1);
    expectAlive(rig);
    console.info(
      `terminate backends: ${N} watches, ${terminated} connection(s) killed over 5 rounds; ready ${readyMs} ms after, ` +
        `all delivered ${deliveredMs} ms after the first kill; ${t.duplicates} duplicate(s), same webhook-id; process never exited`,
    );
  });
});
