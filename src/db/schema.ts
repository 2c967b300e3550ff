// The tables. Two of them are hot: `upstream_tasks` (one narrow row per task being
// polled, rewritten every few seconds) and `deliveries` (the outbox). Both are
// claimed through partial indexes on their due time, and finished rows leave
// `upstream_tasks` altogether, so the claim stays O(batch) however much history piles up.
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  real,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const tenants = pgTable('tenants', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** SHA-256 hex of the gateway key; the key itself is shown once and never stored. */
  apiKeyHash: text('api_key_hash').notNull().unique(),
  signingSecret: text('signing_secret').notNull(),
  /** The secret before the last rotation, still signed with until previousSecretExpiresAt. */
  previousSigningSecret: text('previous_signing_secret'),
  previousSecretExpiresAt: ts('previous_secret_expires_at'),
  /** null = the deployment's UPSTREAM_BASE_URL. */
  upstreamBaseUrl: text('upstream_base_url'),
  /** AES-256-GCM ciphertext "keyId:iv:tag:data" (base64 parts), tenant id bound as AAD. */
  upstreamApiKeyEnc: text('upstream_api_key_enc'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
  disabledAt: ts('disabled_at'),
  /** Per-tenant limits; null = unlimited (the self-hosted default tenant). */
  apiRatePerS: real('api_rate_per_s'),
  maxActiveWatches: integer('max_active_watches'),
  maxPollsPerS: real('max_polls_per_s'),
});

/**
 * One row per (tenant, task_id) while someone is watching it. Kept narrow on purpose:
 * the scheduler rewrites it on every poll, so the snapshot lives in `task_snapshots`
 * and is only written when upstream's answer actually changed.
 * `next_poll_at` doubles as the lease expiry while a worker holds `lease_token`:
 * a worker that dies simply lets the row come due again.
 */
export const upstreamTasks = pgTable(
  'upstream_tasks',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    tenantId: text('tenant_id').notNull(),
    taskId: text('task_id').notNull(),
    nextPollAt: ts('next_poll_at').notNull(),
    leaseToken: uuid('lease_token'),
    polls: integer('polls').notNull().default(0),
    /** consecutive 401s; three in a row give up the task */
    unauthorizedStreak: smallint('unauthorized_streak').notNull().default(0),
    /** consecutive 5xx/timeouts/malformed answers, for backoff */
    errorStreak: smallint('error_streak').notNull().default(0),
    processingSeen: boolean('processing_seen').notNull().default(false),
    createdAt: ts('created_at').notNull().defaultNow(),
    /**
     * A 53-bit hash of the snapshot last stored in task_snapshots: a poll whose answer
     * hashes the same doesn't send the snapshot back to the database at all (most polls
     * of a running task; at thousands of polls a second that was most of the bytes
     * written to Postgres). Null: not known, store whatever comes.
     */
    snapshotHash: bigint('snapshot_hash', { mode: 'number' }),
    /**
     * While polls of this task fail: the message, and when it first appeared (the watch's
     * `last_poll_error`); null once a poll succeeds. Written only when it changes
     * (src/poller/poll-error.ts), so a healthy poll writes nothing new.
     */
    lastPollError: text('last_poll_error'),
    lastPollErrorAt: ts('last_poll_error_at'),
  },
  (t) => [
    uniqueIndex('upstream_tasks_tenant_task_uq').on(t.tenantId, t.taskId),
      // Finished rows are deleted, so every row here is live: the whole table is the "partial" set.
    index('upstream_tasks_due_idx').on(t.nextPollAt),
  ],
);

/** The last answer upstream gave for a task, verbatim. Survives the task's upstream_tasks row. */
export const taskSnapshots = pgTable(
  'task_snapshots',
  {
    tenantId: text('tenant_id').notNull(),
    taskId: text('task_id').notNull(),
    status: text('status').notNull(),
    /** upstream's answer as text, byte for byte: jsonb would reorder its keys */
    snapshot: text('snapshot').notNull(),
    /** polls made so far; copied here when the task leaves upstream_tasks */
    polls: integer('polls').notNull().default(0),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('task_snapshots_pk').on(t.tenantId, t.taskId),
    // retention finds the oldest snapshots no watch refers to any more (src/retention.ts)
    index('task_snapshots_updated_idx').on(t.updatedAt),
  ],
);

export const watches = pgTable(
  'watches',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    taskId: text('task_id').notNull(),
    callbackUrl: text('callback_url').notNull(),
    metadata: jsonb('metadata').notNull().default({}),
    events: text('events').array().notNull(),
    /** watching | delivering | delivered | undeliverable | cancelled */
    status: text('status').notNull().default('watching'),
    processingSent: boolean('processing_sent').notNull().default(false),
    /**
     * The event that ended the watch (task.completed | task.failed | task.cancelled |
     * watch.failed), set by the statement that finishes the task, whether or not the
     * watch subscribed to it; null until then, and for a watch cancelled before it.
     */
    outcome: text('outcome'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('watches_tenant_task_callback_uq').on(t.tenantId, t.taskId, t.callbackUrl),
    // ids sort by creation time, so "newest first" pages walk this index backwards
    index('watches_tenant_id_idx').on(t.tenantId, t.id),
    index('watches_tenant_task_active_idx').on(t.tenantId, t.taskId).where(sql`status = 'watching'`),
    // retention purges the oldest finished watches first (src/retention.ts)
    index('watches_finished_idx').on(t.updatedAt).where(sql`status in ('delivered', 'undeliverable', 'cancelled')`),
  ],
);

