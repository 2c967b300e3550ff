// Every statement the deliverer runs, named. Each write that follows a claim is guarded
// by the lease token, so a worker that lost its lease can't overwrite the newer owner's
// result. The claim is one statement (one round trip, one commit); completions and
// hand-backs go many rows per statement through unnest().
import type { Sql } from '../db/client.js';
import type { ClaimCaps, Ledger } from './admission.js';
import type { AttemptRecord } from './decide.js';

/**
 * The webhook body of the deliveries row aliased `d`: inline on rows of releases before
 * event_bodies, else composed from the event's stored answer and the watch — head
 * (type, timestamp) + watch id + the watch's metadata + upstream's object spliced in as
 * text (outbox.ts, webhookHead). Every input is fixed once the event exists (a watch's
 * metadata never changes; the body row is written once), so every retry and redelivery
 * sends the same bytes. jsonb's text form is canonical, as when the body was inline.
 */
export const bodySql = (sql: Sql) => sql`
  case when d.body_id is null then d.payload else (
    select b.head || d.watch_id || '","metadata":' || coalesce((select w.metadata::text from watches w where w.id = d.watch_id), '{}')
           || ',"data":' || b.data || '}'
      from event_bodies b where b.id = d.body_id) end`;

export interface ClaimedDelivery {
  id: string;
  tenant_id: string;
  watch_id: string;
  terminal: boolean;
  callback_url: string;
  /** scheme://host:port (null only on rows older than migration 0001) */
  endpoint: string | null;
  /** the exact body to send: inline on rows of older releases, else composed by the claim (see bodySql) */
  payload: string;
  retry_step: number;
  lease_token: string;
  /** never acknowledged before (a redelivery of a delivered event is not) */
  first_delivery: boolean;
  /** how many rows the claim locked (all its candidates, taken or not) */
  seen: number;
}

/**
 * Claims due deliveries without taking any host, URL, tenant-on-host or tenant past
 * what this process may hold (`caps`, minus what it holds already: `held`), counting
 * what the batch itself takes. Rows at a full key are skipped and stay due; the caller
 * claims again with those keys excluded (`<> all(…)`), so reading goes further down the
 * queue and one backlog at the head can't hide everyone else's deliveries. The rule is
 * admission.ts's admitClaim, in SQL: a row fits if its rank within each key is within
 * that key's room. Of the rows that fit, it takes them in queue order while their bodies
 * add up to at most `budgetBytes` (the first always), so what a process holds in memory
 * is bounded in bytes, not only in rows (an answer may be 1 MiB, watched 200 times).
 */
