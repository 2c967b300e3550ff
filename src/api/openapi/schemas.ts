// zod schemas of what the API answers and what webhooks carry. Requests are
// described by the schemas that validate them (validation.ts, tenant.ts, admin.ts);
// these describe the other direction, for the OpenAPI document and the typed client.
// The type checks at the bottom keep them in step with what the stores return.
import { z } from 'zod';
import { EVENT_TYPES, OUTCOMES, WATCH_STATUSES, type WatchView } from '../../watches/store.js';
import type { CreatedTenant, TenantSummary, TenantView } from '../../tenancy/store.js';
import type { GiveUpCode } from '../../delivery/outbox.js';
import { ENDPOINT_STATES } from '../../delivery/health.js';

const isoTime = (description: string) => z.iso.datetime().describe(description);

export const problemSchema = z
  .object({
    type: z.string().describe('a URI naming the kind of problem, e.g. https://taskhook.dev/problems/invalid'),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().describe('what went wrong with this request, in words'),
    errors: z
      .array(z.object({ field: z.string(), message: z.string() }))
      .optional()
      .describe('422 only: one entry per invalid field'),
    outcome: z
      .enum(['not_submitted', 'unknown', 'accepted'])
      .optional()
      .describe(
        'POST /v1/tasks only: not_submitted — nothing was created upstream, retrying is safe; unknown — upstream may have created the task, submitting again (with a new key) could create a second one; accepted — upstream created task_id but taskhook could not record its watch',
      ),
    upstream_status: z.number().int().nullable().optional().describe("POST /v1/tasks: upstream's HTTP status, null if it gave none"),
    upstream_body: z.unknown().optional().describe("POST /v1/tasks: upstream's answer (JSON as JSON, else text), at most 4 KiB"),
    upstream_body_truncated: z.boolean().optional().describe('true when upstream_body was cut at 4 KiB'),
    task_id: z.string().optional().describe('outcome accepted: the task upstream created'),
  })
  .describe('RFC 9457 problem details (application/problem+json)');

export const upstreamErrorSchema = z.object({ code: z.string(), message: z.string(), type: z.string() });

export const TASK_STATUSES = ['pending', 'processing', 'completed', 'failed', 'cancelled'] as const;

/** The upstream task object, verbatim: result fields are flattened onto it and unknown fields kept. */
export const taskSnapshotSchema = z
  .looseObject({
    task_id: z.string(),
    status: z.enum(TASK_STATUSES),
    capability: z.string().optional(),
    action: z.string().optional(),
    model: z.string().optional(),
    progress: z.number().nullable().optional(),
    error: upstreamErrorSchema.nullable().optional(),
    credits_used: z.number().nullable().optional(),
    created_at: z.number().optional().describe('Unix seconds'),
    completed_at: z.number().nullable().optional().describe('Unix seconds'),
    metadata: z.unknown().optional(),
  })
  .describe("the upstream's task object as last polled, in its own shape (result fields such as audioUrl, imageUrl, videoUrl flattened on)");

export const DELIVERY_STATUSES = ['pending', 'delivered', 'undeliverable', 'cancelled'] as const;