/**
 * The outbox: one row per event to deliver, written in the same transaction that
 * decided the event. `id` is the webhook-id (msg_…) and `payload` the exact body,
 * fixed at creation so every retry and redelivery sends identical bytes.
 */
export const deliveries = pgTable(
  'deliveries',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    watchId: text('watch_id').notNull(),
    eventType: text('event_type').notNull(),
    /** true for the event that ends the watch (everything but task.processing) */
    terminal: boolean('terminal').notNull(),
    callbackUrl: text('callback_url').notNull(),
    /** scheme://host:port of the callback: the unit of concurrency caps and the circuit breaker */
    endpoint: text('endpoint'),
    payload: text('payload').notNull(),
    /** pending | delivered | undeliverable | cancelled */
    status: text('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    /** index into the retry schedule; reset by a redelivery */
    retryStep: integer('retry_step').notNull().default(0),
    nextAttemptAt: ts('next_attempt_at').notNull().defaultNow(),
    leaseToken: uuid('lease_token'),
    lastResponseStatus: integer('last_response_status'),
    lastError: text('last_error'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    deliveredAt: ts('delivered_at'),
  },
  (t) => [
    index('deliveries_due_idx').on(t.nextAttemptAt).where(sql`status = 'pending'`),
    index('deliveries_watch_idx').on(t.watchId, t.createdAt),
    // GET /v1/events: a tenant's events in id (= time) order, resumable from an id
    index('deliveries_tenant_id_idx').on(t.tenantId, t.id),
    index('deliveries_endpoint_pending_idx').on(t.endpoint).where(sql`status = 'pending'`),
  ],
);

export const deliveryAttempts = pgTable(
  'delivery_attempts',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    deliveryId: text('delivery_id').notNull(),
    attemptedAt: ts('attempted_at').notNull(),
    durationMs: integer('duration_ms').notNull(),
    responseStatus: integer('response_status'),
    error: text('error'),
    responseExcerpt: text('response_excerpt'),
  },
  (t) => [index('delivery_attempts_delivery_idx').on(t.deliveryId, t.id)],
);

/**
 * What taskhook learned about how long each kind of task takes (src/durations/): one
 * row per (tenant, capability, action, model), a decayed log-spaced histogram of
 * `completed_at − created_at` with censored observations kept apart. Written only by
 * the learner, every few seconds in one batch; read by every process into memory.
 */
export const taskDurations = pgTable(
  'task_durations',
  {
    tenantId: text('tenant_id').notNull(),
    capability: text('capability').notNull(),
    action: text('action').notNull(),
    model: text('model').notNull(),
    /** {"e": [...], "c": [...]}: decayed weights of completions / censored observations per bin */
    histogram: jsonb('histogram').notNull(),
    /** observations folded in, ever (not decayed) */
    samples: bigint('samples', { mode: 'number' }).notNull().default(0),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('task_durations_kind_uq').on(t.tenantId, t.capability, t.action, t.model),
    // each process refreshes its cache with the rows changed since its last read
    index('task_durations_updated_idx').on(t.updatedAt),
  ],
);

/**
 * The learner's progress through task_snapshots: the last (updated_at, tenant_id,
 * task_id) folded. One row (id 1), locked by the process folding a batch, so several
 * workers never fold the same task twice.
 */
export const durationLearner = pgTable('duration_learner', {
  id: smallint('id').primaryKey(),
  watermarkAt: ts('watermark_at').notNull(),
  watermarkTenant: text('watermark_tenant').notNull().default(''),
  watermarkTask: text('watermark_task').notNull().default(''),
});

/**
 * Submits through taskhook (POST /v1/tasks), one row per (tenant, Idempotency-Key),
 * written BEFORE the upstream call so a retry of a request whose process died mid-call
 * finds it. `state`: in_flight (an attempt holds `lease_until`), accepted (upstream
 * answered a task_id; the watch was written in the same transaction and `response` is
 * the answer replayed to a retry), unknown (the attempt died or upstream's answer could
 * not be read: a retry is told so and never submits again). A submit that certainly
 * created nothing upstream deletes its row, freeing the key. Rows go 24 h after
 * creation (src/retention.ts); `expires_at` is when the key may be used afresh.
 */
export const taskSubmissions = pgTable(
  'task_submissions',
  {
    tenantId: text('tenant_id').notNull(),
    idempotencyKey: text('idempotency_key').notNull(),
    /** SHA-256 of the canonical request (path, body, callback_url, metadata, events) */
    requestHash: text('request_hash').notNull(),
    state: text('state').notNull(),
    /** the attempt that owns the row; only it may record the outcome */
    attemptToken: uuid('attempt_token').notNull(),
    leaseUntil: ts('lease_until').notNull(),
    path: text('path').notNull(),
    taskId: text('task_id'),
    watchId: text('watch_id'),
    /** upstream's HTTP status and its answer, byte for byte (capped) */
    upstreamStatus: integer('upstream_status'),
    upstreamBody: text('upstream_body'),
    /** the kind of task upstream reported at submit (capability, action, model) */
    capability: text('capability'),
    action: text('action'),
    model: text('model'),
    /** the answer a retry with the same key replays: HTTP status and body */
    responseStatus: integer('response_status'),
    response: text('response'),
    /** why the outcome is unknown */
    detail: text('detail'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    expiresAt: ts('expires_at').notNull(),
  },
  (t) => [
    uniqueIndex('task_submissions_key_uq').on(t.tenantId, t.idempotencyKey),
    // retention drops expired keys oldest first; the dashboard finds a watch's submit
    index('task_submissions_expires_idx').on(t.expiresAt),
    index('task_submissions_watch_idx').on(t.watchId).where(sql`watch_id is not null`),
  ],
);
