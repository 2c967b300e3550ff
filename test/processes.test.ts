// Real processes: kill -9 a gateway mid-flight and restart it; race two gateways on
// one database. The promise under test is CONTRACT §6: every watch ends with its
// webhook acknowledged, and a duplicate only ever repeats the same webhook-id.
import { afterEach, describe, expect, it } from 'vitest';
import { startSimUpstream, type SimUpstream } from '../src/sim/server.js';
import { createTestDb, type TestDb } from './support/db.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { TEST_API_KEY, TEST_SIGNING_SECRET, testEnv } from './support/env.js';
import { spawnGateway, type GatewayProcess } from './support/process.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
});

async function setup() {
  const db = await createTestDb();
  const upstream = await startSimUpstream({ apiKeys: ['sk_test'] });
  const receiver = await startReceiver([TEST_SIGNING_SECRET]);
  cleanups.push(() => db.drop(), () => upstream.close(), () => receiver.close());
  // Short deadlines so leases of a killed process (2 × deadline + 5 s) expire quickly.
  const env = testEnv(db.url, upstream.url, { TASKHOOK_UPSTREAM_TIMEOUT_S: '1', TASKHOOK_DELIVERY_TIMEOUT_S: '1', TASKHOOK_RETRY_SCHEDULE: '200ms,500ms,1s,2s,5s' });
  return { db, upstream, receiver, env };
}

async function gateway(env: Record<string, string>): Promise<GatewayProcess> {
  const gw = await spawnGateway(env);
  cleanups.push(() => gw.kill('SIGKILL'));
  return gw;
}

async function registerMany(gws: GatewayProcess[], upstream: SimUpstream, receiver: Receiver, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 20) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(20, n - i) }, async (_, j) => {
        const k = i + j;
        const task = upstream.createTask({ durationMs: (k * 37) % 1500, processingAfterMs: 0, capability: (['voice', 'image', 'video'] as const)[k % 3] });
        const res = await fetch(`${gws[k % gws.length]!.url}/v1/watches`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ task_id: task.task_id, callback_url: `${receiver.url}/hook`, metadata: { k } }),
        });
        expect(res.status).toBe(201);
        return ((await res.json()) as { id: string }).id;
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

async function waitAllDelivered(db: TestDb, n: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from watches where status = 'delivered'`;
    if (row!.n === n) return Date.now() - started;
    if (Date.now() - started > timeoutMs) {
      const states = await db.sql`select status, count(*)::int from watches group by status`;
      throw new Error(`only ${row!.n}/${n} delivered after ${timeoutMs} ms: ${JSON.stringify(states)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function tally(receiver: Receiver, ids: string[]) {
  const byWatch = new Map<string, Set<string>>();
  let requests = 0;
  for (const r of receiver.received) {
    expect(r.verified, r.verifyError).toBe(true);
    requests++;
    const set = byWatch.get(r.json.watch_id) ?? new Set<string>();
    set.add(r.headers['webhook-id'] as string);
    byWatch.set(r.json.watch_id, set);
  }
  const missing = ids.filter((id) => !byWatch.has(id));
  const distinctIds = [...byWatch.values()].map((s) => s.size);
  return { requests, watchesHit: byWatch.size, missing, maxIdsPerWatch: Math.max(...distinctIds), duplicates: requests - byWatch.size };
}

describe('processes', () => {
  it('SIGKILL with deliveries in flight, then restart: every watch delivered, duplicates share the webhook-id', async () => {
    const { db, upstream, receiver, env } = await setup();
    receiver.fallback = { status: 200, delayMs: 150 };
    const first = await gateway(env);
    const n = 200;
    const ids = await registerMany([first], upstream, receiver, n);
    await receiver.waitFor((all) => all.length >= 40, 30_000);
    expect(await first.kill('SIGKILL')).toBeNull();
    const [{ pending } = { pending: 0 }] = await db.sql<{ pending: number }[]>`
      select count(*)::int as pending from watches where status <> 'delivered'`;
    expect(pending).toBeGreaterThan(0); // the kill really interrupted work

    await gateway(env);
    const recoveredMs = await waitAllDelivered(db, n, 60_000);
    const t = tally(receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.watchesHit).toBe(n);
    expect(t.maxIdsPerWatch).toBe(1);
    console.info(`crash: ${n} watches, ${pending} unfinished at kill, all delivered ${recoveredMs} ms after restart, ${t.duplicates} duplicate request(s), all with the same webhook-id`);
  });

  it('two processes on one database deliver every watch exactly once', async () => {
    const { db, upstream, receiver, env } = await setup();
    const gws = [await gateway(env), await gateway(env)];
    const n = 200;
    const ids = await registerMany(gws, upstream, receiver, n);
    await waitAllDelivered(db, n, 60_000);
    const t = tally(receiver, ids);
    expect(t.missing).toEqual([]);
    expect(t.requests).toBe(n);
    expect(t.duplicates).toBe(0);
    // both processes did work
    const polledBy = await db.sql`select count(*)::int as n from task_snapshots`;
    expect(polledBy[0]!.n).toBe(n);
  });

  it('SIGTERM drains and exits 0', async () => {
    const { env } = await setup();
    const gw = await gateway(env);
    expect(await gw.kill('SIGTERM')).toBe(0);
  });
});
