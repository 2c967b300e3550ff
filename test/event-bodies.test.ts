// One stored answer per event, not per watch: the upstream answer is kept once per task
// and event (event_bodies), each watch's webhook body composed from it at send time —
// the same bytes on every retry. Rows of older releases (inline payload) still deliver,
// and an older release's claim skips the rows it could not compose (migrations/0009_event_bodies.sql).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { startStack } from './support/gateway.js';
import { createTestDb } from './support/db.js';
import { claimDeliveries } from '../src/delivery/sql.js';
import { Ledger, capsFor, claimCapsFor } from '../src/delivery/admission.js';

const KiB = 1024;

describe('event bodies', () => {
  it('200 watches on one task with a 512 KiB answer: the database grows by about one copy, every webhook byte-identical across a retry', async () => {
    const s = await startStack({ TASKHOOK_RETRY_SCHEDULE: '100ms,100ms,100ms' });
    try {
      const blob = randomBytes(384 * KiB).toString('base64'); // 512 KiB, incompressible
      const task = s.upstream.createTask({ durationMs: 4_000, processingAfterMs: 0, extra: { blob } });
      const sizes = async () => {
        const [r] = await s.db.sql<{ db: number; deliveries: number; bodies: number; snapshots: number }[]>`
          select pg_database_size(current_database())::float8 as db,
                 pg_total_relation_size('deliveries')::float8 as deliveries,
                 pg_total_relation_size('event_bodies')::float8 as bodies,
                 pg_total_relation_size('task_snapshots')::float8 as snapshots`;
        return r!;
      };
      // Every watch's first attempt fails (500), the retry succeeds — per webhook-id, not the
      // first 200 requests (under load an early watch's retry can come before a late one's first try).
      const failedOnce = new Set<string>();
      s.receiver.decide = (_path, headers) => {
        const id = headers['webhook-id'] as string | undefined;
        if (!id || failedOnce.has(id)) return undefined;
        failedOnce.add(id);
        return { status: 500 };
      };
      const ids: string[] = [];
      for (let i = 0; i < 200; i += 20) {
        const batch = await Promise.all(
          Array.from({ length: 20 }, async (_, j) => {
            const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/hook/${i + j}`, metadata: { n: i + j } } });
            expect(res.status, res.text).toBe(201);
            return res.json.id as string;
          }),
        );
        ids.push(...batch);
      }
      const before = await sizes();
      await s.receiver.waitFor((all) => all.filter((r) => r.headers['webhook-id']).length >= 400 && new Set(all.filter((r) => r.verified && r.json).map((r) => r.json.watch_id)).size === 200, 60_000);
      const after = await sizes();

      const byId = new Map<string, string[]>();
      for (const r of s.receiver.received) {
        expect(r.verified, r.verifyError).toBe(true);
        const id = r.headers['webhook-id'] as string;
        byId.set(id, [...(byId.get(id) ?? []), r.body]);
      }
      expect(byId.size).toBe(200);
      for (const [id, bodies] of byId) {
        expect(bodies.length, id).toBeGreaterThanOrEqual(2);
        expect(new Set(bodies).size, `${id}: every attempt sends the same bytes`).toBe(1);
      }
      const one = JSON.parse([...byId.values()][0]![0]!);
      expect(one).toMatchObject({ type: 'task.completed', data: { task_id: task.task_id, blob } });
      expect(ids).toContain(one.watch_id);
      expect(one.metadata).toEqual({ n: ids.indexOf(one.watch_id) });

      const grew = after.db - before.db;
      const perDelivery = (after.deliveries - before.deliveries) / 200;
      console.info('[event bodies]', {
        body_bytes: blob.length,
        database_growth_bytes: grew,
        event_bodies_bytes: after.bodies - before.bodies,
        snapshot_bytes: after.snapshots - before.snapshots,
        deliveries_bytes_per_delivery: perDelivery,
      });
      // one copy in event_bodies and one in the task's final snapshot, plus small rows per watch
      // (its delivery, two attempts, the watch's own updates, their index entries, dead row
      // versions and page slack: 3.5–8 KiB a watch measured, with wide run-to-run noise on a
      // shared server). A copy per watch would be 512 KiB each, 100 MiB in all.
      const bodies = after.bodies - before.bodies;
      const snapshots = after.snapshots - before.snapshots;
      expect(bodies).toBeLessThan(1.5 * blob.length);
      expect(snapshots).toBeLessThan(1.5 * blob.length);
      expect((grew - bodies - snapshots) / 200, 'bytes per watch besides the two copies').toBeLessThan(16 * KiB);
      expect(perDelivery).toBeLessThan(2 * KiB);
    } finally {
      await s.close();
    }
  });

  it("a claim by the previous release skips rows whose body it can't compose; inline rows of that release still deliver here", async () => {
    const db = await createTestDb();
    try {
      const [b] = await db.sql<{ id: number }[]>`
        insert into event_bodies (tenant_id, task_id, event_type, head, data)
        values ('ten_a', 'task-1', 'task.completed', '{"type":"task.completed","timestamp":"2026-01-01T00:00:00.000Z","watch_id":"', '{"task_id":"task-1"}')
        returning id`;
      await db.sql`insert into watches (id, tenant_id, task_id, callback_url, metadata, events) values ('wat_1', 'ten_a', 'task-1', 'https://a.example/h', '{"k": 1}', ${['task.completed']})`;
      await db.sql`
        insert into deliveries (id, tenant_id, watch_id, event_type, terminal, callback_url, endpoint, payload, body_id) values
          ('msg_composed', 'ten_a', 'wat_1', 'task.completed', true, 'https://a.example/h', 'https://a.example', '', ${b!.id}),
          ('msg_inline', 'ten_a', 'wat_2', 'task.completed', true, 'https://a.example/h', 'https://a.example', '{"inline":true}', null)`;
      // The previous release's claim statement (src/delivery/worker.ts before 0009_event_bodies), reduced to what matters here.
      const old = await db.sql<{ id: string; payload: string }[]>`
        with c as (select id from deliveries where status = 'pending' and next_attempt_at <= now() order by next_attempt_at for update skip locked)
        update deliveries d set lease_token = gen_random_uuid(), attempts = d.attempts + 1, updated_at = now()
          from c where d.id = c.id
        returning d.id, d.payload`;
      expect(old).toEqual([{ id: 'msg_inline', payload: '{"inline":true}' }]);
      const [untouched] = await db.sql`select lease_token, attempts from deliveries where id = 'msg_composed'`;
      expect(untouched).toEqual({ lease_token: null, attempts: 0 });
      await db.sql`update deliveries set lease_token = null where id = 'msg_inline'`;

      const rows = await claimDeliveries(db.sql, { limit: 10, leaseMs: 30_000, caps: claimCapsFor(capsFor(32), 100), held: new Ledger() });
      const got = Object.fromEntries(rows.map((r) => [r.id, r.payload]));
      expect(got).toEqual({
        msg_composed: '{"type":"task.completed","timestamp":"2026-01-01T00:00:00.000Z","watch_id":"wat_1","metadata":{"k": 1},"data":{"task_id":"task-1"}}',
        msg_inline: '{"inline":true}',
      });
    } finally {
      await db.drop();
    }
  });
});
