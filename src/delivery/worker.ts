// The deliverer: claims due outbox rows under a lease, sends each once, records the
// attempt and decides the next step, with every write guarded by the lease token so
// a worker that lost its lease can't overwrite the newer owner's result.
//
// Fairness: at most `perEndpoint` attempts in flight per callback origin (a semaphore;
// the claim takes up to twice that per origin, so the next requests are already leased
// and waiting when a slot frees, rather than a claim round trip later) and `perTenant`
// claimed per tenant (saturated ones are skipped by the claim), and a circuit
// breaker that defers an endpoint's queue when it keeps failing: one slow or dead
// receiver, or one tenant's backlog, can't hold up everyone else's webhooks.
import type { Sql } from '../db/client.js';
import { Breaker, overranDeadline } from '../engine/breaker.js';
import { ClaimLoop } from '../engine/loop.js';
import { noFaults, type Fault } from '../faults.js';
import type { TenantDirectory } from '../tenancy/directory.js';
import type { Logger } from '../log.js';
import type { Sender, SendResult } from './send.js';
import { decideAfterAttempt } from './retry.js';
import { BatchWriter } from '../engine/batch.js';
import { KeyedSemaphore } from '../engine/keyed-semaphore.js';
import { completedAtSeconds, type DeliveryOutcome, type Metrics } from '../metrics.js';

export interface ClaimedDelivery {
  id: string;
  tenant_id: string;
  watch_id: string;
  terminal: boolean;
  callback_url: string;
  endpoint: string;
  payload: string;
  retry_step: number;
  lease_token: string;
  /** never acknowledged before (a redelivery of a delivered event is not) */
  first_delivery: boolean;
  claimed_at: number;
}

export interface DelivererOptions {
  sql: Sql;
  tenants: TenantDirectory;
  sender: Sender;
  log: Logger;
  retryScheduleMs: readonly number[];
  /** must outlive a whole attempt; see leaseFor() */
  leaseMs: number;
  /** the attempt deadline: no attempt starts unless it can end inside the lease */
  deliveryTimeoutMs: number;
  batchSize?: number;
  maxInFlight?: number;
  perEndpoint?: number;
  perTenant?: number;
  breaker?: Breaker;
  idleMs?: number;
  random?: () => number;
  now?: () => number;
  fault?: Fault;
  /** counters and histograms (src/metrics.ts); absent → nothing is measured */
  metrics?: Metrics;
}

const EXCERPT_STORED = 1024;
/** how long a slot stays taken after an attempt that got no answer (see attemptWithSlot) */
const SLOT_GRACE_MS = 100;

const DELIVERY_OUTCOMES = { delivered: 'delivered', pending: 'retry', undeliverable: 'undeliverable' } as const satisfies Record<string, DeliveryOutcome>;
const ATTEMPT_MESSAGES = {
  delivered: 'webhook delivered',
  pending: 'webhook attempt failed; will retry',
  undeliverable: 'webhook undeliverable; giving up',
} as const;

/**
 * What is kept of a receiver's answer in delivery_attempts: at most `maxBytes` of
 * UTF-8, cut at a character boundary, without NUL characters (Postgres text refuses
 * them, and one would fail the whole completion batch it is written in).
 */
export function storedExcerpt(text: string, maxBytes = EXCERPT_STORED): string {
  const bytes = Buffer.from(text.replace(/\u0000/g, ''), 'utf8');
  if (bytes.length <= maxBytes) return bytes.toString('utf8');
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // don't split a multi-byte character
  return bytes.subarray(0, end).toString('utf8');
}

class Counter {
  private readonly counts = new Map<string, number>();
  inc(k: string) {
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }
  dec(k: string) {
    const n = (this.counts.get(k) ?? 1) - 1;
    if (n <= 0) this.counts.delete(k);
    else this.counts.set(k, n);
  }
  get(k: string): number {
    return this.counts.get(k) ?? 0;
  }
  entries(): Array<[string, number]> {
    return [...this.counts];
  }
  atLeast(limit: number): string[] {
    return [...this.counts].filter(([, n]) => n >= limit).map(([k]) => k);
  }
}

