// Watches in the database: registration (idempotent, and scheduling the task's
// first poll in the same transaction), reads shaped as the API's watch object,
// cancellation and redelivery. Every query is scoped by tenant.
import type postgres from 'postgres';
import type { Sql } from '../db/client.js';
import { newId } from '../tenancy/keys.js';
import { BASE_MIN_MS, FIRST_POLL_DELAY_MS } from '../upstream/schedule.js';
import { BatchWriter } from '../engine/batch.js';
import { removeTask } from '../poller/sql.js';
import { RawJson } from '../api/raw-json.js';
import { publicState, type PublicEndpointState } from '../delivery/health.js';

export const EVENT_TYPES = ['task.completed', 'task.failed', 'task.cancelled', 'task.processing', 'watch.failed'] as const;
/** The events that end a watch: its `outcome`, and what it is sent by default. */
export const OUTCOMES = ['task.completed', 'task.failed', 'task.cancelled', 'watch.failed'] as const;
export const DEFAULT_EVENTS: string[] = [...OUTCOMES];
export const WATCH_STATUSES = ['watching', 'delivering', 'delivered', 'undeliverable', 'cancelled'] as const;

interface Registration extends NewWatch {
  id: string;
  tenantId: string;
}

export interface NewWatch {
  task_id: string;
  callback_url: string;
  metadata: Record<string, unknown>;
  events: string[];
}

interface WatchRow {
  id: string;
  tenant_id: string;
  task_id: string;
  callback_url: string;
  metadata: Record<string, unknown>;
  events: string[];
  status: string;
  outcome: string | null;
  created_at: Date;
  updated_at: Date;
  snapshot: string | null;
  polls: number | null;
  next_poll_at: Date | null;
  last_poll_error: string | null;
  last_poll_error_at: Date | null;
  d_id: string | null;
  d_event_type: string | null;
  d_terminal: boolean | null;
  d_status: string | null;
  d_attempts: number | null;
  d_next_attempt_at: Date | null;
  d_last_response_status: number | null;
  d_last_error: string | null;
  e_state: string | null;
  e_open_until: Date | null;
}

export interface WatchView {
  id: string;
  task_id: string;
  callback_url: string;
  metadata: Record<string, unknown>;
  events: string[];
  status: string;
  /** upstream's last answer: a RawJson here (its exact text), that JSON on the wire */
  task: unknown;
  polls: number;
  next_poll_at: string | null;
  created_at: string;
  updated_at: string;
  /** the event that ended the watch (OUTCOMES), null until then */
  outcome: string | null;
  /** the predicted completion (p50/p90) once the kind of task is known (src/durations/cache.ts), else null */
  eta: null | { p50: string; p90: string };
  /** while the polls of its task fail (src/poller/poll-error.ts) */
  last_poll_error: null | { at: string; message: string };
  last_delivery: null | {
    webhook_id: string;
    status: string;
    attempts: number;
    next_attempt_at: string | null;
    last_response_status: number | null;
    /** why the last attempt failed, while it is failing */
    last_error: string | null;
    /** the callback URL's health as the deliverers last saw it (null: not attempted yet) */
    endpoint_state: PublicEndpointState | null;
    circuit_open_until: string | null;
  };
}

/** A running task's predicted completion from its last upstream answer (the duration cache). */
export type EtaOf = (tenantId: string, task: Record<string, unknown> | null) => { p50: string; p90: string } | null;

/**
 * A running task's snapshot parsed only to read its kind, age and progress for the ETA (the
 * response itself splices the stored text). Whatever upstream sent: unparsable → no ETA.
 */
