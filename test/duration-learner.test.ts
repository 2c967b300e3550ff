// The duration learner and cache against real Postgres: terminal snapshots since the
// watermark are folded once (whoever runs the learner), censored ones kept apart, kinds
// bounded per tenant, bad snapshots skipped without stopping the fold, and every
// process's cache reads what was learned.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DurationCache } from '../src/durations/cache.js';
import { decodeHistogram, curveOf, timeWhenSurvival } from '../src/durations/histogram.js';
import { learnOnce } from '../src/durations/learner.js';
import { observe } from '../src/durations/samples.js';
import { tuningFor } from '../src/durations/tuning.js';
import { createLogger } from '../src/log.js';
import { createTestDb, type TestDb } from './support/db.js';

const log = createLogger('silent');
let db: TestDb;
beforeEach(async () => {
  db = await createTestDb();
});
afterEach(async () => {
  await db?.drop();
});

let n = 0;
/** A finished task's snapshot as the poller stores it, `agoS` seconds ago. */
async function finished(o: { durationS: number; status?: string; model?: string; tenant?: string; completedAt?: boolean; raw?: string; agoS?: number }) {
  const created = Date.now() / 1000 - (o.agoS ?? 5) - o.durationS;
  const body = {
    task_id: `t${++n}`,
    status: o.status ?? 'completed',
    capability: 'video',
    action: 'generate',
    model: o.model ?? 'vid-v1',
    progress: null,
    created_at: created,
    completed_at: o.completedAt === false ? null : created + o.durationS,
  };
  await db.sql`
    insert into task_snapshots (tenant_id, task_id, status, snapshot, polls, updated_at)
    values (${o.tenant ?? 'default'}, ${body.task_id}, ${body.status}, ${o.raw ?? JSON.stringify(body)}, 7, now() - ${(o.agoS ?? 5) * 1000} * interval '1 millisecond')`;
}

const learn = () => learnOnce({ sql: db.sql, log, settleMs: 1_000 });