export async function claimDeliveries(
  sql: Sql,
  o: { limit: number; leaseMs: number; caps: ClaimCaps; held: Ledger; budgetBytes?: number; worker?: number | null },
): Promise<ClaimedDelivery[]> {
  const { caps, held } = o;
  const room = (entries: Array<[string, number]>) => [entries.map(([k]) => k), entries.map(([, n]) => n)] as const;
  const [hk, hn] = room(held.host.entries());
  const [uk, un] = room(held.url.entries());
  const [thk, thn] = room(held.tenantHost.entries());
  const [tk, tn] = room(held.tenant.entries());
  return sql<ClaimedDelivery[]>`
    with me as (
      -- the claiming worker (src/poller/liveness.ts), locked FOR SHARE as the task claim does:
      -- a sweep declaring it dead waits for this commit, or this waits for the sweep and claims
      -- nothing (the sweep's snapshot predates this commit, so a lease taken in that race is
      -- not made due early: it runs out, as any lease does)
      select id from workers where id = ${o.worker ?? null}::bigint and dead_at is null for share
    ), c as (
      select id, endpoint, callback_url, tenant_id, tenant_id || ' ' || coalesce(endpoint, '') as tenant_host, next_attempt_at,
             -- (octet_length of a stored body reads its size from the TOAST header; a composed body is a little longer)
             coalesce((select octet_length(b.data) from event_bodies b where b.id = deliveries.body_id), octet_length(payload)) as bytes
        from deliveries
       where status = 'pending' and next_attempt_at <= now()
         and (${o.worker ?? null}::bigint is null or exists (select 1 from me))
         and coalesce(endpoint, '') <> all(${held.host.atLeast(caps.perHost)}::text[])
         and callback_url <> all(${held.url.atLeast(caps.perUrl)}::text[])
         and tenant_id || ' ' || coalesce(endpoint, '') <> all(${held.tenantHost.atLeast(caps.perTenantHost)}::text[])
         and tenant_id <> all(${held.tenant.atLeast(caps.perTenant)}::text[])
       order by next_attempt_at
       limit ${o.limit}
       for update skip locked
    ), ranked as (
      select c.id, c.bytes, c.next_attempt_at,
             row_number() over (partition by c.endpoint order by c.next_attempt_at, c.id) <= ${caps.perHost} - coalesce(h.n, 0)
         and row_number() over (partition by c.callback_url order by c.next_attempt_at, c.id) <= ${caps.perUrl} - coalesce(u.n, 0)
         and row_number() over (partition by c.tenant_host order by c.next_attempt_at, c.id) <= ${caps.perTenantHost} - coalesce(th.n, 0)
         and row_number() over (partition by c.tenant_id order by c.next_attempt_at, c.id) <= ${caps.perTenant} - coalesce(t.n, 0) as fits
        from c
        left join unnest(${hk as string[]}::text[], ${hn as number[]}::int[]) as h(k, n) on h.k = coalesce(c.endpoint, '')
        left join unnest(${uk as string[]}::text[], ${un as number[]}::int[]) as u(k, n) on u.k = c.callback_url
        left join unnest(${thk as string[]}::text[], ${thn as number[]}::int[]) as th(k, n) on th.k = c.tenant_host
        left join unnest(${tk as string[]}::text[], ${tn as number[]}::int[]) as t(k, n) on t.k = c.tenant_id
    ), taken as (
      select id from (
        select id, sum(bytes) over (order by next_attempt_at, id) - bytes as before from ranked where fits
      ) f
       where before < greatest(${o.budgetBytes ?? Number.MAX_SAFE_INTEGER}::float8, 1)
    )
    update deliveries d
       set lease_token = gen_random_uuid(), leased_by = ${o.worker ?? null}::bigint,
           next_attempt_at = now() + ${o.leaseMs} * interval '1 millisecond',
           attempts = d.attempts + 1,
           composed_claims = d.composed_claims + 1, -- (see migrations/0009_event_bodies.sql: older releases can't claim composed rows)
           updated_at = now()
      from taken r
     where d.id = r.id
    returning d.id, d.tenant_id, d.watch_id, d.terminal, d.callback_url, d.endpoint, ${bodySql(sql)} as payload, d.retry_step, d.lease_token,
              d.delivered_at is null as first_delivery, (select count(*) from c)::int as seen`;
}

/** An attempt's decided record (decide.ts) with what identifies and times it. */
export interface Completion extends AttemptRecord {
  id: string;
  token: string;
  attemptedAt: string;
  durationMs: number;
}

/**
 * Attempt results, many per statement: the lease-guarded delivery update, the attempt
 * log row (written even for a stale worker: the request did happen) and the watch's
 * final status, all atomic. Returns the ids whose lease was still ours.
 */
export async function completeDeliveries(sql: Sql, rows: readonly Completion[]): Promise<Set<string>> {
  const col = <K extends keyof Completion>(k: K) => rows.map((r) => r[k]);
  const kept = await sql<{ id: string }[]>`
    with r as (
      select * from unnest(
        ${col('id')}::text[], ${col('token')}::uuid[], ${col('status')}::text[], ${col('retryStep')}::int[],
        ${col('delayMs')}::float8[], ${col('responseStatus')}::int[], ${col('error')}::text[], ${col('lastError')}::text[],
        ${col('excerpt')}::text[], ${col('attemptedAt')}::timestamptz[], ${col('durationMs')}::int[]
      ) as r(id, token, status, retry_step, delay_ms, response_status, error, last_error, excerpt, attempted_at, duration_ms)
    ), d as (
      update deliveries d
         set status = r.status, retry_step = r.retry_step,
             next_attempt_at = now() + r.delay_ms * interval '1 millisecond',
             lease_token = null, last_response_status = r.response_status, last_error = r.last_error,
             delivered_at = case when r.status = 'delivered' then now() end, updated_at = now()
        from r
       where d.id = r.id and d.lease_token = r.token
      returning d.id, d.watch_id, d.terminal, d.status
    ), a as (
      insert into delivery_attempts (delivery_id, attempted_at, duration_ms, response_status, error, response_excerpt)
      select r.id, r.attempted_at, r.duration_ms, r.response_status,
             case when exists (select 1 from d where d.id = r.id) then r.error
                  else coalesce(r.error, 'ok') || ' (late: lease had passed to another worker)' end,
             r.excerpt
        from r
    ), w as (
      update watches w set status = d.status, updated_at = now()
        from d
       where w.id = d.watch_id and d.terminal and d.status <> 'pending' and w.status = 'delivering'
    )
    select id from d`;
  return new Set(kept.map((k) => k.id));
}