function parsedForEta(snapshot: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(snapshot);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function view(r: WatchRow, etaOf: EtaOf): WatchView {
  return {
    id: r.id,
    task_id: r.task_id,
    callback_url: r.callback_url,
    metadata: r.metadata,
    events: r.events,
    status: r.status,
    // upstream's answer as stored, spliced into responses (src/api/raw-json.ts), never re-parsed
    task: r.snapshot === null ? null : new RawJson(r.snapshot),
    polls: r.polls ?? 0,
    next_poll_at: r.status === 'watching' && r.next_poll_at ? r.next_poll_at.toISOString() : null,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
    // A watch finished by a process of the release before `outcome` existed (a rolling
    // upgrade) has none stored: its terminal webhook says which it was.
    outcome: r.outcome ?? (r.d_terminal ? r.d_event_type : null),
    eta: r.status === 'watching' && r.snapshot !== null ? etaOf(r.tenant_id, parsedForEta(r.snapshot)) : null,
    last_poll_error:
      r.status === 'watching' && r.last_poll_error !== null
        ? { at: (r.last_poll_error_at ?? r.updated_at).toISOString(), message: r.last_poll_error }
        : null,
    last_delivery: r.d_id
      ? {
          webhook_id: r.d_id,
          status: r.d_status!,
          attempts: r.d_attempts ?? 0,
          next_attempt_at: r.d_status === 'pending' && r.d_next_attempt_at ? r.d_next_attempt_at.toISOString() : null,
          last_response_status: r.d_last_response_status,
          last_error: r.d_status === 'delivered' ? null : r.d_last_error,
          endpoint_state: r.e_state === null ? null : publicState(r.e_state, r.e_open_until, Date.now()),
          circuit_open_until: r.e_state === 'open' && r.e_open_until && r.e_open_until.getTime() > Date.now() ? r.e_open_until.toISOString() : null,
        }
      : null,
  };
}

export class WatchStore {
  constructor(
    private readonly sql: Sql,
    private readonly pollScale = 1,
    private readonly etaOf: EtaOf = () => null,
  ) {}

  private view(r: WatchRow): WatchView {
    return view(r, this.etaOf);
  }

  /** The watch object query; `where` is a fragment over alias w. */
  private select(where: ReturnType<Sql>, tail: ReturnType<Sql> = this.sql``, sql: Sql | postgres.TransactionSql = this.sql) {
    return sql<WatchRow[]>`
      select w.id, w.tenant_id, w.task_id, w.callback_url, w.metadata, w.events, w.status, w.outcome, w.created_at, w.updated_at,
             s.snapshot, coalesce(u.polls, s.polls) as polls, u.next_poll_at, u.last_poll_error, u.last_poll_error_at,
             d.id as d_id, d.event_type as d_event_type, d.terminal as d_terminal, d.status as d_status, d.attempts as d_attempts,
             d.next_attempt_at as d_next_attempt_at, d.last_response_status as d_last_response_status, d.last_error as d_last_error,
             e.state as e_state, e.open_until as e_open_until
        from watches w
        left join task_snapshots s on s.tenant_id = w.tenant_id and s.task_id = w.task_id
        left join upstream_tasks u on u.tenant_id = w.tenant_id and u.task_id = w.task_id
        left join lateral (
          select id, event_type, terminal, status, attempts, next_attempt_at, last_response_status, last_error from deliveries
           where watch_id = w.id order by created_at desc, id desc limit 1) d on true
        left join endpoint_health e on e.tenant_id = w.tenant_id and e.url = w.callback_url
       where ${where} ${tail}`;
  }

  /** Watches not yet finished (watching or delivering), for the per-tenant limit. */
  async countActive(tenantId: string): Promise<number> {
    const [row] = await this.sql<{ n: number }[]>`
      select count(*)::int as n from watches where tenant_id = ${tenantId} and status in ('watching', 'delivering')`;
    return row?.n ?? 0;
  }

  async get(tenantId: string, id: string): Promise<WatchView | undefined> {
    const [row] = await this.select(this.sql`w.tenant_id = ${tenantId} and w.id = ${id}`);
    return row ? this.view(row) : undefined;
  }

  /** → created: false when (tenant, task_id, callback_url) was already registered. */
  async register(tenantId: string, w: NewWatch): Promise<{ created: boolean; watch: WatchView }> {
    const row = await this.registrations.add({ id: newId('wat'), tenantId, ...w });
    if (row) return { created: true, watch: this.view(row) };
    const [existing] = await this.select(
      this.sql`w.tenant_id = ${tenantId} and w.task_id = ${w.task_id} and w.callback_url = ${w.callback_url}`,
    );
    return { created: false, watch: this.view(existing!) };
  }

  /**
   * The same registration inside the caller's transaction (a submit through taskhook
   * writes upstream's acceptance and the watch together: src/submit/submitter.ts).
   * Not batched: the transaction is the caller's.
   */
  async registerIn(tx: postgres.TransactionSql, tenantId: string, w: NewWatch): Promise<{ created: boolean; watch: WatchView }> {
    const [row] = await this.insertWatches([{ id: newId('wat'), tenantId, ...w }], tx);
    if (row) return { created: true, watch: this.view(row) };
    const [existing] = await this.select(
      tx`w.tenant_id = ${tenantId} and w.task_id = ${w.task_id} and w.callback_url = ${w.callback_url}`,
      tx``,
      tx,
    );
    return { created: false, watch: this.view(existing!) };
  }

  /**
   * Registrations that arrive together (the same turn of the event loop) are written by
   * one statement: one round trip and one commit for the lot, which is what lets one
   * process take thousands a second. A failed batch is retried row by row (BatchWriter),
   * so one bad row fails only its own request. → per row: the new watch, or null if it existed.
   */
  private readonly registrations = new BatchWriter<Registration, WatchRow | null>((rows) => this.insertWatches(rows), 256, 0);

  private async insertWatches(rows: Registration[], sql: Sql | postgres.TransactionSql = this.sql): Promise<Array<WatchRow | null>> {
    const firstPollMs = Math.round(FIRST_POLL_DELAY_MS * this.pollScale);
    const minGapMs = Math.round(BASE_MIN_MS * this.pollScale);
    const col = <K extends keyof Registration>(k: K) => rows.map((r) => r[k]);
    // The watch, the task's schedule row and the view, for every row at once. The schedule
    // upsert is DO UPDATE (not DO NOTHING) so it holds the row lock until commit, and it takes
    // away the lease of a poll of the task in flight: that poll's finish waits for our lock,
    // and its statement's snapshot predates our commit, so it would remove the task from the
    // schedule without seeing our watch, which would then never end (found by the soak). With
    // the lease gone it finishes nothing; the task is polled again, no sooner than the minimum
    // interval, and that poll ends every watch of it.
    // (DISTINCT ON: two new watches of one task in a batch upsert its schedule row once.)
    const created = await sql<(WatchRow & { tenant_id: string })[]>`
      with r as (
        select * from unnest(
          ${col('id')}::text[], ${col('tenantId')}::text[], ${col('task_id')}::text[], ${col('callback_url')}::text[],
          ${rows.map((r) => JSON.stringify(r.metadata))}::text[], ${rows.map((r) => r.events.join(','))}::text[]
        ) with ordinality as r(id, tenant_id, task_id, callback_url, metadata, events, ord)
      ), w as (
        insert into watches (id, tenant_id, task_id, callback_url, metadata, events)
        select id, tenant_id, task_id, callback_url, metadata::jsonb, string_to_array(events, ',') from r order by ord
        on conflict (tenant_id, task_id, callback_url) do nothing
        returning id, tenant_id, task_id, callback_url, metadata, events, status, outcome, created_at, updated_at
      ), u as (
        insert into upstream_tasks (tenant_id, task_id, next_poll_at)
        select distinct on (tenant_id, task_id) tenant_id, task_id, now() + ${firstPollMs} * interval '1 millisecond' from w
         order by tenant_id, task_id -- one lock order for every batch
        on conflict (tenant_id, task_id) do update
          set lease_token = null,
              next_poll_at = case when upstream_tasks.lease_token is null then upstream_tasks.next_poll_at
                                  else least(upstream_tasks.next_poll_at, now() + ${minGapMs} * interval '1 millisecond') end
        returning tenant_id, task_id, polls, next_poll_at, last_poll_error, last_poll_error_at
      )
      select w.*, s.snapshot, coalesce(u.polls, s.polls) as polls, u.next_poll_at, u.last_poll_error, u.last_poll_error_at,
             null as d_id, null as d_event_type, null as d_terminal, null as d_status, null as d_attempts, null as d_next_attempt_at, null as d_last_response_status,
             null as d_last_error, null as e_state, null as e_open_until
        from w
        left join u on u.tenant_id = w.tenant_id and u.task_id = w.task_id
        left join task_snapshots s on s.tenant_id = w.tenant_id and s.task_id = w.task_id`;
    const byId = new Map(created.map((c) => [c.id, c]));
    return rows.map((r) => byId.get(r.id) ?? null);
  }

  async list(
    tenantId: string,
    q: { status?: string | undefined; task_id?: string | undefined; limit: number; cursor?: string | undefined },
  ): Promise<{ data: WatchView[]; next_cursor: string | null }> {
    const sql = this.sql;
    const rows = await this.select(
      sql`w.tenant_id = ${tenantId}
          ${q.status ? sql`and w.status = ${q.status}` : sql``}
          ${q.task_id ? sql`and w.task_id = ${q.task_id}` : sql``}
          ${q.cursor ? sql`and w.id < ${q.cursor}` : sql``}`,
      sql`order by w.id desc limit ${q.limit + 1}`,
    );
    const more = rows.length > q.limit;
    const data = rows.slice(0, q.limit).map((r) => this.view(r));
    return { data, next_cursor: more ? data[data.length - 1]!.id : null };
  }

  async cancel(tenantId: string, id: string): Promise<WatchView | undefined> {
    const found = await this.sql.begin(async (tx) => {
      const [w] = await tx<{ task_id: string; status: string }[]>`
        select task_id, status from watches where tenant_id = ${tenantId} and id = ${id} for update`;
      if (!w) return false;
      if (w.status !== 'watching' && w.status !== 'delivering') return true; // already ended: nothing to stop
      await tx`update watches set status = 'cancelled', updated_at = now() where id = ${id}`;
      await tx`update deliveries set status = 'cancelled', lease_token = null, updated_at = now()
                where watch_id = ${id} and status = 'pending'`;
      // Stop polling once nobody watches the task any more. Lock the schedule row first
      // (register takes the same lock), then count in a fresh statement so a watch
      // registered concurrently is seen.
      const [u] = await tx<{ id: number }[]>`
        select id from upstream_tasks where tenant_id = ${tenantId} and task_id = ${w.task_id} for update`;
      if (u) {
        const [{ n } = { n: 0 }] = await tx<{ n: number }[]>`
          select count(*)::int as n from watches where tenant_id = ${tenantId} and task_id = ${w.task_id} and status = 'watching'`;
        if (n === 0) await removeTask(tx as unknown as Sql, u.id); // (its owner stops polling it at once)
      }
      return true;
    });
    return found ? this.get(tenantId, id) : undefined;
  }

  async attempts(tenantId: string, id: string) {
    const [w] = await this.sql`select 1 from watches where tenant_id = ${tenantId} and id = ${id}`;
    if (!w) return undefined;
    const rows = await this.sql<
      { webhook_id: string; event_type: string; attempted_at: Date; response_status: number | null; duration_ms: number; error: string | null; response_excerpt: string | null }[]
    >`
      select d.id as webhook_id, d.event_type, a.attempted_at, a.response_status, a.duration_ms, a.error, a.response_excerpt
        from deliveries d join delivery_attempts a on a.delivery_id = d.id
       where d.watch_id = ${id} and d.tenant_id = ${tenantId}
       order by a.id`;
    return rows.map((r) => ({ ...r, attempted_at: r.attempted_at.toISOString() }));
  }

  /** → 'not_found' | 'not_ready' | the watch after re-queueing its terminal event (same webhook-id). */
  async redeliver(tenantId: string, id: string): Promise<'not_found' | 'not_ready' | WatchView> {
    const outcome = await this.sql.begin(async (tx) => {
      const [w] = await tx<{ status: string }[]>`
        select status from watches where tenant_id = ${tenantId} and id = ${id} for update`;
      if (!w) return 'not_found' as const;
      if (w.status === 'watching' || w.status === 'cancelled') return 'not_ready' as const;
      const requeued = await tx`
        update deliveries set status = 'pending', retry_step = 0, next_attempt_at = now(), lease_token = null, updated_at = now()
         where id = (select id from deliveries where watch_id = ${id} and terminal order by created_at desc, id desc limit 1)
        returning id`;
      if (requeued.length === 0) return 'not_ready' as const;
      await tx`update watches set status = 'delivering', updated_at = now() where id = ${id}`;
      return 'ok' as const;
    });
    return outcome === 'ok' ? (await this.get(tenantId, id))! : outcome;
  }

  async taskSnapshot(tenantId: string, taskId: string): Promise<string | undefined> {
    const [row] = await this.sql<{ snapshot: string }[]>`
      select snapshot from task_snapshots where tenant_id = ${tenantId} and task_id = ${taskId}`;
    return row?.snapshot;
  }
}
