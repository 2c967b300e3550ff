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
  primaryKey,
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
    /**
     * The `workers` row of the process that owns this task (scheduler v2, src/poller/):
     * it keeps the task in memory and polls it on its own timer, writing only when
     * something changed and at checkpoints, so `next_poll_at` and `polls` lag the truth
     * by at most a checkpoint interval while owned. Null: nobody owns it, claimable when due.
     */
    ownerId: bigint('owner_id', { mode: 'number' }),
  },
  (t) => [
    uniqueIndex('upstream_tasks_tenant_task_uq').on(t.tenantId, t.taskId),
      // Finished rows are deleted, so every row here is live: the whole table is the "partial" set.
    // (the previous release's claim; kept while a release that reads it may run)
    index('upstream_tasks_due_idx').on(t.nextPollAt),
    // The v2 claim walks only the unowned rows: an owned row's next_poll_at is a checkpoint
    // that falls behind between writes, and must not be scanned past on every claim.
    index('upstream_tasks_unowned_due_idx').on(t.nextPollAt).where(sql`owner_id is null`),
    // takeover and hand-back: all the rows of one worker
    index('upstream_tasks_owner_idx').on(t.ownerId).where(sql`owner_id is not null`),
  ],
);

/**
 * One row per scheduler process (a worker) since it started: it heartbeats `heartbeat_at`
 * every second or so; one whose heartbeat is older than the worker timeout is declared
 * dead (`dead_at`) by any live worker, in the same statement that takes its tasks away
 * (and any heartbeat frees what a dead worker still owns: src/poller/sql.ts), so nothing
 * it writes afterwards can land (every write checks `owner_id`). A process
 * that lost its row registers a new one: a worker id is never owned twice.
 */
export const workers = pgTable(
  'workers',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    startedAt: ts('started_at').notNull().defaultNow(),
    heartbeatAt: ts('heartbeat_at').notNull().defaultNow(),
    deadAt: ts('dead_at'),
    /** tasks it owns, as of its last heartbeat (for balancing) */
    owned: integer('owned').notNull().default(0),
    host: text('host'),
    pid: integer('pid'),
    version: text('version'),
  },
  (t) => [index('workers_live_idx').on(t.heartbeatAt).where(sql`dead_at is null`)],
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
    /**
     * The exact body, on rows written by releases before event_bodies; '' on rows that
     * reference one (bodyId), whose body the claim composes (src/delivery/sql.ts, bodySql).
     */
    payload: text('payload').notNull(),
    /** the event's stored answer (event_bodies.id), shared by every watch of the task; null on older rows */
    bodyId: bigint('body_id', { mode: 'number' }),
    /**
     * Claims by a release that composes bodies. A claim of a row with a bodyId that does not
     * bump it (the previous release's claim, which would send payload '') is skipped by a
     * trigger (migrations/0009_event_bodies.sql): during a rolling upgrade only this release sends such rows.
     */
    composedClaims: integer('composed_claims').notNull().default(0),
    /** pending | delivered | undeliverable | cancelled */
    status: text('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    /** index into the retry schedule; reset by a redelivery */
    retryStep: integer('retry_step').notNull().default(0),
    nextAttemptAt: ts('next_attempt_at').notNull().defaultNow(),
    leaseToken: uuid('lease_token'),
    /**
     * The worker (workers.id) whose claim holds the lease: when it is declared dead, the
     * heartbeat sweep makes its leased rows due at once (lease_token cleared, so its late
     * completion is fenced out) instead of waiting for the lease (src/poller/sql.ts).
     */
    leasedBy: bigint('leased_by', { mode: 'number' }),
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
    // retention: is an event body still referenced?
    index('deliveries_body_idx').on(t.bodyId).where(sql`body_id is not null`),
    // the takeover sweep: a dead worker's leased deliveries (rows leave it when their lease is cleared)
    index('deliveries_leased_by_idx').on(t.leasedBy).where(sql`lease_token is not null`),
  ],
);

/**
 * One row per event of a task (its terminal outcome, its first `processing`): the head
 * of the webhook body (type and timestamp) and upstream's object as text, stored once
 * however many watches the task has. Each watch's body is composed from it at send time:
 * head + watch id + metadata + data, the same bytes on every retry and redelivery.
 */
export const eventBodies = pgTable(
  'event_bodies',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    tenantId: text('tenant_id').notNull(),
    taskId: text('task_id').notNull(),
    eventType: text('event_type').notNull(),
    head: text('head').notNull(),
    data: text('data').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [index('event_bodies_created_idx').on(t.createdAt)],
);

/**
 * What the deliverers last saw of one tenant's callback URL (written when its state
 * changes, by whichever process saw it): healthy, failing (answers that are not 2xx/4xx,
 * timeouts), or circuit open until openUntil. GET /v1/endpoints and last_delivery read it.
 */
export const endpointHealth = pgTable(
  'endpoint_health',
  {
    tenantId: text('tenant_id').notNull(),
    url: text('url').notNull(),
    /** healthy | failing | open */
    state: text('state').notNull(),
    openUntil: ts('open_until'),
    lastError: text('last_error'),
    lastErrorAt: ts('last_error_at'),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.url] })],
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

/**
 * Dashboard sessions ended by sign-out (issue 12): the session cookie is sealed and
 * self-contained, so without this list a copy of it kept working for its 12 h lifetime.
 * Checked on every dashboard request; a row is useless once the session it names has
 * expired and is deleted then (at the next sign-out).
 */
export const dashboardSessionRevocations = pgTable(
  'dashboard_session_revocations',
  {
    /** the session's random id (in its sealed cookie) */
    sessionId: text('session_id').primaryKey(),
    /** when the session would have expired anyway */
    expiresAt: ts('expires_at').notNull(),
  },
  (t) => [index('dashboard_session_revocations_expires_idx').on(t.expiresAt)],
);