export interface HandBack {
  id: string;
  token: string;
  /** due again after this long (0: at once) */
  delayMs: number;
}

/**
 * Not sent: the rows go back to the queue, their attempt not counted (if still ours; if
 * not, they are the next owner's already). The one way a lease is handed back: on stop,
 * when a lease ran out before sending, and when a circuit is open.
 */
export async function handBackDeliveries(sql: Sql, rows: readonly HandBack[]): Promise<void> {
  await sql`
    update deliveries d
       set lease_token = null, attempts = greatest(d.attempts - 1, 0),
           next_attempt_at = now() + r.delay_ms * interval '1 millisecond'
      from unnest(${rows.map((r) => r.id)}::text[], ${rows.map((r) => r.token)}::uuid[], ${rows.map((r) => r.delayMs)}::float8[]) as r(id, token, delay_ms)
     where d.id = r.id and d.lease_token = r.token`;
}

/**
 * Push the queued (unleased) deliveries of one callback URL, or of a whole host, past
 * `ms` (plus up to 10 % jitter, at most 5 s), without touching their retry budget.
 * Goes by the host's partial index (deliveries_endpoint_pending_idx) in both cases.
 */
export async function deferQueued(sql: Sql, o: { host: string; url?: string; ms: number }): Promise<number> {
  const moved = await sql`
    update deliveries
       set next_attempt_at = greatest(next_attempt_at, now() + (${o.ms} + random() * ${Math.min(5_000, o.ms * 0.1)}) * interval '1 millisecond')
     where endpoint = ${o.host} and status = 'pending' and lease_token is null
       ${o.url === undefined ? sql`` : sql`and callback_url = ${o.url}`}`;
  return moved.count;
}

/** A URL's health changed (health.ts): the latest word of any process wins. */
export async function recordEndpointHealth(
  sql: Sql,
  e: { tenantId: string; url: string; state: string; openUntil: number | null; error: string | null },
): Promise<void> {
  const openUntil = e.openUntil === null ? null : new Date(e.openUntil);
  await sql`
    insert into endpoint_health (tenant_id, url, state, open_until, last_error, last_error_at, updated_at)
    values (${e.tenantId}, ${e.url}, ${e.state}, ${openUntil}, ${e.error}, ${e.error === null ? null : sql`now()`}, now())
    on conflict (tenant_id, url) do update
      set state = excluded.state, open_until = excluded.open_until, updated_at = now(),
          last_error = coalesce(excluded.last_error, endpoint_health.last_error),
          last_error_at = coalesce(excluded.last_error_at, endpoint_health.last_error_at)`;
}

export interface EndpointRow {
  url: string;
  state: string;
  open_until: Date | null;
  last_error: string | null;
  last_error_at: Date | null;
  updated_at: Date;
  pending: number;
  next_attempt_at: Date | null;
}

/** GET /v1/endpoints: a tenant's callback URLs with their health and what waits for them, failing ones first. */
export function listEndpoints(sql: Sql, tenantId: string, limit = 1_000): Promise<EndpointRow[]> {
  // (the pending count goes by the host's partial index: endpoint is the URL's origin)
  return sql<EndpointRow[]>`
    select e.url, e.state, e.open_until, e.last_error, e.last_error_at, e.updated_at, p.pending, p.next_attempt_at
      from endpoint_health e
      cross join lateral (
        select count(*)::int as pending, min(d.next_attempt_at) as next_attempt_at from deliveries d
         where d.endpoint = substring(e.url from '^[a-z][a-z0-9+.-]*://[^/?#]+') and d.status = 'pending'
           and d.callback_url = e.url and d.tenant_id = e.tenant_id) p
     where e.tenant_id = ${tenantId}
     order by e.state = 'healthy', e.updated_at desc, e.url
     limit ${limit}`;
}
