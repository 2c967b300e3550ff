// Retention (TASKHOOK_RETENTION_DAYS): one purge pass removes exactly the finished
// watches past retention with their deliveries, attempts and orphaned snapshots, in
// batches, and leaves active, recent and still-referenced rows alone.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { createRetention, purgeOnce } from '../src/retention.js';
import { createLogger } from '../src/log.js';
import { createTestDb, type TestDb } from './support/db.js';

const DAY = 86_400_000;
const RETENTION = 30 * DAY;

let db: TestDb;
/** A fresh database for each test of the calling describe. */
function usesDatabase() {
  beforeEach(async () => {
    db = await createTestDb();
  });
  afterEach(async () => {
    await db.drop();
  });
}

interface Seed {
  prefix: string;
  n: number;
  /** watch status, cycled over the n watches */
  statuses: string[];
  ageDays: number;
  /** status of the watch's deliveries; default: the final status matching the watch */
  deliveryStatus?: string;
  /** task_id shared by every watch of this seed (else one task per watch) */
  taskId?: string;
  snapshotAgeDays?: number;
  /** also keep the task on the poll schedule (an active watch) */
  scheduled?: boolean;
}

const FINAL: Record<string, string> = { delivered: 'delivered', undeliverable: 'undeliverable', cancelled: 'cancelled', delivering: 'pending', watching: 'pending' };

