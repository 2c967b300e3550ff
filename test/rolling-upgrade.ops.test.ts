// Rolling upgrades: the previous release (the tree before the newest migration,
// see support/old-release.ts) and this one run side by side on one database, as
// they do during a deploy. Migrations are expand-only (contract steps ship a
// release later, see migrations-additive.ops.test.ts), so:
// - an old process starts on a schema a migration ahead of it (its migrator is a
//   no-op), touches none of what it does not know, and works beside a new one until
//   it is SIGTERMed mid-run, as a deploy replaces it;
// - a new process migrates on start while an old one is polling and delivering, and
//   the old one keeps working on the migrated schema.
// Either way every watch is delivered, one webhook-id per watch, signatures valid.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSimUpstream, type SimUpstream } from '../src/sim/server.js';
import { createTestDb, type TestDb } from './support/db.js';
import { TEST_API_KEY, TEST_SIGNING_SECRET, testEnv } from './support/env.js';
import { tally, waitAllDelivered } from './support/fleet.js';
import {
  appliedMigrations,
  extractPreviousRelease,
  schemaOf,
  whyNoPreviousRelease,
  type OldRelease,
} from './support/old-release.js';
import { spawnGateway, type GatewayProcess } from './support/process.js';
import { startReceiver, type Receiver } from './support/receiver.js';

const noGit = whyNoPreviousRelease();
let old: OldRelease | undefined;

beforeAll(async () => {
  if (noGit) console.warn(`rolling upgrade: skipped, ${noGit}`);
  else old = await extractPreviousRelease();
});
afterAll(async () => {
  await old?.remove();
});

/** A database, upstream and receiver, and gateway processes of either release on them. */
interface Rig {
  db: TestDb;
  upstream: SimUpstream;
  receiver: Receiver;
  start(release: 'old' | 'new', extra?: Record<string, string>): Promise<GatewayProcess>;
  close(): Promise<void>;
}

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

async function startRig(db: TestDb): Promise<Rig> {
  const upstream = await startSimUpstream({ apiKeys: ['sk_test'] });
  const receiver = await startReceiver([TEST_SIGNING_SECRET]);
  // Every attempt answered after 100 ms, so work is in flight when a process is stopped.
  receiver.fallback = { status: 200, delayMs: 100 };
  // 5 s deadlines (so 15 s leases): a duplicate can only come from a real hand-over
  // bug, not from a process starved of CPU for a few seconds on a busy machine.
  // Warnings are logged, and checked: a query the other release's schema breaks
  // shows up as "claim failed" / "work failed" there.
  const env = testEnv(db.url, upstream.url, {
    TASKHOOK_UPSTREAM_TIMEOUT_S: '5',
    TASKHOOK_DELIVERY_TIMEOUT_S: '5',
    TASKHOOK_RETRY_SCHEDULE: '200ms,500ms,1s,2s,5s',
    LOG_LEVEL: 'warn',
  });
  const processes: GatewayProcess[] = [];
  return {
    db,
    upstream,
    receiver,
    async start(release, extra = {}) {
      const gw = await spawnGateway({ ...env, ...extra }, 30_000, release === 'old' ? old!.dir : undefined);
      processes.push(gw);
      return gw;
    },
    async close() {
      await Promise.all(processes.map((p) => p.kill('SIGKILL')));
      await Promise.all([upstream.close(), receiver.close()]);
      await db.drop();
    },
  };
}

/** Registers n watches through one process's API; task k finishes upstream after durationMs(k). */
async function register(r: Rig, api: GatewayProcess, n: number, durationMs: (k: number) => number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 20) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(20, n - i) }, async (_, j) => {
        const k = i + j;
        const task = r.upstream.createTask({ durationMs: durationMs(k), processingAfterMs: 0, capability: (['voice', 'image', 'video'] as const)[k % 3] });
        const res = await fetch(`${api.url}/v1/watches`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ task_id: task.task_id, callback_url: `${r.receiver.url}/hook`, metadata: { k } }),
        });
        expect(res.status, await res.clone().text()).toBe(201);
        return ((await res.json()) as { id: string }).id;
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

