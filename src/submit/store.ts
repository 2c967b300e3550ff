// Idempotency records of submits through taskhook (table task_submissions), every
// statement named here. The record is written before upstream is called and is the
// only thing that decides whether a request with a given Idempotency-Key may call
// upstream: exactly one attempt owns a key at a time (its attempt_token), and only
// the owner records an outcome.
import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import type { Sql } from '../db/client.js';

/** upstream's answer is kept (for the dashboard and support) up to this many bytes */
export const MAX_STORED_UPSTREAM_BYTES = 64 * 1024;

/**
 * upstream's text as a Postgres text value: a NUL byte (which Postgres text refuses) made
 * U+FFFD, cut at MAX_STORED_UPSTREAM_BYTES on a character boundary. Any upstream answer,
 * however broken, must be recordable: the record is what stops a second submit.
 */
export function storableText(text: string | null): string | null {
  if (text === null) return null;
  const clean = text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
  if (Buffer.byteLength(clean) <= MAX_STORED_UPSTREAM_BYTES) return clean;
  return Buffer.from(clean).subarray(0, MAX_STORED_UPSTREAM_BYTES).toString('utf8').replace(/\uFFFD$/, '');
}

/** How long a key is remembered, from its first use (the IETF draft and Stripe: 24 h). */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;

export const SUBMISSION_STATES = ['in_flight', 'accepted', 'unknown'] as const;
export type SubmissionState = (typeof SUBMISSION_STATES)[number];

export interface SubmissionRow {
  tenant_id: string;
  idempotency_key: string;
  request_hash: string;
  state: SubmissionState;
  attempt_token: string;
  lease_until: Date;
  path: string;
  task_id: string | null;
  watch_id: string | null;
  upstream_status: number | null;
  upstream_body: string | null;
  response_status: number | null;
  response: string | null;
  detail: string | null;
  created_at: Date;
  /** computed by the query: the lease has run out (by the database's clock) */
  lease_expired: boolean;
}

export type Claim = { owned: true; token: string } | { owned: false; row: SubmissionRow };

export interface Accepted {
  taskId: string;
  watchId: string;
  upstreamStatus: number;
  upstreamBody: string;
  capability: string | null;
  action: string | null;
  model: string | null;
  response: string;
}

export class SubmissionStore {
  constructor(
    private readonly sql: Sql,
    private readonly ttlMs = IDEMPOTENCY_TTL_MS,
  ) {}

  /**
   * Takes the key for a new attempt, or answers the record that holds it. An expired
   * record (past its 24 h) is taken over in the same statement, so two requests racing
   * for an expired key still see one owner.
   */
  async claim(tenantId: string, key: string, requestHash: string, path: string, leaseMs: number, tries = 3): Promise<Claim | 'contended'> {
    const token = randomUUID();
    const [taken] = await this.sql<{ attempt_token: string }[]>`
      insert into task_submissions (tenant_id, idempotency_key, request_hash, state, attempt_token, lease_until, path, expires_at)
      values (${tenantId}, ${key}, ${requestHash}, 'in_flight', ${token}, now() + ${leaseMs} * interval '1 millisecond', ${path},
              now() + ${this.ttlMs} * interval '1 millisecond')
      on conflict (tenant_id, idempotency_key) do update
        set request_hash = excluded.request_hash, state = 'in_flight', attempt_token = excluded.attempt_token,
            lease_until = excluded.lease_until, path = excluded.path, task_id = null, watch_id = null,
            upstream_status = null, upstream_body = null, capability = null, action = null, model = null,
            response_status = null, response = null, detail = null, created_at = now(), updated_at = now(),
            expires_at = excluded.expires_at
        where task_submissions.expires_at <= now()
      returning attempt_token`;
    if (taken?.attempt_token === token) return { owned: true, token };
    const row = await this.get(tenantId, key);
    // Gone between the two statements (freed by its owner, or purged): try again, a few times.
    if (!row) return tries > 1 ? this.claim(tenantId, key, requestHash, path, leaseMs, tries - 1) : 'contended';
    return { owned: false, row };
  }

