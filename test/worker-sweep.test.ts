// A claim that races the statement declaring its worker dead. The claim locks its worker
// row FOR SHARE, so a retire or a sweep of that worker waits for the claim's commit — but a
// statement reads the table with the snapshot it began with, so the rows the claim had just
// taken looked unowned to it, and stayed owned by a dead worker that nobody would ever free
// (CI found it: a Postgres restart under a self-fenced worker left 25 watches watching).
// These run the interleaving by hand, on real Postgres: the claim held open in a
// transaction, the retire or sweep started and seen waiting on its lock, then the commit.
import postgres from 'postgres';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLAIM_SQL, claimParams, heartbeat, registerWorker, retireWorker } from '../src/poller/sql.js';
import { createTestDb, type TestDb } from './support/db.js';
import { until } from './support/wait.js';

let db: TestDb;
const clients: postgres.Sql[] = [];
const client = () => {
  const c = postgres(db.url, { max: 1, onnotice: () => {} });
  clients.push(c);
  return c;
};

beforeEach(async () => {
  db = await createTestDb();
});
afterEach(async () => {
  while (clients.length) await clients.pop()!.end({ timeout: 1 });
  await db.drop();
});

const N = 25;
const worker = () => registerWorker(db.sql, { host: 'test', pid: 1, version: 'test' });

async function addDueTasks(n: number) {
  await db.sql`
    insert into upstream_tasks (tenant_id, task_id, next_poll_at)
    select 'ten_a', 'task_' || g, now() - interval '1 second' from generate_series(1, ${n}) g`;
}

/** Tasks whose owner is a dead worker: nobody polls them, nobody frees them. */
async function ownedByTheDead(): Promise<number> {
  const [r] = await db.sql<{ n: number }[]>`
    select count(*)::int as n from upstream_tasks u join workers w on w.id = u.owner_id where w.dead_at is not null`;
  return r!.n;
}

/**
 * Claims every due task for `w` in a transaction left open; runs `declareDead` on its own
 * connection, waits until Postgres shows it waiting on a lock, then commits the claim.
 */
async function claimRacing(w: number, declareDead: (sql: postgres.Sql) => Promise<unknown>) {
  const claiming = client();
  let commit!: () => void;
  const committed = new Promise<void>((r) => (commit = r));
  let claimed!: (n: number) => void;
  const claimedN = new Promise<number>((r) => (claimed = r));
  const tx = claiming.begin(async (t) => {
    const rows = await t.unsafe(CLAIM_SQL, claimParams({ worker: w, limit: 1_000, aheadMs: 0 }));
    claimed(rows.length);
    await committed;
  });
  expect(await claimedN).toBe(N);
  const sweeper = client();
  const [{ pid }] = (await sweeper`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
  const declared = declareDead(sweeper);
  await until('the retire/sweep to wait on the claim\'s lock', async () => {
    const [r] = await db.sql<{ waiting: boolean }[]>`select wait_event_type = 'Lock' as waiting from pg_stat_activity where pid = ${pid}`;
    return r?.waiting ? true : undefined;
  }, 10_000);
  commit();
  await tx;
  return declared;
}

describe('a claim racing its worker\'s death', () => {
  it('a retire that waited for the claim frees what the claim took', async () => {
    await addDueTasks(N);
    const w = await worker();
    const freed = await claimRacing(w, (sql) => retireWorker(sql, { worker: w, spreadMs: 0 }));
    expect(freed).toBe(N);
    expect(await ownedByTheDead()).toBe(0);
    const [r] = await db.sql<{ n: number }[]>`select count(*)::int as n from upstream_tasks where owner_id is null`;
    expect(r!.n).toBe(N);
  });

  it('a sweep that declared the claimer dead while it claimed: its next beat frees what the claim took', async () => {
    await addDueTasks(N);
    const stale = await worker();
    const live = await worker();
    // the claimer's heartbeat is older than the timeout: the live worker's beat declares it dead
    await db.sql`update workers set heartbeat_at = now() - interval '1 minute' where id = ${stale}`;
    const beat = (sql: postgres.Sql) => heartbeat(sql, { worker: live, owned: 0, timeoutMs: 8_000, spreadMs: 0, countUnowned: false });
    const first = (await claimRacing(stale, beat)) as Awaited<ReturnType<typeof beat>>;
    // one statement cannot see the rows committed while it waited (its snapshot is older) …
    expect(first).toMatchObject({ alive: 1, freed: 0 });
    expect(await ownedByTheDead()).toBe(N);
    const [dead] = await db.sql<{ dead: boolean }[]>`select dead_at is not null as dead from workers where id = ${stale}`;
    expect(dead!.dead).toBe(true);
    // … the next beat (a second later) can
    expect((await beat(db.sql)).freed).toBe(N);
    expect(await ownedByTheDead()).toBe(0);
  });

  it('tasks left owned by a dead worker any other way are freed by the next heartbeat of any live worker', async () => {
    await addDueTasks(N);
    const gone = await worker();
    const live = await worker();
    await db.sql`update upstream_tasks set owner_id = ${gone}`;
    await db.sql`update workers set dead_at = now() where id = ${gone}`;
    const hb = await heartbeat(db.sql, { worker: live, owned: 0, timeoutMs: 8_000, spreadMs: 0, countUnowned: false });
    expect(hb.freed).toBe(N);
    expect(await ownedByTheDead()).toBe(0);
    // and a second beat finds nothing more to do
    expect((await heartbeat(db.sql, { worker: live, owned: 0, timeoutMs: 8_000, spreadMs: 0, countUnowned: false })).freed).toBe(0);
  });

  it('a claim that begins after its worker was retired claims nothing', async () => {
    await addDueTasks(N);
    const w = await worker();
    await retireWorker(db.sql, { worker: w, spreadMs: 0 });
    const rows = await db.sql.unsafe(CLAIM_SQL, claimParams({ worker: w, limit: 1_000, aheadMs: 0 }));
    expect(rows.length).toBe(0);
  });
});
