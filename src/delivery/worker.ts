// The deliverer, wiring: a claim loop (engine/loop.ts) over the outbox, one send per
// claimed row through fair send slots, the result recorded in batches, endpoint health
// updated after. The decisions are elsewhere, pure: who may be claimed and who may send
// (admission.ts), what an answer means for the URL and its host (health.ts), what is
// recorded (decide.ts); every statement is in sql.ts.
//
// Isolation (README, "Fairness"): per host at most `perHost` requests in flight, per
// callback URL ¼ of that and per tenant on a host ½; a circuit breaker per URL, and one
// per host only when most of its URLs are open; Retry-After defers the URL that said it.
import type { Sql } from '../db/client.js';
import { ClaimLoop } from '../engine/loop.js';
import { BatchWriter } from '../engine/batch.js';
import { noFaults, type Fault } from '../faults.js';
import type { TenantDirectory } from '../tenancy/directory.js';
import type { Logger } from '../log.js';
import { completedAtSeconds, type Metrics } from '../metrics.js';
import type { Sender, SendResult } from './send.js';
import { capsFor, claimCapsFor, FairSlots, Ledger, tenantHostKey, type Lane } from './admission.js';
import { EndpointHealth, judgeAttempt, slotLimit, type HealthActions } from './health.js';
import { ATTEMPT_MESSAGES, DELIVERY_OUTCOMES, recordFor } from './decide.js';
import { claimDeliveries, completeDeliveries, deferQueued, handBackDeliveries, recordEndpointHealth, type ClaimedDelivery, type Completion, type HandBack } from './sql.js';

export { storedExcerpt } from './decide.js';
export type { ClaimedDelivery } from './sql.js';

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
  /** requests in flight per host (scheme://host:port): the politeness ceiling (32) */
  perHost?: number;
  /** per callback URL (¼ of perHost) */
  perUrl?: number;
  /** per tenant on one host (½ of perHost) */
  perTenantHost?: number;
  /** claimed per tenant across hosts (½ of maxInFlight) */
  perTenant?: number;
  health?: EndpointHealth;
  idleMs?: number;
  random?: () => number;
  now?: () => number;
  fault?: Fault;
  /** counters and histograms (src/metrics.ts); absent → nothing is measured */
  metrics?: Metrics;
  /**
   * This process's worker id while it is alive (src/poller/liveness.ts), else null. Given:
   * claims record it (deliveries.leased_by), so a worker declared dead has its leases freed
   * by the survivors' sweep instead of waiting for them to run out; nothing is claimed or
   * sent while it is null or has changed since the claim (a paused worker that wakes).
   */
  worker?: () => number | null;
}

/**
 * How long a slot stays taken after an attempt that got no answer (a timeout, a broken
 * connection): our socket is closed but the receiver may not have noticed yet, and a new
 * connection at once would have it see more than the cap (seen on a loaded box at 100 ms).
 */
const SLOT_GRACE_MS = 500;
/** Claim rounds per claim: each skips the keys the previous one found full. */
const CLAIM_ROUNDS = 8;
/** The loop's sizes, named once (each measured: bench/README.md, "The delivery bench"). */
export const DELIVERY_TUNING = {
  /** rows held at once (claimed: waiting for a slot, sending, being recorded), all keys together */
  maxInFlight: 1024,
  /** rows one claim statement reads at most */
  batchSize: 200,
  /** bytes of webhook bodies held at once: a claim takes rows while they fit (the first always) */
  maxHeldBytes: 64 * 1024 * 1024,
  /**
   * At most one claim round past full keys that finds nothing, per this long: such a round
   * reads the queue past their rows — all of a one-host burst's backlog, to find nothing —
   * and the loop did one 15 ms after every partly full claim.
   */
  deepScanEveryMs: 100,
  /**
   * The sleep after an empty claim. A webhook written by this process's poller wakes the
   * loop at once; one written by another worker's poller (or due after a retry delay)
   * waits for this. At 250 ms it alone was the write → 2xx p99 (bench: p50 ~130 ms);
   * an empty claim costs Postgres well under a millisecond, 20 a second is noise.
   */
  idleMs: 50,
} as const;

interface Job extends ClaimedDelivery {
  lane: Lane;
  claimedAt: number;
  /** the worker id it was claimed under (null: no liveness given) */
  worker: number | null;
  /** ~ its body's size (UTF-16 units), for the held-bytes budget */
  bytes: number;
}

const laneOf = (d: ClaimedDelivery): Lane => ({
  host: d.endpoint ?? /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+/i.exec(d.callback_url)?.[0] ?? d.callback_url,
  url: d.callback_url,
  tenant: d.tenant_id,
});