  async get(tenantId: string, key: string): Promise<SubmissionRow | undefined> {
    const [row] = await this.sql<SubmissionRow[]>`
      select tenant_id, idempotency_key, request_hash, state, attempt_token, lease_until, path, task_id, watch_id,
             upstream_status, upstream_body, response_status, response, detail, created_at, lease_until <= now() as lease_expired
        from task_submissions where tenant_id = ${tenantId} and idempotency_key = ${key}`;
    return row;
  }

  /**
   * An in-flight attempt whose lease ran out: its process died (or stalled) during the
   * upstream call, so nobody knows whether upstream took the task. → true if this call
   * made it `unknown` (or it already was).
   */
  async markAbandoned(tenantId: string, key: string, token: string): Promise<boolean> {
    const rows = await this.sql`
      update task_submissions
         set state = 'unknown', updated_at = now(),
             detail = 'the attempt that held this key stopped during its call to upstream (process killed or stalled); upstream may have accepted the task'
       where tenant_id = ${tenantId} and idempotency_key = ${key} and attempt_token = ${token}
         and state = 'in_flight' and lease_until <= now()
      returning 1`;
    return rows.length > 0;
  }

  /** The attempt certainly created nothing upstream: the key is free again. */
  async release(tenantId: string, key: string, token: string): Promise<void> {
    await this.sql`delete from task_submissions where tenant_id = ${tenantId} and idempotency_key = ${key} and attempt_token = ${token}`;
  }

  /** Upstream's answer could not tell whether it took the task: remember that, and the answer replayed. */
  async recordUnknown(
    tenantId: string,
    key: string,
    token: string,
    r: { upstreamStatus: number | null; upstreamBody: string | null; detail: string; responseStatus: number; response: string },
  ): Promise<void> {
    await this.sql`
      update task_submissions
         set state = 'unknown', upstream_status = ${r.upstreamStatus}, upstream_body = ${storableText(r.upstreamBody)}, detail = ${r.detail},
             response_status = ${r.responseStatus}, response = ${r.response}, updated_at = now()
       where tenant_id = ${tenantId} and idempotency_key = ${key} and attempt_token = ${token}`;
  }

  /**
   * Upstream's acceptance, inside the transaction that also writes the watch. Also over
   * an `unknown` this attempt's own lease expiry made (a stalled, not dead, attempt that
   * came back): then the outcome is known after all. → false if the key is no longer
   * this attempt's (taken over after expiry), which leaves the watch standing.
   */
  async recordAccepted(tx: postgres.TransactionSql, tenantId: string, key: string, token: string, a: Accepted): Promise<boolean> {
    const rows = await tx`
      update task_submissions
         set state = 'accepted', task_id = ${a.taskId}, watch_id = ${a.watchId}, upstream_status = ${a.upstreamStatus},
             upstream_body = ${a.upstreamBody}, capability = ${a.capability}, action = ${a.action}, model = ${a.model},
             response_status = 201, response = ${a.response}, detail = null, updated_at = now()
       where tenant_id = ${tenantId} and idempotency_key = ${key} and attempt_token = ${token}
      returning 1`;
    return rows.length > 0;
  }

  /** The submit that created a watch, for the dashboard (null for a watch registered by task_id). */
  async forWatch(tenantId: string, watchId: string) {
    const [row] = await this.sql<
      { path: string; upstream_status: number | null; upstream_body: string | null; capability: string | null; action: string | null; model: string | null; created_at: Date }[]
    >`
      select path, upstream_status, upstream_body, capability, action, model, created_at from task_submissions
       where watch_id = ${watchId} and tenant_id = ${tenantId} and state = 'accepted'
       order by created_at desc limit 1`;
    return row;
  }
}

/**
 * Retention: keys past their 24 h go, in batches, oldest first; an accepted one only
 * once its watch is gone too (it is what the dashboard shows of the submit, and retention
 * purges the watch in its time). → rows deleted.
 */
export async function purgeExpiredSubmissions(sql: Sql | postgres.TransactionSql, batch: number): Promise<number> {
  const gone = await sql`
    delete from task_submissions t using (
      select tenant_id, idempotency_key from task_submissions s
       where expires_at <= now()
         and (state <> 'accepted' or not exists (select 1 from watches w where w.id = s.watch_id))
       order by expires_at limit ${batch} for update skip locked) e
     where t.tenant_id = e.tenant_id and t.idempotency_key = e.idempotency_key
    returning 1`;
  return gone.length;
}