/** n watches, two deliveries each with three attempts, and a snapshot per task. */
async function seed(s: Seed) {
  const { sql } = db;
  for (let i = 0; i < s.n; i++) {
    const status = s.statuses[i % s.statuses.length]!;
    const id = `wat_${s.prefix}_${i}`;
    const task = s.taskId ?? `${s.prefix}-task-${i}`;
    await sql`
      insert into watches (id, tenant_id, task_id, callback_url, events, status, created_at, updated_at)
      values (${id}, 'ten_a', ${task}, ${`https://example.com/hook/${id}`}, ${['task.completed']}, ${status},
              now() - ${s.ageDays + 1} * interval '1 day', now() - ${s.ageDays} * interval '1 day')`;
    for (let j = 0; j < 2; j++) {
      const msg = `msg_${s.prefix}_${i}_${j}`;
      await sql`
        insert into deliveries (id, tenant_id, watch_id, event_type, terminal, callback_url, payload, status, attempts, created_at, updated_at)
        values (${msg}, 'ten_a', ${id}, ${j === 0 ? 'task.processing' : 'task.completed'}, ${j === 1}, 'https://example.com/hook', '{}',
                ${s.deliveryStatus ?? FINAL[status]!}, 3, now() - ${s.ageDays + 1} * interval '1 day', now() - ${s.ageDays} * interval '1 day')`;
      await sql`
        insert into delivery_attempts (delivery_id, attempted_at, duration_ms, response_status, response_excerpt)
        select ${msg}, now() - ${s.ageDays} * interval '1 day', 12, 500, 'oops' from generate_series(1, 3)`;
    }
    if (i === 0 || !s.taskId) {
      await sql`
        insert into task_snapshots (tenant_id, task_id, status, snapshot, updated_at)
        values ('ten_a', ${task}, 'completed', '{}', now() - ${s.snapshotAgeDays ?? s.ageDays + 0.5} * interval '1 day')
        on conflict do nothing`;
      if (s.scheduled) await sql`insert into upstream_tasks (tenant_id, task_id, next_poll_at) values ('ten_a', ${task}, now())`;
    }
  }
}

async function state() {
  const { sql } = db;
  const watches = (await sql<{ id: string }[]>`select id from watches order by id`).map((r) => r.id);
  const snapshots = (await sql<{ task_id: string }[]>`select task_id from task_snapshots order by task_id`).map((r) => r.task_id);
  const [orphans] = await sql<{ deliveries: number; attempts: number }[]>`
    select (select count(*) from deliveries d where not exists (select 1 from watches w where w.id = d.watch_id))::int as deliveries,
           (select count(*) from delivery_attempts a where not exists (select 1 from deliveries d where d.id = a.delivery_id))::int as attempts`;
  const [counts] = await sql<{ deliveries: number; attempts: number }[]>`
    select (select count(*) from deliveries)::int as deliveries, (select count(*) from delivery_attempts)::int as attempts`;
  return { watches, snapshots, orphans: orphans!, counts: counts! };
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `wat_${prefix}_${i}`);

describe('purgeOnce', () => {
  usesDatabase();
  beforeEach(async () => {
    // 50 finished watches 40 days old: all go, with their deliveries, attempts and snapshots.
    await seed({ prefix: 'old', n: 50, statuses: ['delivered', 'undeliverable', 'cancelled'], ageDays: 40 });
    // finished, but recent: stay.
    await seed({ prefix: 'recent', n: 5, statuses: ['delivered', 'undeliverable', 'cancelled'], ageDays: 2 });
    // old but still active (a long watch, a delivery still retrying): stay.
    await seed({ prefix: 'watching', n: 3, statuses: ['watching'], ageDays: 40, scheduled: true });
    await seed({ prefix: 'delivering', n: 3, statuses: ['delivering'], ageDays: 40 });
    // finished and old, but a task.processing event is still pending for it: stays until it is sent.
    await seed({ prefix: 'pending', n: 1, statuses: ['delivered'], ageDays: 40, deliveryStatus: 'pending' });
    // two old finished watches and one active on the same task: the old ones go, the snapshot stays.
    await seed({ prefix: 'shared_old', n: 2, statuses: ['delivered'], ageDays: 40, taskId: 'shared-task' });
    await seed({ prefix: 'shared_live', n: 1, statuses: ['watching'], ageDays: 1, taskId: 'shared-task', snapshotAgeDays: 45 });
    // a snapshot nobody refers to but written recently: stays (it may belong to a watch being registered).
    await db.sql`insert into task_snapshots (tenant_id, task_id, status, snapshot, updated_at) values ('ten_a', 'fresh-orphan', 'completed', '{}', now() - interval '1 hour')`;
    // the same task_id under another tenant, referenced there: stays.
    await db.sql`
      insert into watches (id, tenant_id, task_id, callback_url, events, status, updated_at)
      values ('wat_other_0', 'ten_b', 'old-task-0', 'https://example.com/b', ${['task.completed']}, 'watching', now())`;
    await db.sql`insert into task_snapshots (tenant_id, task_id, status, snapshot, updated_at) values ('ten_b', 'old-task-0', 'processing', '{}', now() - interval '90 days')`;
  });

  const kept = [
    ...ids('recent', 5),
    ...ids('watching', 3),
    ...ids('delivering', 3),
    ...ids('pending', 1),
    ...ids('shared_live', 1),
    'wat_other_0',
  ].sort();
  const keptSnapshots = [
    ...Array.from({ length: 5 }, (_, i) => `recent-task-${i}`),
    ...Array.from({ length: 3 }, (_, i) => `watching-task-${i}`),
    ...Array.from({ length: 3 }, (_, i) => `delivering-task-${i}`),
    'pending-task-0',
    'shared-task',
    'fresh-orphan',
    'old-task-0', // ten_b's
  ].sort();

  it('removes exactly the old finished watches, their deliveries, attempts and orphaned snapshots, in batches of 7', async () => {
    const before = await state();
    const r = await purgeOnce(db.sql, RETENTION, 7);

    const after = await state();
    expect(after.watches).toEqual(kept);
    expect(after.snapshots).toEqual(keptSnapshots);
    expect(after.orphans).toEqual({ deliveries: 0, attempts: 0 });
    // 52 watches (50 old + 2 shared) × 2 deliveries × 3 attempts
    expect(r).toMatchObject({ watches: 52, deliveries: 104, attempts: 312, snapshots: 50 });
    expect(after.counts).toEqual({ deliveries: before.counts.deliveries - 104, attempts: before.counts.attempts - 312 });
    // ⌈52/7⌉ = 8 watch batches (the 8th short) and ⌈50/7⌉ = 8 snapshot batches
    expect(r.batches).toBe(16);

    // Nothing left to do: a second pass is a no-op.
    expect(await purgeOnce(db.sql, RETENTION, 7)).toEqual({ watches: 0, deliveries: 0, attempts: 0, snapshots: 0, batches: 2 });
  });

  it('gives the same result in one big batch', async () => {
    const r = await purgeOnce(db.sql, RETENTION, 500);
    expect(r).toEqual({ watches: 52, deliveries: 104, attempts: 312, snapshots: 50, batches: 2 });
    expect((await state()).watches).toEqual(kept);
  });

  it('keeps everything with retention 0 (keep forever)', async () => {
    const before = await state();
    expect(await purgeOnce(db.sql, 0, 7)).toEqual({ watches: 0, deliveries: 0, attempts: 0, snapshots: 0, batches: 0 });
    expect(await state()).toEqual(before);
  });

  it('a longer retention keeps the 40-day-old watches', async () => {
    const r = await purgeOnce(db.sql, 60 * DAY, 7);
    expect(r.watches).toBe(0);
    expect((await state()).watches).toHaveLength(kept.length + 52);
  });

  it('skips a watch another transaction holds instead of waiting for it, and takes it next pass', async () => {
    const holder = await db.sql.reserve();
    try {
      await holder`begin`;
      await holder`select 1 from watches where id = 'wat_old_3' for update`;
      const started = Date.now();
      const r = await purgeOnce(db.sql, RETENTION, 7);
      expect(Date.now() - started).toBeLessThan(1_500); // below the 2 s lock timeout: nothing waited
      expect(r.watches).toBe(51);
      expect((await state()).watches).toContain('wat_old_3');
      await holder`rollback`;
    } finally {
      holder.release();
    }
    expect((await purgeOnce(db.sql, RETENTION, 7)).watches).toBe(1);
    expect((await state()).watches).toEqual(kept);
  });
});

describe('the retention engine', () => {
  usesDatabase();
  it('purges on its own once started, and stops promptly', async () => {
    await seed({ prefix: 'old', n: 20, statuses: ['delivered'], ageDays: 40 });
    const engine = createRetention({ sql: db.sql, log: createLogger('silent'), retentionMs: RETENTION, intervalMs: 60_000, batchSize: 7, random: () => 0 });
    engine.start();
    const until = Date.now() + 10_000;
    while ((await state()).watches.length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect((await state()).watches).toEqual([]);
    const stopping = Date.now();
    await engine.stop(); // mid-sleep: returns at once
    expect(Date.now() - stopping).toBeLessThan(1_000);
  });

  it('does nothing with retention 0', async () => {
    await seed({ prefix: 'old', n: 3, statuses: ['delivered'], ageDays: 400 });
    const engine = createRetention({ sql: db.sql, log: createLogger('silent'), retentionMs: 0, intervalMs: 10, random: () => 0 });
    engine.start();
    await new Promise((r) => setTimeout(r, 200));
    await engine.stop();
    expect((await state()).watches).toHaveLength(3);
  });
});

describe('the purge queries', () => {
  usesDatabase();
  it('use the retention indexes', async () => {
    // Plans on a near-empty table favour a sequential scan; forbid it to see the index is usable.
    const plan = await db.sql.begin(async (tx) => {
      await tx`set local enable_seqscan = off`;
      const w = await tx.unsafe(`explain select id from watches
        where status in ('delivered', 'undeliverable', 'cancelled') and updated_at < now() - interval '30 days'
        order by updated_at limit 500`);
      const s = await tx.unsafe(`explain select tenant_id, task_id from task_snapshots where updated_at < now() - interval '30 days' order by updated_at limit 500`);
      return [...w, ...s].map((r) => String(Object.values(r)[0])).join('\n');
    });
    expect(plan).toContain('watches_finished_idx');
    expect(plan).toContain('task_snapshots_updated_idx');
  });
});

describe('TASKHOOK_RETENTION_DAYS', () => {
  it.each([
    [undefined, 30 * DAY],
    ['0', 0],
    ['7', 7 * DAY],
    ['0.5', DAY / 2],
  ])('%j → %d ms', (value, ms) => {
    expect(loadConfig(value === undefined ? {} : { TASKHOOK_RETENTION_DAYS: value }).retentionMs).toBe(ms);
  });

  it.each(['-1', 'x', '30d'])('%j stops start-up naming the variable', (value) => {
    expect(() => loadConfig({ TASKHOOK_RETENTION_DAYS: value })).toThrow(ConfigError);
    expect(() => loadConfig({ TASKHOOK_RETENTION_DAYS: value })).toThrow(/TASKHOOK_RETENTION_DAYS: expected a number of days/);
  });
});