export function createDeliverer(o: DelivererOptions) {
  const { sql, log, leaseMs } = o;
  const random = o.random ?? Math.random;
  const now = o.now ?? Date.now;
  const fault = o.fault ?? noFaults;
  const metrics = o.metrics;
  const maxInFlight = o.maxInFlight ?? DELIVERY_TUNING.maxInFlight;
  const caps = capsFor(o.perHost ?? 32, { perUrl: o.perUrl, perTenantHost: o.perTenantHost });
  const claimCaps = claimCapsFor(caps, o.perTenant ?? Math.max(1, Math.floor(maxInFlight / 2)));
  const health = o.health ?? new EndpointHealth();
  // (a URL whose circuit is half open sends one probe at a time: health.ts, circuitGate)
  const slots = new FairSlots(caps, (url) => slotLimit(health.gate(url, now())));
  metrics?.openCircuitsFrom(() => health.openCount(now()));
  /** rows this process holds leased (sending or waiting for a send slot), by key */
  const leased = new Ledger();
  const holding = new Set<Job>();
  let heldBytes = 0;
  /** no claim round past full keys before this (see DELIVERY_TUNING.deepScanEveryMs) */
  let deepQuietUntil = 0;
  const completions = new BatchWriter<Completion, boolean>(async (rows) => {
    const kept = await completeDeliveries(sql, rows);
    return rows.map((r) => kept.has(r.id));
  }, 500, 5);
  const handBacks = new BatchWriter<HandBack, void>(async (rows) => {
    await handBackDeliveries(sql, rows);
    return rows.map(() => undefined);
  }, 500, 0);
  const loop = new ClaimLoop<Job>({
    name: 'deliverer',
    claim,
    work,
    release: (jobs) => Promise.all(jobs.map((j) => handBack(j, 0))).then(() => undefined),
    maxInFlight,
    batchSize: o.batchSize ?? DELIVERY_TUNING.batchSize,
    idleMs: o.idleMs ?? DELIVERY_TUNING.idleMs,
    log,
  });

  async function claim(limit: number): Promise<Job[]> {
    const claimed: Job[] = [];
    const worker = o.worker ? o.worker() : null;
    if (o.worker && worker === null) return claimed; // not alive (yet, or any more): claim nothing
    for (let round = 0; round < CLAIM_ROUNDS && claimed.length < limit; round++) {
      if (heldBytes >= DELIVERY_TUNING.maxHeldBytes && holding.size > 0) break;
      const deep = anyFull();
      if (deep && now() < deepQuietUntil) break;
      const rows = await claimDeliveries(sql, {
        limit: limit - claimed.length,
        leaseMs,
        caps: claimCaps,
        held: leased,
        budgetBytes: DELIVERY_TUNING.maxHeldBytes - heldBytes,
        worker,
      });
      const at = now();
      for (const r of rows) {
        const job: Job = { ...r, lane: laneOf(r), claimedAt: at, worker, bytes: r.payload.length };
        leased.add(job.lane);
        holding.add(job);
        heldBytes += job.bytes;
        claimed.push(job);
      }
      if (deep && rows.length === 0) deepQuietUntil = now() + DELIVERY_TUNING.deepScanEveryMs;
      // (an empty result means the locked head was empty: its first row always fits)
      const skipped = rows.length > 0 ? rows[0]!.seen - rows.length : 0;
      if (skipped === 0) break;
    }
    metrics?.claimed('deliverer', claimed.length);
    return claimed;
  }

  /** Is any key at its claim cap (the next claim round reads past its rows)? */
  function anyFull(): boolean {
    return (
      leased.host.atLeast(claimCaps.perHost).length > 0 ||
      leased.url.atLeast(claimCaps.perUrl).length > 0 ||
      leased.tenantHost.atLeast(claimCaps.perTenantHost).length > 0 ||
      leased.tenant.atLeast(claimCaps.perTenant).length > 0
    );
  }

  /**
   * Gives back the job's claim on its keys; once per claim, as soon as the receiver has
   * answered (the caps bound load on receivers; recording the result is our database's
   * business, so a fast receiver isn't held to the pace of our completion batches).
   */
  function releaseClaim(job: Job) {
    if (!holding.delete(job)) return;
    heldBytes -= job.bytes;
    leased.remove(job.lane);
    // A capped key with a backlog has room again: claim its next rows now, not after the
    // idle sleep (at half the cap, so refills come in batches while the rest is being sent).
    const l = job.lane;
    const half = DELIVERY_TUNING.maxHeldBytes / 2;
    if (
      (heldBytes < half && heldBytes + job.bytes >= half) ||
      leased.url.get(l.url) === claimCaps.perUrl >> 1 ||
      leased.host.get(l.host) === claimCaps.perHost >> 1 ||
      leased.tenantHost.get(tenantHostKey(l)) === claimCaps.perTenantHost >> 1 ||
      leased.tenant.get(l.tenant) === claimCaps.perTenant >> 1
    )
      loop.wake();
  }

  /** Not sent: back to the queue, due in `delayMs`, its attempt not counted. The one way a lease is handed back. */
  function handBack(job: Job, delayMs: number): Promise<void> {
    metrics?.delivery('deferred', null);
    return handBacks.add({ id: job.id, token: job.lease_token, delayMs });
  }

  async function work(job: Job): Promise<void> {
    try {
      fault('delivery.before-send');
      await slots.acquire(job.lane);
      let held = true;
      const freeSlot = (afterMs = 0) => {
        if (held) {
          if (afterMs > 0) setTimeout(() => slots.release(job.lane), afterMs).unref();
          else slots.release(job.lane);
        }
        held = false;
        releaseClaim(job);
      };
      try {
        await attempt(job, freeSlot);
      } finally {
        freeSlot();
      }
    } finally {
      releaseClaim(job);
    }
  }

  async function attempt(job: Job, freeSlot: (afterMs?: number) => void): Promise<void> {
    // Stopping (SIGTERM): a send not begun yet is handed back, not begun (begun after the
    // drain deadline had handed its lease to another process, it would be sent twice).
    // Paused (SIGSTOP, a long GC) or queued behind its caps until the lease could run out
    // mid-attempt: not sent either.
    if (loop.stopping) return handBack(job, 0);
    if (now() - job.claimedAt > leaseMs - o.deliveryTimeoutMs) {
      log.warn({ delivery: job.id }, 'lease ran out before sending; not sending');
      return handBack(job, 0);
    }
    const paused = health.openFor(job.lane, now());
    if (paused > 0) return handBack(job, paused);
    const tenant = await o.tenants.get(job.tenant_id);
    if (loop.stopping) return handBack(job, 0); // the stop came while we looked the tenant up (seconds on a loaded box)
    if (o.worker && o.worker() !== job.worker) {
      // paused or cut off past half the worker timeout since the claim: its lease may be another's by now
      log.warn({ delivery: job.id }, 'this worker is not alive as the one that claimed it; not sending');
      return handBack(job, 0);
    }
    const attemptedAt = new Date();
    const result: SendResult = tenant
      ? await o.sender.send({ url: job.callback_url, msgId: job.id, body: job.payload, secrets: tenant.signingSecrets })
      : { outcome: { kind: 'error' as const, message: 'tenant is disabled' }, durationMs: 0, excerpt: undefined };
    const answeredAt = now();
    // (judged before the slot is freed: a half-open circuit's next probe waits for this answer)
    const actions = tenant ? health.record(job.lane, judgeAttempt(result, o.deliveryTimeoutMs), answeredAt) : {};
    freeSlot(result.outcome.kind === 'error' ? SLOT_GRACE_MS : 0);
    if (actions.closed) slots.wake(job.lane.host);
    fault('delivery.after-send');

    const rec = recordFor(result, job.retry_step, o.retryScheduleMs, random());
    const recorded = await completions.add({
      id: job.id,
      token: job.lease_token,
      ...rec,
      attemptedAt: attemptedAt.toISOString(),
      durationMs: result.durationMs,
    });
    if (!recorded) log.warn({ delivery: job.id }, 'lease lost during delivery; result not recorded as final');
    // One line per attempt, which is also the delivery's (and for a terminal event, the watch's) state change.
    log.info(
      { delivery: job.id, watch: job.watch_id, status: rec.responseStatus, outcome: rec.status, duration_ms: result.durationMs, error: rec.error ?? undefined },
      ATTEMPT_MESSAGES[rec.status],
    );
    if (metrics) {
      metrics.delivery(DELIVERY_OUTCOMES[rec.status], rec.responseStatus);
      if (tenant) metrics.attemptDuration(result.durationMs);
      if (rec.status === 'delivered' && recorded && job.terminal && job.first_delivery) {
        const completedAt = completedAtSeconds(job.payload);
        if (completedAt !== undefined) metrics.endToEndLag(answeredAt / 1000 - completedAt);
      }
    }
    await applyHealth(job, actions);
  }

  /** What the answer did to the URL's health, written: deferrals of its queue (or its host's), its new state. */
  async function applyHealth(job: Job, actions: HealthActions): Promise<void> {
    const { lane } = job;
    if (actions.deferUrlMs !== undefined) {
      const moved = await deferQueued(sql, { host: lane.host, url: lane.url, ms: actions.deferUrlMs });
      log.warn({ url: lane.url, pause_ms: actions.deferUrlMs, deliveries: moved }, 'callback URL keeps failing or asked to wait; its circuit is open');
    }
    if (actions.deferHostMs !== undefined) {
      const moved = await deferQueued(sql, { host: lane.host, ms: actions.deferHostMs });
      log.warn({ endpoint: lane.host, pause_ms: actions.deferHostMs, deliveries: moved }, 'most callback URLs of this host are failing; the host circuit is open');
    }
    if (actions.changed) {
      // (for GET /v1/endpoints and last_delivery; losing one only leaves the listing a state behind)
      await recordEndpointHealth(sql, { tenantId: lane.tenant, url: lane.url, ...actions.changed }).catch((err: unknown) =>
        log.warn({ err }, 'could not record endpoint health'),
      );
    }
  }

  return Object.assign(loop, { health, openCircuits: () => health.openCount(now()) });
}