export function createDeliverer(o: DelivererOptions) {
  const { sql, log, leaseMs } = o;
  const random = o.random ?? Math.random;
  const now = o.now ?? Date.now;
  const fault = o.fault ?? noFaults;
  const metrics = o.metrics;
  const maxInFlight = o.maxInFlight ?? 256;
  const perEndpoint = o.perEndpoint ?? 32;
  const perTenant = o.perTenant ?? Math.max(1, Math.floor(maxInFlight / 2));
  /** claimed (sending or waiting for a send slot) per endpoint */
  const claimAhead = perEndpoint * 2;
  const sendSlots = new KeyedSemaphore(perEndpoint);
  const breaker = o.breaker ?? new Breaker({ threshold: 5, baseOpenMs: 30_000, maxOpenMs: 600_000 });
  const byEndpoint = new Counter();
  const byTenant = new Counter();

  /**
   * Claims due deliveries without taking any endpoint past `perEndpoint` or tenant past
   * `perTenant`, counting what the batch itself takes (one batch of a backlog must not
   * open 100 connections to one receiver). Rows skipped because their endpoint or tenant
   * filled up stay due; the next round excludes those now-full keys and reads further down
   * the queue, so one backlog at the head can't hide everyone else's deliveries.
   */
  async function claim(limit: number): Promise<ClaimedDelivery[]> {
    const claimed: ClaimedDelivery[] = [];
    for (let round = 0; round < 8 && claimed.length < limit; round++) {
      const { rows, skipped } = await claimRound(limit - claimed.length);
      claimed.push(...rows);
      if (skipped === 0) break;
    }
    metrics?.claimed('deliverer', claimed.length);
    return claimed;
  }

  async function claimRound(limit: number): Promise<{ rows: ClaimedDelivery[]; skipped: number }> {
    // One statement (one round trip, one commit): lock the due head of the queue past
    // the full endpoints and tenants, rank each row within its endpoint and its tenant,
    // and lease only the rows that fit the room those have left in this process.
    const endpoints = byEndpoint.entries();
    const tenants = byTenant.entries();
    const rows = await sql<(ClaimedDelivery & { seen: number })[]>`
      with c as (
        select id, endpoint, tenant_id, next_attempt_at from deliveries
         where status = 'pending' and next_attempt_at <= now()
           and endpoint <> all(${byEndpoint.atLeast(claimAhead)}::text[])
           and tenant_id <> all(${byTenant.atLeast(perTenant)}::text[])
         order by next_attempt_at
         limit ${limit}
         for update skip locked
      ), ranked as (
        select c.id,
               row_number() over (partition by c.endpoint order by c.next_attempt_at, c.id) as in_endpoint,
               row_number() over (partition by c.tenant_id order by c.next_attempt_at, c.id) as in_tenant,
               ${claimAhead} - coalesce(e.n, 0) as endpoint_room,
               ${perTenant} - coalesce(t.n, 0) as tenant_room
          from c
          left join unnest(${endpoints.map(([k]) => k)}::text[], ${endpoints.map(([, n]) => n)}::int[]) as e(k, n) on e.k = c.endpoint
          left join unnest(${tenants.map(([k]) => k)}::text[], ${tenants.map(([, n]) => n)}::int[]) as t(k, n) on t.k = c.tenant_id
      )
      update deliveries d
         set lease_token = gen_random_uuid(),
             next_attempt_at = now() + ${leaseMs} * interval '1 millisecond',
             attempts = d.attempts + 1,
             updated_at = now()
        from ranked r
       where d.id = r.id and r.in_endpoint <= r.endpoint_room and r.in_tenant <= r.tenant_room
      returning d.id, d.tenant_id, d.watch_id, d.terminal, d.callback_url, d.endpoint, d.payload, d.retry_step, d.lease_token,
                d.delivered_at is null as first_delivery, (select count(*) from c)::int as seen`;
    const at = now();
    for (const r of rows) {
      r.claimed_at = at;
      byEndpoint.inc(r.endpoint);
      byTenant.inc(r.tenant_id);
      slotsHeld.add(r);
    }
    // (an empty result means the locked head was empty: its first row always fits)
    const skipped = rows.length > 0 ? rows[0]!.seen - rows.length : 0;
    return { rows, skipped };
  }

  interface Completion {
    id: string;
    token: string;
    status: string;
    retryStep: number;
    delayMs: number;
    responseStatus: number | null;
    error: string | null;
    lastError: string | null;
    excerpt: string | null;
    attemptedAt: string;
    durationMs: number;
  }

  /**
   * Attempt results, many per statement: the lease-guarded delivery update, the
   * attempt log row (written even for a stale worker: the request did happen) and
   * the watch's final status, all atomic. Resolves per item: was the lease still ours?
   */
  const completions = new BatchWriter<Completion, boolean>(async (rows) => {
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
    const ok = new Set(kept.map((k) => k.id));
    return rows.map((r) => ok.has(r.id));
  }, 500, 5);

  async function release(items: ClaimedDelivery[]) {
    await sql`
      update deliveries d set lease_token = null, next_attempt_at = now(), attempts = greatest(d.attempts - 1, 0)
        from unnest(${items.map((d) => d.id)}::text[], ${items.map((d) => d.lease_token)}::uuid[]) as r(id, token)
       where d.id = r.id and d.lease_token = r.token`;
  }

  /** Push an endpoint's waiting deliveries past `ms`, without touching their retry budget. */
  async function deferEndpoint(endpoint: string, ms: number) {
    const moved = await sql`
      update deliveries
         set next_attempt_at = greatest(next_attempt_at, now() + (${ms} + random() * ${Math.min(5_000, ms * 0.1)}) * interval '1 millisecond')
       where endpoint = ${endpoint} and status = 'pending' and lease_token is null`;
    log.warn({ endpoint, pause_ms: ms, deliveries: moved.count }, 'endpoint keeps failing; circuit open');
  }

  async function trackEndpointHealth(endpoint: string, result: SendResult) {
    const out = result.outcome;
    if (out.kind === 'error' && overranDeadline(result.durationMs, o.deliveryTimeoutMs)) return; // we were paused, not the receiver
    if (out.kind === 'response' && out.status < 500 && out.status !== 429) {
      breaker.success(endpoint); // reachable and answering, even if it said no
      return;
    }
    if (out.kind === 'response' && (out.status === 429 || out.status === 503) && out.retryAfterMs !== undefined) {
      if (breaker.block(endpoint, now(), Math.min(out.retryAfterMs, 3_600_000))) await deferEndpoint(endpoint, out.retryAfterMs);
      return;
    }
    const ms = breaker.failure(endpoint, now());
    if (ms > 0) await deferEndpoint(endpoint, ms);
  }

  /**
   * Gives back the delivery's endpoint and tenant slots; once per claim. Called as
   * soon as the receiver has answered: the caps bound load on receivers (connections,
   * requests in flight), and recording the result is our database's business, so a
   * fast receiver isn't held to the pace of our completion batches.
   */
  const slotsHeld = new Set<ClaimedDelivery>();
  function releaseSlots(d: ClaimedDelivery) {
    if (!slotsHeld.delete(d)) return;
    byEndpoint.dec(d.endpoint);
    byTenant.dec(d.tenant_id);
    // A capped endpoint or tenant with a backlog has room again: claim its next rows
    // now, not after the idle sleep (at half the cap, so refills come in batches while
    // the other half is still being sent).
    if (byEndpoint.get(d.endpoint) === claimAhead >> 1 || byTenant.get(d.tenant_id) === perTenant >> 1) loop.wake();
  }

  async function attempt(d: ClaimedDelivery): Promise<void> {
    fault('delivery.before-send');
    await sendSlots.acquire(d.endpoint);
    let holding = true;
    const freeSlot = (afterMs = 0) => {
      if (holding) {
        if (afterMs > 0) setTimeout(() => sendSlots.release(d.endpoint), afterMs).unref();
        else sendSlots.release(d.endpoint);
      }
      holding = false;
      releaseSlots(d);
    };
    try {
      await attemptWithSlot(d, freeSlot);
    } finally {
      freeSlot();
    }
  }

  /** Not sent: the row goes back to the queue at once, its attempt not counted (if it is still ours). */
  async function handBack(d: ClaimedDelivery): Promise<void> {
    metrics?.delivery('deferred', null);
    await sql`update deliveries set lease_token = null, attempts = greatest(attempts - 1, 0), next_attempt_at = now()
              where id = ${d.id} and lease_token = ${d.lease_token}`;
  }

  async function attemptWithSlot(d: ClaimedDelivery, freeSlot: (afterMs?: number) => void): Promise<void> {
    // Paused (SIGSTOP, a long GC) or queued behind a slow endpoint until the lease could run
    // out mid-attempt? Don't send; hand the row back if it is still ours (else it is the
    // next owner's already).
    // Stopping (SIGTERM): a send not begun yet is handed back, not begun. Begun after the drain
    // deadline had handed its lease to another process, it would be sent twice (found by the soak).
    const stopping = loop.stopping;
    if (stopping || now() - d.claimed_at > leaseMs - o.deliveryTimeoutMs) {
      if (!stopping) log.warn({ delivery: d.id }, 'lease ran out before sending; not sending');
      return handBack(d);
    }
    const paused = breaker.openFor(d.endpoint, now());
    if (paused > 0) {
      metrics?.delivery('deferred', null);
      await sql`update deliveries set lease_token = null, attempts = attempts - 1,
                  next_attempt_at = now() + ${paused} * interval '1 millisecond'
                where id = ${d.id} and lease_token = ${d.lease_token}`;
      return;
    }
    const tenant = await o.tenants.get(d.tenant_id);
    if (loop.stopping) return handBack(d); // the stop came while we looked the tenant up (seconds on a loaded box)
    const attemptedAt = new Date();
    const result: SendResult = tenant
      ? await o.sender.send({ url: d.callback_url, msgId: d.id, body: d.payload, secrets: tenant.signingSecrets })
      : { outcome: { kind: 'error' as const, message: 'tenant is disabled' }, durationMs: 0, excerpt: undefined };
    const answeredAt = now();
    // After a timeout or a broken connection our socket is still closing: hand the slot on a
    // moment later, so the receiver never sees more than the cap of connections at once.
    freeSlot(result.outcome.kind === 'error' ? SLOT_GRACE_MS : 0);
    fault('delivery.after-send');
    const next = decideAfterAttempt(result.outcome, d.retry_step, o.retryScheduleMs, random());
    const status = result.outcome.kind === 'response' ? result.outcome.status : null;
    const error =
      result.outcome.kind === 'error'
        ? result.outcome.message
        : next.status === 'delivered'
          ? null
          : `receiver answered HTTP ${result.outcome.status}`;

    const recorded = await completions.add({
      id: d.id,
      token: d.lease_token,
      status: next.status,
      retryStep: next.status === 'pending' ? next.retryStep : d.retry_step,
      delayMs: next.status === 'pending' ? next.delayMs : 0,
      responseStatus: status,
      error,
      lastError: next.status === 'undeliverable' ? `${error ?? ''}; ${next.reason}` : error,
      excerpt: result.excerpt === undefined ? null : storedExcerpt(result.excerpt),
      attemptedAt: attemptedAt.toISOString(),
      durationMs: result.durationMs,
    });
    if (!recorded) log.warn({ delivery: d.id }, 'lease lost during delivery; result not recorded as final');
    // One line per attempt, which is also the delivery's (and for a terminal event, the watch's) state change.
    log.info(
      { delivery: d.id, watch: d.watch_id, status, outcome: next.status, duration_ms: result.durationMs, error: error ?? undefined },
      ATTEMPT_MESSAGES[next.status],
    );
    if (metrics) {
      metrics.delivery(DELIVERY_OUTCOMES[next.status], status);
      if (tenant) metrics.attemptDuration(result.durationMs);
      if (next.status === 'delivered' && recorded && d.terminal && d.first_delivery) {
        const completedAt = completedAtSeconds(d.payload);
        if (completedAt !== undefined) metrics.endToEndLag(answeredAt / 1000 - completedAt);
      }
    }
    await trackEndpointHealth(d.endpoint, result);
  }

  async function work(d: ClaimedDelivery): Promise<void> {
    try {
      await attempt(d);
    } finally {
      releaseSlots(d);
    }
  }

  const loop = new ClaimLoop<ClaimedDelivery>({
    name: 'deliverer',
    claim,
    work,
    release,
    maxInFlight,
    batchSize: o.batchSize ?? 100,
    idleMs: o.idleMs ?? 250,
    log,
  });
  return loop;
}