export const watchSchema = z.object({
  id: z.string().describe('wat_ followed by 26 characters'),
  task_id: z.string(),
  callback_url: z.string(),
  metadata: z.record(z.string(), z.unknown()),
  events: z.array(z.enum(EVENT_TYPES)),
  status: z.enum(WATCH_STATUSES).describe('watching → delivering → delivered | undeliverable; or cancelled'),
  task: taskSnapshotSchema.nullable().describe('the last upstream snapshot; null before the first poll'),
  polls: z.number().int(),
  next_poll_at: isoTime('when upstream is polled next; null once the watch stopped watching').nullable(),
  created_at: isoTime('registration time'),
  updated_at: isoTime('last change'),
  outcome: z
    .enum(OUTCOMES)
    .nullable()
    .describe('the event that ended the watch, whether or not it was subscribed to; null until then, and for a watch cancelled before it ended'),
  eta: z
    .object({
      p50: isoTime('as likely before as after: the median completion of this kind of task, given how long this one has run'),
      p90: isoTime('nine in ten tasks of this kind and age have completed by then'),
    })
    .nullable()
    .describe("the predicted completion, from how long this kind of task (the tenant's capability, action, model) has taken lately; null until taskhook knows the kind and enough of its durations, and once the watch stopped watching"),
  last_poll_error: z
    .object({
      at: isoTime('when polls started failing this way'),
      message: z.string().describe('what the last poll ran into: an HTTP status, a timeout, a DNS or connection error, a malformed answer'),
    })
    .nullable()
    .describe('while upstream polls of the task are failing; null once one succeeds (and once the watch stopped watching)'),
  last_delivery: z
    .object({
      webhook_id: z.string().describe('msg_…: the webhook-id header, the same on every retry and redelivery'),
      status: z.enum(DELIVERY_STATUSES),
      attempts: z.number().int(),
      next_attempt_at: isoTime('next retry, while pending').nullable(),
      last_response_status: z.number().int().nullable(),
      last_error: z.string().nullable().describe('why the last attempt failed (a timeout, a refused connection, an HTTP status); null once delivered'),
      endpoint_state: z
        .enum(ENDPOINT_STATES)
        .nullable()
        .describe("the callback URL's health as the deliverers last saw it: healthy, failing, or circuit_open (its deliveries wait until circuit_open_until); null before any attempt"),
      circuit_open_until: isoTime('while the circuit of this callback URL is open: when its deliveries are tried again').nullable(),
    })
    .nullable()
    .describe('the latest webhook of this watch; null before there is one'),
});

export const submittedTaskSchema = z
  .object({
    task_id: z.string().describe('the task upstream created'),
    upstream: z
      .looseObject({ task_id: z.string() })
      .describe("upstream's answer to the submit, verbatim (the unified task shape: status pending, capability, action, model, …)"),
    watch: watchSchema.describe('the watch registered on task_id, as POST /v1/watches answers it'),
  })
  .describe('a task submitted through taskhook and its watch');

export const watchPageSchema = z.object({
  data: z.array(watchSchema),
  next_cursor: z.string().nullable().describe('pass as cursor for the next page; null on the last one'),
});

export const endpointSchema = z.object({
  url: z.string().describe('a callback URL of this tenant that taskhook has tried to deliver to'),
  state: z.enum(ENDPOINT_STATES).describe('healthy; failing (its last answers were errors or timeouts); circuit_open (nothing is sent to it until circuit_open_until)'),
  circuit_open_until: isoTime('while the circuit is open').nullable(),
  last_error: z.string().nullable().describe('the last failure seen (kept after recovery; see last_error_at)'),
  last_error_at: isoTime('when last_error was seen').nullable(),
  pending: z.number().int().describe('webhooks to this URL waiting to be delivered'),
  next_attempt_at: isoTime('the earliest next attempt of those').nullable(),
  updated_at: isoTime('when the state last changed'),
});

export const endpointListSchema = z.object({ data: z.array(endpointSchema) });
export type Endpoint = z.infer<typeof endpointSchema>;

export const deliveryAttemptSchema = z.object({
  webhook_id: z.string(),
  event_type: z.enum(EVENT_TYPES),
  attempted_at: isoTime('when the attempt started'),
  response_status: z.number().int().nullable().describe("the receiver's status; null if none came (timeout, refused, …)"),
  duration_ms: z.number().int(),
  error: z.string().nullable(),
  response_excerpt: z.string().nullable().describe("the start of the receiver's answer"),
});

export const deliveryAttemptListSchema = z.object({ data: z.array(deliveryAttemptSchema) });

export const tenantViewSchema = z.object({
  tenant_id: z.string(),
  name: z.string(),
  upstream_base_url: z.string(),
  has_upstream_api_key: z.boolean(),
  signing_secret_rotated_at: isoTime('last rotation').nullable(),
  previous_secret_expires_at: isoTime('until then webhooks also carry a signature by the previous secret').nullable(),
});

export const rotatedSecretSchema = z.object({
  signing_secret: z.string().describe('the new whsec_… secret, shown once'),
  previous_secret_expires_at: isoTime('the replaced secret keeps signing (second signature) until then'),
});

export const tenantSummarySchema = z.object({
  tenant_id: z.string(),
  name: z.string(),
  upstream_base_url: z.string(),
  created_at: isoTime('creation time'),
  disabled_at: isoTime('when disabled').nullable(),
});

export const createdTenantSchema = z.object({
  tenant_id: z.string(),
  name: z.string(),
  api_key: z.string().describe('the gateway key, shown once (stored hashed)'),
  signing_secret: z.string().describe('whsec_…, shown once'),
  upstream_base_url: z.string(),
  created_at: isoTime('creation time'),
});

