// Prometheus metrics (prom-client): one registry per gateway, so several gateways in
// one process (the tests) never share counters, plus the process metrics (CPU, memory,
// event loop, GC) registered once per process. Every label takes its values from a
// fixed set: task, tenant, watch and delivery ids never become labels.
import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Sql } from './db/client.js';
import { GIVE_UP_MESSAGES, type GiveUpCode } from './delivery/outbox.js';
import type { DurationCache } from './durations/cache.js';
import type { Kind } from './durations/samples.js';

/** What one claimed task came to; `throttled` and `skipped` made no upstream request. */
export type PollOutcome =
  | 'running' // upstream answered pending/processing
  | 'terminal' // completed/failed/cancelled: the task leaves the schedule with its events
  | 'unauthorized'
  | 'not_found'
  | 'rate_limited' // upstream answered 429
  | 'error' // 5xx, timeout, malformed answer
  | 'throttled' // not asked: the tenant is paused (upstream breaker) or over its polls/s
  | 'skipped'; // not asked: tenant disabled, or the lease ran out before the request
/** What one claimed delivery came to; `deferred` sent nothing (circuit open, lease too short). */
export type DeliveryOutcome = 'delivered' | 'retry' | 'undeliverable' | 'deferred';

/** What one POST /v1/tasks came to (src/submit/submitter.ts). */
export const SUBMIT_OUTCOMES = [
  'accepted', // upstream took it, the watch is registered
  'replayed', // the same Idempotency-Key and request again: the first answer, upstream not called
  'rejected', // upstream 4xx → 422
  'unauthorized', // upstream 401 (or the tenant's key unreadable) → 422
  'not_submitted', // 502: nothing can have reached upstream
  'unknown', // 502: upstream may have taken it (also a retry finding a dead attempt)
  'not_recorded', // upstream took it, the database write failed → 502 with the task_id
  'in_use', // 409: another attempt with the key is in flight
  'key_reused', // 422: the key came with a different request
] as const;
export type SubmitMetricOutcome = (typeof SUBMIT_OUTCOMES)[number];

const POLL_OUTCOMES: readonly PollOutcome[] = ['running', 'terminal', 'unauthorized', 'not_found', 'rate_limited', 'error', 'throttled', 'skipped'];
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other', 'none'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** The receiver's HTTP status as a label value: one of seven, whatever it sent. */
export function statusClass(status: number | null): StatusClass {
  if (status === null) return 'none';
  const c = Math.floor(status / 100);
  return c >= 1 && c <= 5 ? (`${c}xx` as StatusClass) : 'other';
}

/**
 * The due-task and pending-delivery gauges count at most this many rows each: the
 * counts are index-only scans of the claim indexes, and a backlog of millions must
 * not make a scrape expensive. At the cap the gauge reads exactly the cap.
 */
export const GAUGE_COUNT_CAP = 100_000;

let processRegistry: Registry | undefined;
/** CPU, memory, handles, event-loop lag, GC: once per process, whatever the number of gateways. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export interface MetricsOptions {
  /** for the scrape-time gauges; without it they are not registered */
  sql?: Sql;
  /** the learned durations, for the per-kind gauges */
  durations?: Pick<DurationCache, 'kinds'>;
}

/**
 * The `kind` label: capability/action/model as upstream names them. Upstream strings are
 * not ours, so at most KIND_LABELS distinct values per process; later kinds share `other`.
 * No tenant label: tenants are unbounded.
 */
