// Shared pieces of the multi-process tests: a database, upstream and receiver per
// test, gateway processes cleaned up afterwards, bulk registration and the tally
// that checks CONTRACT §6 (nothing lost; a duplicate repeats the same webhook-id).
import { expect } from 'vitest';
import { startSimUpstream, type SimUpstream } from '../../src/sim/server.js';
import { createTestDb, type TestDb } from './db.js';
import { startReceiver, type Receiver } from './receiver.js';
import { TEST_API_KEY, TEST_SIGNING_SECRET, testEnv } from './env.js';
import { spawnGateway, type GatewayProcess } from './process.js';

export interface Fleet {
  db: TestDb;
  upstream: SimUpstream;
  receiver: Receiver;
  env: Record<string, string>;
  gateway(extra?: Record<string, string>): Promise<GatewayProcess>;
  close(): Promise<void>;
}

export async function startFleet(extraEnv: Record<string, string> = {}): Promise<Fleet> {
  const db = await createTestDb();
  const upstream = await startSimUpstream({ apiKeys: ['sk_test'] });
  const receiver = await startReceiver([TEST_SIGNING_SECRET]);
  const processes: GatewayProcess[] = [];
  // Short deadlines so leases of a killed process (2 × deadline + 5 s) expire quickly.
  const env = testEnv(db.url, upstream.url, {
    TASKHOOK_UPSTREAM_TIMEOUT_S: '1',
    // 2 s, not 1: a receiver in a busy test process answering late would otherwise
    // trip the endpoint circuit breaker (30 s) and stretch every test.
    TASKHOOK_DELIVERY_TIMEOUT_S: '2',
    TASKHOOK_RETRY_SCHEDULE: '200ms,500ms,1s,2s,5s',
    ...extraEnv,
  });
  return {
    db,
    upstream,
    receiver,
    env,
    async gateway(extra = {}) {
      const gw = await spawnGateway({ ...env, ...extra });
      processes.push(gw);
      return gw;
    },
    async close() {
      await Promise.all(processes.map((p) => { p.child.kill('SIGCONT'); return p.kill('SIGKILL'); }));
      await Promise.all([upstream.close(), receiver.close()]);
      await db.drop();
    },
  };
}

/** Registers one watch through a gateway process (the test's key; 201 expected) → its id. */
export async function registerWatch(api: GatewayProcess, body: { task_id: string; callback_url: string; metadata?: unknown }): Promise<string> {
  const res = await fetch(`${api.url}/v1/watches`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

export async function registerMany(f: Fleet, apis: GatewayProcess[], n: number, maxDurationMs = 1500): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 20) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(20, n - i) }, async (_, j) => {
        const k = i + j;
        const task = f.upstream.createTask({
          durationMs: (k * 37) % maxDurationMs,
          processingAfterMs: 0,
          capability: (['voice', 'image', 'video'] as const)[k % 3],
        });
        return registerWatch(apis[k % apis.length]!, { task_id: task.task_id, callback_url: `${f.receiver.url}/hook`, metadata: { k } });
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

export async function waitAllDelivered(db: TestDb, n: number, timeoutMs: number): Promise<number> {
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

export function tally(receiver: Receiver, ids: string[]) {
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
  const maxIdsPerWatch = Math.max(0, ...[...byWatch.values()].map((s) => s.size));
  return { requests, watchesHit: byWatch.size, missing, maxIdsPerWatch, duplicates: requests - byWatch.size };
}