export const tenantListSchema = z.object({ data: z.array(tenantSummarySchema) });

export const healthSchema = z.object({ status: z.literal('ok') });
export const readinessSchema = z.object({
  status: z.enum(['ready', 'not ready']),
  reason: z.string().optional().describe('why not ready'),
});

// ── Webhooks (CONTRACT §4) ──

const GIVE_UP_CODES = ['task_not_found', 'upstream_unauthorized', 'watch_expired'] as const satisfies readonly GiveUpCode[];

const envelope = <T extends (typeof EVENT_TYPES)[number], D extends z.ZodType>(type: T, data: D) =>
  z.object({
    type: z.literal(type),
    timestamp: isoTime('when the event happened'),
    watch_id: z.string(),
    metadata: z.record(z.string(), z.unknown()).describe("the watch's metadata"),
    data,
  });

const snapshotWith = (status: (typeof TASK_STATUSES)[number]) => taskSnapshotSchema.extend({ status: z.literal(status) });

export const webhookEventSchemas = {
  'task.completed': envelope('task.completed', snapshotWith('completed')),
  'task.failed': envelope('task.failed', snapshotWith('failed').extend({ error: upstreamErrorSchema })),
  'task.cancelled': envelope('task.cancelled', snapshotWith('cancelled')),
  'task.processing': envelope('task.processing', snapshotWith('processing')),
  'watch.failed': envelope(
    'watch.failed',
    z.object({
      task_id: z.string(),
      status: z.literal('failed'),
      error: z.object({ code: z.enum(GIVE_UP_CODES), message: z.string(), type: z.literal('gateway') }),
    }),
  ),
} as const;

export const webhookEventSchema = z.discriminatedUnion('type', [
  webhookEventSchemas['task.completed'],
  webhookEventSchemas['task.failed'],
  webhookEventSchemas['task.cancelled'],
  webhookEventSchemas['task.processing'],
  webhookEventSchemas['watch.failed'],
]);

/** One `data` of GET /v1/events: a webhook as it would be POSTed, to forward or verify as is. */
export const streamedWebhookSchema = z.object({
  webhook_id: z.string(),
  type: z.enum(EVENT_TYPES),
  watch_id: z.string(),
  headers: z.object({
    'webhook-id': z.string(),
    'webhook-timestamp': z.string(),
    'webhook-signature': z.string(),
    'content-type': z.literal('application/json'),
  }),
  body: z.string().describe('the exact webhook body (a JSON text; verify the signature over it before parsing)'),
});

export type Problem = z.infer<typeof problemSchema>;
export type TaskSnapshot = z.infer<typeof taskSnapshotSchema>;
export type Watch = z.infer<typeof watchSchema>;
export type WatchPage = z.infer<typeof watchPageSchema>;
export type SubmittedTask = z.infer<typeof submittedTaskSchema>;
export type DeliveryAttempt = z.infer<typeof deliveryAttemptSchema>;
export type TenantSettings = z.infer<typeof tenantViewSchema>;
export type RotatedSecret = z.infer<typeof rotatedSecretSchema>;
export type WebhookEvent = z.infer<typeof webhookEventSchema>;
export type WebhookEventType = WebhookEvent['type'];
export type StreamedWebhook = z.infer<typeof streamedWebhookSchema>;

// Compile-time drift checks: what the stores return must fit what is documented
// (status and events are plain strings in the stores, so they are left out).
type Fits<Actual, Documented> = [Actual] extends [Documented] ? true : false;
type Expect<T extends true> = T;
type Loose<W> = W extends { last_delivery: infer D }
  ? Omit<W, 'status' | 'events' | 'task' | 'outcome' | 'last_delivery'> & { last_delivery: Omit<NonNullable<D>, 'status'> | null }
  : never;
export type DriftChecks = [
  Expect<Fits<Loose<WatchView>, Loose<Watch>>>,
  Expect<Fits<keyof WatchView, keyof Watch>>,
  Expect<Fits<keyof Watch, keyof WatchView>>,
  Expect<Fits<TenantView, TenantSettings>>,
  Expect<Fits<TenantSummary, z.infer<typeof tenantSummarySchema>>>,
  Expect<Fits<CreatedTenant, z.infer<typeof createdTenantSchema>>>,
];