export const KIND_LABELS = 30;
const kindLabels = new Set<string>();
export function kindLabel(k: Kind): string {
  const v = `${k.capability}/${k.action}/${k.model}`;
  if (kindLabels.has(v)) return v;
  if (kindLabels.size >= KIND_LABELS) return 'other';
  kindLabels.add(v);
  return v;
}

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics(o: MetricsOptions = {}) {
  const own = new Registry();
  const registers = [own];

  const polls = new Counter({
    name: 'taskhook_polls_total',
    help: 'Claimed tasks by what their poll came to (throttled and skipped ones made no upstream request)',
    labelNames: ['outcome'] as const,
    registers,
  });
  // The usual series exist from the start, at 0: rate() and alerts need a first sample.
  for (const outcome of POLL_OUTCOMES) polls.inc({ outcome }, 0);
  // (one child per outcome, bound once: inc() on it skips hashing a labels object per poll)
  const pollsBy = new Map(POLL_OUTCOMES.map((outcome) => [outcome, polls.labels({ outcome })]));
  const pollLateness = new Histogram({
    name: 'taskhook_poll_lateness_seconds',
    help: 'How long after its due time a task\'s poll started (an owned task: from the worker\'s timer heap)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers,
  });
  const giveUps = new Counter({
    name: 'taskhook_give_ups_total',
    help: 'Tasks given up on (watch.failed sent), by code',
    labelNames: ['code'] as const,
    registers,
  });
  for (const code of Object.keys(GIVE_UP_MESSAGES) as GiveUpCode[]) giveUps.inc({ code }, 0);
  const claimBatch = new Histogram({
    name: 'taskhook_claim_batch_size',
    help: 'Rows taken per claim statement, by engine (claims at batch size mean the engine is saturated)',
    labelNames: ['engine'] as const,
    buckets: [0, 1, 5, 10, 25, 50, 100, 250, 500, 1000],
    registers,
  });
  const deliveries = new Counter({
    name: 'taskhook_deliveries_total',
    help: 'Delivery attempts by outcome and the class of the receiver\'s HTTP status (none: no response); deferred ones sent nothing',
    labelNames: ['outcome', 'status_class'] as const,
    registers,
  });
  deliveries.inc({ outcome: 'delivered', status_class: '2xx' }, 0);
  const attemptDuration = new Histogram({
    name: 'taskhook_delivery_attempt_duration_seconds',
    help: 'One webhook attempt, connect to the last byte read (or the error)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60],
    registers,
  });
  const endToEndLag = new Histogram({
    name: 'taskhook_end_to_end_lag_seconds',
    help: 'From upstream completed_at (whole seconds) to the receiver\'s 2xx, first delivery of terminal task events',
    buckets: [0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300, 600, 1800, 3600],
    registers,
  });

  // This process's open circuit breakers (src/delivery/health.ts), by scope: two series whatever the number of URLs.
  let circuits: (() => { urls: number; hosts: number }) | undefined;
  new Gauge({
    name: 'taskhook_open_circuits',
    help: "Circuit breakers open in this process: scope=url (one callback URL's deliveries deferred) or scope=host (most URLs of a host failing)",
    labelNames: ['scope'] as const,
    registers,
    collect() {
      const n = circuits?.() ?? { urls: 0, hosts: 0 };
      this.set({ scope: 'url' }, n.urls);
      this.set({ scope: 'host' }, n.hosts);
    },
  });

  const finishedTasks = new Counter({
    name: 'taskhook_finished_tasks_total',
    help: 'Tasks that reached a terminal status, as the duration learner folded them, by kind (capability/action/model)',
    labelNames: ['kind'] as const,
    registers,
  });
  const finishedPolls = new Counter({
    name: 'taskhook_finished_task_polls_total',
    help: 'Upstream polls those tasks took: ÷ taskhook_finished_tasks_total = requests per finished task, by kind',
    labelNames: ['kind'] as const,
    registers,
  });
  if (o.durations) {
    const durations = o.durations;
    new Gauge({
      name: 'taskhook_learned_duration_seconds',
      help: 'The learned completion time of a kind of task (created_at to completed_at), median and p90; with several tenants, the busiest tenant\'s',
      labelNames: ['kind', 'quantile'] as const,
      registers,
      collect() {
        this.reset();
        const best = new Map<string, { events: number; median: number | undefined; p90: number | undefined }>();
        for (const k of durations.kinds()) {
          const label = kindLabel(k.kind);
          const had = best.get(label);
          if (!had || had.events < k.events) best.set(label, k);
        }
        for (const [kind, k] of best) {
          if (k.median !== undefined) this.set({ kind, quantile: '0.5' }, k.median);
          if (k.p90 !== undefined) this.set({ kind, quantile: '0.9' }, k.p90);
        }
      },
    });
  }
  const submits = new Counter({
    name: 'taskhook_submits_total',
    help: 'Submits through taskhook (POST /v1/tasks) by outcome',
    labelNames: ['outcome'] as const,
    registers,
  });
  for (const outcome of SUBMIT_OUTCOMES) submits.inc({ outcome }, 0);
  const submitDuration = new Histogram({
    name: 'taskhook_submit_upstream_duration_seconds',
    help: 'The upstream POST of one submit through taskhook, request to the last byte of the answer (or the error)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });

  if (o.sql) {
    const sql = o.sql;
    // Both gauges come from one statement per scrape (prom-client collects them in parallel).
    // Database unreachable or slow (past 2 s): the gauges read NaN rather than hold the scrape.
    type Counts = { due: number; pending: number };
    let counting: Promise<Counts | undefined> | undefined;
    const query = () =>
      sql<Counts[]>`
        select (select count(*) from (select 1 from upstream_tasks where owner_id is null and next_poll_at <= now() limit ${GAUGE_COUNT_CAP}) a)::int as due,
               (select count(*) from (select 1 from deliveries where status = 'pending' limit ${GAUGE_COUNT_CAP}) b)::int as pending`
        .then(([row]) => row, () => undefined);
    const counts = () =>
      (counting ??= Promise.race([query(), sleep(2_000, undefined, { ref: false })]).finally(() => (counting = undefined)));
    new Gauge({
      name: 'taskhook_due_tasks',
      help: `Tasks due for a poll now, across the database (capped at ${GAUGE_COUNT_CAP}; NaN when the database is unreachable)`,
      registers,
      async collect() {
        this.set((await counts())?.due ?? NaN);
      },
    });
    new Gauge({
      name: 'taskhook_pending_deliveries',
      help: `Deliveries pending (due or waiting for a retry), across the database (capped at ${GAUGE_COUNT_CAP}; NaN when unreachable)`,
      registers,
      async collect() {
        this.set((await counts())?.pending ?? NaN);
      },
    });
  }

  const registry = Registry.merge([own, processMetrics()]);

  return {
    registry,
    poll(outcome: PollOutcome) {
      const child = pollsBy.get(outcome);
      if (child) child.inc();
      else polls.inc({ outcome });
    },
    pollLateness(seconds: number) {
      pollLateness.observe(Math.max(0, seconds));
    },
    giveUp(code: GiveUpCode) {
      giveUps.inc({ code });
    },
    claimed(engine: 'poller' | 'deliverer', rows: number) {
      claimBatch.observe({ engine }, rows);
    },
    delivery(outcome: DeliveryOutcome, status: number | null) {
      deliveries.inc({ outcome, status_class: statusClass(status) });
    },
    attemptDuration(ms: number) {
      attemptDuration.observe(ms / 1000);
    },
    submit(outcome: SubmitMetricOutcome) {
      submits.inc({ outcome });
    },
    submitDuration(ms: number) {
      submitDuration.observe(ms / 1000);
    },
    endToEndLag(seconds: number) {
      endToEndLag.observe(Math.max(0, seconds));
    },
    /** where taskhook_open_circuits reads from (the deliverer's endpoint health) */
    openCircuitsFrom(read: () => { urls: number; hosts: number }) {
      circuits = read;
    },
    taskFinished(kind: Kind, polls: number) {
      const label = kindLabel(kind);
      finishedTasks.inc({ kind: label });
      finishedPolls.inc({ kind: label }, Math.max(0, polls));
    },
  };
}

/**
 * Upstream's `completed_at` from a terminal webhook body, in Unix seconds, or undefined.
 * Only task.completed/failed/cancelled carry upstream's object as `data`; the body is
 * parsed only for those (once per first acknowledged delivery, not per attempt).
 * A value past 1e11 is taken for milliseconds, in case an upstream sends those.
 */
export function completedAtSeconds(payload: string): number | undefined {
  if (!/^\{"type":"task\.(completed|failed|cancelled)"/.test(payload)) return undefined;
  try {
    const v = (JSON.parse(payload) as { data?: { completed_at?: unknown } }).data?.completed_at;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return undefined;
    return v > 1e11 ? v / 1000 : v;
  } catch {
    return undefined;
  }
}