describe('duration learner', () => {
  it('folds the terminal snapshots since its watermark once, and the next round only the new ones', async () => {
    for (let i = 0; i < 30; i++) await finished({ durationS: 20 + (i % 5) });
    const folded: number[] = [];
    const r1 = await learnOnce({ sql: db.sql, log, settleMs: 1_000, onFolded: (_t, _k, polls) => folded.push(polls) });
    expect(r1).toMatchObject({ read: 30, folded: 30, kinds: 1, skipped: false });
    expect(folded).toEqual(new Array(30).fill(7));
    expect((await learn()).read).toBe(0);
    // (stamped now: the round after sees it, with no settle wait in the way)
    await finished({ durationS: 21, agoS: 0 });
    expect((await learnOnce({ sql: db.sql, log, settleMs: 0 })).read).toBe(1);
    const [row] = await db.sql<{ samples: number; histogram: unknown }[]>`select samples::int, histogram from task_durations`;
    expect(row!.samples).toBe(31);
    const median = timeWhenSurvival(curveOf(decodeHistogram(row!.histogram)), 0.5)!;
    expect(median).toBeGreaterThan(19);
    expect(median).toBeLessThan(24);
  });

  it('leaves the last moments for the next round (transactions may still be committing)', async () => {
    await finished({ durationS: 10, agoS: 0 });
    expect((await learn()).read).toBe(0);
  });

  it('two learners at once never fold a task twice (they take turns on the watermark)', async () => {
    for (let i = 0; i < 40; i++) await finished({ durationS: 12 });
    const rs = await Promise.all([learn(), learn(), learn()]);
    expect(rs.reduce((a, r) => a + r.folded, 0)).toBe(40);
    const [row] = await db.sql<{ samples: number }[]>`select samples::int from task_durations`;
    expect(row!.samples).toBe(40);
  });

  it('reads a long backlog in batches, resuming exactly after the last row', async () => {
    for (let i = 0; i < 25; i++) await finished({ durationS: 8 });
    const a = await learnOnce({ sql: db.sql, log, settleMs: 1_000, batch: 10 });
    const b = await learnOnce({ sql: db.sql, log, settleMs: 1_000, batch: 10 });
    const c = await learnOnce({ sql: db.sql, log, settleMs: 1_000, batch: 10 });
    expect([a.read, b.read, c.read]).toEqual([10, 10, 5]);
    const [row] = await db.sql<{ samples: number }[]>`select samples::int from task_durations`;
    expect(row!.samples).toBe(25);
  });

  it('keeps failed and cancelled tasks as censored, skips snapshots that say nothing, and goes on', async () => {
    await finished({ durationS: 3, status: 'failed' });
    await finished({ durationS: 4, status: 'cancelled' });
    await finished({ durationS: 9, raw: 'not json' });
    await finished({ durationS: 9, raw: '{"status":"completed","created_at":"yesterday"}' });
    await finished({ durationS: 9, model: 'x'.repeat(500) });
    await finished({ durationS: 9 });
    const r = await learn();
    expect(r).toMatchObject({ read: 6, folded: 3, kinds: 1 });
    const [row] = await db.sql<{ histogram: unknown }[]>`select histogram from task_durations`;
    const h = decodeHistogram(row!.histogram);
    expect(h.censored.reduce((a, b) => a + b, 0)).toBeCloseTo(2, 1);
    expect(h.events.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 1);
  });

  it('learns at most 200 kinds per tenant (upstream names them, not us)', async () => {
    for (let i = 0; i < 205; i++) await finished({ durationS: 5, model: `m${i}` });
    await finished({ durationS: 5, model: 'other-tenant', tenant: 't2' });
    await learn();
    const rows = await db.sql<{ tenant_id: string; n: number }[]>`select tenant_id, count(*)::int as n from task_durations group by 1 order by 1`;
    expect(rows).toEqual([
      { tenant_id: 'default', n: 200 },
      { tenant_id: 't2', n: 1 },
    ]);
  });

  it('a completion without completed_at is spread over the gap before the poll that saw it', () => {
    const o = observe(JSON.stringify({ status: 'completed', capability: 'a', action: 'b', model: 'c', created_at: 100, completed_at: null }), 'completed', 120_000, 3);
    expect(o?.sample).toEqual({ kind: 'completed', s: 20, lo: 14 });
  });
});

describe('duration cache', () => {
  it('every process reads what was learned: timing for the poller and the watch ETA', async () => {
    for (let i = 0; i < 30; i++) await finished({ durationS: 30 });
    await learn();
    const cache = new DurationCache({ sql: db.sql, log, tuning: tuningFor(6.5) });
    const now = Date.now();
    const running = { status: 'processing', capability: 'video', action: 'generate', model: 'vid-v1', created_at: now / 1000 - 10, progress: null };
    expect(cache.eta('default', running)).toBeNull();
    await cache.refresh();
    const t = cache.timing('default', running)!;
    expect(t.curve?.events).toBeGreaterThan(20);
    expect(t.taskAgeMs).toBeGreaterThanOrEqual(9_900);
    const eta = cache.eta('default', running)!;
    expect(Date.parse(eta.p50) - now).toBeGreaterThan(15_000);
    expect(Date.parse(eta.p50) - now).toBeLessThan(25_000);
    // another tenant, a finished task, an unknown kind: no ETA
    expect(cache.eta('t2', running)).toBeNull();
    expect(cache.eta('default', { ...running, status: 'completed' })).toBeNull();
    expect(cache.eta('default', { ...running, model: 'nope' })).toBeNull();
    // fixed strategy: the schedule gets nothing, the ETA still works
    const fixed = new DurationCache({ sql: db.sql, log, tuning: undefined });
    await fixed.refresh();
    expect(fixed.timing('default', running)).toBeUndefined();
    expect(fixed.eta('default', running)).not.toBeNull();
  });
});