/** How many of these watches the receiver has had a webhook for. */
const deliveredOf = (ids: string[]) => {
  const want = new Set(ids);
  return (all: Receiver['received']) => new Set(all.filter((x) => want.has(x.json?.watch_id)).map((x) => x.json.watch_id)).size;
};

async function openWatches(db: TestDb): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from watches where status <> 'delivered'`;
  return row!.n;
}

/** pino lines at warn or above: a process's complaints (none expected of either release). */
function complaints(gw: GatewayProcess): string[] {
  return gw
    .output()
    .split('\n')
    .filter((l) => {
      if (!l.startsWith('{')) return false;
      try {
        return (JSON.parse(l) as { level?: number }).level! >= 40;
      } catch {
        return true; // a cut-off line: show it
      }
    });
}

const alive = (gw: GatewayProcess) => gw.child.exitCode === null && gw.child.signalCode === null;

/** waitAllDelivered, and on a timeout what the watches left over are waiting for, and what the processes said. */
async function waitAll(r: Rig, n: number, processes: GatewayProcess[]): Promise<number> {
  try {
    return await waitAllDelivered(r.db, n, 30_000);
  } catch (err) {
    const stuck = await r.db.sql`
      select w.id, w.status, w.task_id, u.next_poll_at - now() as due_in, u.lease_token is not null as leased, u.owner_id, u.polls,
             s.status as upstream_status, (select json_agg(json_build_object('status', d.status, 'attempts', d.attempts, 'due_in', d.next_attempt_at - now(), 'leased', d.lease_token is not null))
                                            from deliveries d where d.watch_id = w.id) as deliveries
        from watches w
        left join upstream_tasks u on u.tenant_id = w.tenant_id and u.task_id = w.task_id
        left join task_snapshots s on s.tenant_id = w.tenant_id and s.task_id = w.task_id
       where w.status <> 'delivered' limit 10`;
    const said = processes.map((p, i) => `--- process ${i} (exit ${p.child.exitCode ?? p.child.signalCode ?? 'running'}):\n${p.output().slice(-3000)}`);
    throw new Error(`${(err as Error).message}\nleft over: ${JSON.stringify(stuck, null, 1)}\n${said.join('\n')}`);
  }
}

function expectAllDeliveredOnce(r: Rig, ids: string[]) {
  const t = tally(r.receiver, ids); // also expects every request's signature to verify
  expect(t.missing).toEqual([]);
  expect(t.watchesHit).toBe(ids.length);
  expect(t.maxIdsPerWatch).toBe(1);
  expect(t.duplicates).toBe(0);
  return t;
}

describe('rolling upgrade: the previous release beside this one on one database', () => {
  it('an old process on the new schema: starts, leaves the schema alone, works beside a new one, drains on SIGTERM', async (ctx) => {
    if (noGit) ctx.skip(noGit);
    const started = Date.now();
    const r = (rig = await startRig(await createTestDb())); // migrated by this release
    const applied = await appliedMigrations(r.db.sql);
    expect(applied).toHaveLength(old!.current.length);
    const schema = await schemaOf(r.db.sql);

    // The old process runs its own migrator on start: it must be a no-op, not an error.
    const o = await r.start('old');
    expect(await appliedMigrations(r.db.sql)).toEqual(applied);
    expect(await schemaOf(r.db.sql)).toEqual(schema);

    // Alone, it registers, polls and delivers on the schema it does not know all of.
    const viaOld = await register(r, o, 100, (k) => (k * 37) % 2000);
    await r.receiver.waitFor((all) => deliveredOf(viaOld)(all) >= 20);

    // The new process joins; both take registrations and share the work.
    const n = await r.start('new');
    const viaNew = await register(r, n, 100, (k) => 1000 + ((k * 53) % 3000));
    await r.receiver.waitFor((all) => deliveredOf(viaNew)(all) >= 20);

    // Each release reads what the other registered.
    for (const [gw, id] of [[o, viaNew[0]!], [n, viaOld[0]!]] as const) {
      const res = await fetch(`${gw.url}/v1/watches/${id}`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ id });
    }

    // The deploy replaces the old process mid-run: it drains and exits 0.
    const open = await openWatches(r.db);
    expect(open).toBeGreaterThan(0);
    expect(await o.kill('SIGTERM')).toBe(0);

    const ms = await waitAll(r, 200, [o, n]);
    const t = expectAllDeliveredOnce(r, [...viaOld, ...viaNew]);
    const res = await fetch(`${n.url}/v1/watches/${viaOld[99]!}`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
    expect(await res.json()).toMatchObject({ id: viaOld[99], status: 'delivered' });
    expect(await schemaOf(r.db.sql)).toEqual(schema);
    expect(await appliedMigrations(r.db.sql)).toEqual(applied);
    expect(complaints(o)).toEqual([]);
    expect(complaints(n)).toEqual([]);
    console.info(
      `rolling upgrade (old on new schema): ${old!.rev.slice(0, 8)}^ (${old!.migrations.length} migrations) beside HEAD (${old!.current.length}); ` +
        `200 watches, ${open} open at the old one's SIGTERM, rest delivered ${ms} ms later, ${t.requests} webhooks, 0 duplicates; ${Date.now() - started} ms`,
    );
  });

  it('a new process migrates on start while an old one polls and delivers; the old one keeps working on the migrated schema', async (ctx) => {
    if (noGit) ctx.skip(noGit);
    const started = Date.now();
    const r = (rig = await startRig(await createTestDb({ empty: true })));

    // The old release alone: it migrates an empty database to its own schema.
    const o = await r.start('old');
    const before = await appliedMigrations(r.db.sql);
    expect(before).toHaveLength(old!.migrations.length);
    const first = await register(r, o, 100, (k) => 500 + ((k * 53) % 6000));
    await r.receiver.waitFor((all) => deliveredOf(first)(all) >= 20);

    // A new API process starts and applies the newer migration(s) under the old one's feet.
    const open = await openWatches(r.db);
    expect(open).toBeGreaterThan(0);
    const api = await r.start('new', { TASKHOOK_ROLE: 'api' });
    const after = await appliedMigrations(r.db.sql);
    expect(after).toHaveLength(old!.current.length);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(alive(o)).toBe(true);
    const openAfterMigration = await openWatches(r.db);
    // Migrating in place ends where a fresh migration does.
    const fresh = await createTestDb();
    try {
      expect(await schemaOf(r.db.sql)).toEqual(await schemaOf(fresh.sql));
    } finally {
      await fresh.drop();
    }

    // Registrations through both releases; the old process is the only worker, so
    // every one of these delivered is the old code polling and delivering on the new schema.
    // Half of them finish within a few seconds, half 15–20 s later: the new worker's boot takes
    // seconds on a loaded box, and the old one must still have work in flight when it is stopped.
    const second = [
      ...(await register(r, o, 50, (k) => (k % 2 ? 300 + ((k * 83) % 4000) : 15_000 + ((k * 83) % 5000)))),
      ...(await register(r, api, 50, (k) => (k % 2 ? 300 + ((k * 89) % 4000) : 15_000 + ((k * 89) % 5000)))),
    ];
    await r.receiver.waitFor((all) => deliveredOf(second)(all) >= 30);

    // Then the deploy goes on: a new worker, and the old process is replaced mid-run.
    const worker = await r.start('new', { TASKHOOK_ROLE: 'worker' });
    const openAtStop = await openWatches(r.db);
    expect(openAtStop).toBeGreaterThan(0);
    expect(await o.kill('SIGTERM')).toBe(0);
    const ms = await waitAll(r, 200, [o, api, worker]);
    const t = expectAllDeliveredOnce(r, [...first, ...second]);
    expect(complaints(o)).toEqual([]);
    expect(complaints(api)).toEqual([]);
    expect(complaints(worker)).toEqual([]);
    console.info(
      `rolling upgrade (migrate under an old process): ${open} → ${openAfterMigration} of 100 open while HEAD applied ${after.length - before.length} migration(s); ` +
        `${openAtStop} open at the old one's SIGTERM, rest delivered ${ms} ms later; ${t.requests} webhooks, 0 duplicates; ${Date.now() - started} ms`,
    );
  });
});
