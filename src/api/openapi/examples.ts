// Example values for the OpenAPI document: one coherent story (a voice clone task
// watched, delivered, its webhook) so the examples read as one session. Typed by the
// response schemas, so an example that stops fitting fails to compile; the test also
// validates every example against its schema in the served document.
import type { z } from 'zod';
import { TASK_ID_MESSAGE, type registerWatchBody, type submitTaskBody } from '../validation.js';
import { MAX_SUBMIT_REQUEST_BYTES } from '../validation.js';
import { IdempotencyKeyRequired } from '../tasks.js';
import { ApiError as Err } from '../errors.js';
import { KeyInUse, KeyReused, outcomeUnknown } from '../../submit/submitter.js';
import type { ApiError } from '../errors.js';
import { BadRequest, Conflict, Invalid, NotFound, TooLarge, TooManyRequests, Unauthorized, UnsupportedMediaType } from '../errors.js';
import { MAX_BODY_BYTES } from '../body.js';
import { giveUpData } from '../../delivery/outbox.js';
import { sign } from '../../delivery/sign.js';
import type {
  DeliveryAttempt,
  Endpoint,
  Problem,
  RotatedSecret,
  StreamedWebhook,
  TaskSnapshot,
  TenantSettings,
  SubmittedTask,
  Watch,
  WatchPage,
  createdTenantSchema,
  tenantSummarySchema,
  webhookEventSchemas,
} from './schemas.js';

const WATCH_ID = 'wat_01jf7q3m8x2v5c9n4r6t8y0b2d';
const TASK_ID = 'b28f0341-7c1e-4c55-9a51-3f0f1e2d4c5b';
const WEBHOOK_ID = 'msg_01jf7q3rz4k8w2m6p0s9d3f5h7';

export const registerExample = {
  task_id: TASK_ID,
  callback_url: 'https://example.com/hooks/taskhook',
  metadata: { order_id: 4711 },
  events: ['task.completed', 'task.failed', 'task.cancelled', 'watch.failed'],
} satisfies z.input<typeof registerWatchBody>;

/** Before completion: no result fields yet. */
const runningTask = {
  task_id: TASK_ID,
  status: 'processing',
  capability: 'voice',
  action: 'clone',
  model: 'v1-real',
  progress: 0.2,
  error: null,
  credits_used: null,
  created_at: 1795867200,
  completed_at: null,
  metadata: null,
} satisfies TaskSnapshot;

export const completedTask = {
  ...runningTask,
  status: 'completed',
  progress: null,
  completed_at: 1795867207,
  audioUrl: 'https://cdn.example.com/out/b28f0341.wav',
  providerUsed: 'v1-async',
} satisfies TaskSnapshot;

export const newWatch = {
  id: WATCH_ID,
  task_id: TASK_ID,
  callback_url: registerExample.callback_url,
  metadata: registerExample.metadata,
  events: registerExample.events,
  status: 'watching',
  task: null,
  polls: 0,
  next_poll_at: '2026-11-28T12:00:02.000Z',
  created_at: '2026-11-28T12:00:00.000Z',
  updated_at: '2026-11-28T12:00:00.000Z',
  outcome: null,
  eta: null,
  last_poll_error: null,
  last_delivery: null,
} satisfies Watch;

export const submitExample = {
  submit: {
    path: '/api/v2/voice/clone',
    body: { text: 'Hello, this is a voice-clone test.', reference_audio_url: 'https://cdn.example.com/ref.wav', model: 'v1-real' },
  },
  callback_url: registerExample.callback_url,
  metadata: registerExample.metadata,
} satisfies z.input<typeof submitTaskBody>;

export const submittedTask = {
  task_id: TASK_ID,
  upstream: {
    task_id: TASK_ID,
    status: 'pending',
    capability: 'voice',
    action: 'clone',
    model: 'v1-real',
    progress: null,
    error: null,
    credits_used: null,
    created_at: 1795867200,
    completed_at: null,
    metadata: null,
  },
  watch: { ...newWatch, events: ['task.completed', 'task.failed', 'task.cancelled', 'watch.failed'] },
} satisfies SubmittedTask;

export const deliveredWatch = {
  ...newWatch,
  status: 'delivered',
  task: completedTask,
  polls: 3,
  next_poll_at: null,
  updated_at: '2026-11-28T12:00:08.214Z',
  outcome: 'task.completed',
  last_delivery: {
    webhook_id: WEBHOOK_ID,
    status: 'delivered',
    attempts: 1,
    next_attempt_at: null,
    last_response_status: 204,
    last_error: null,
    endpoint_state: 'healthy',
    circuit_open_until: null,
  },
} satisfies Watch;

export const cancelledWatch = { ...newWatch, status: 'cancelled', polls: 1, next_poll_at: null, updated_at: '2026-11-28T12:00:03.100Z' } satisfies Watch;

export const redeliveringWatch = {
  ...deliveredWatch,
  status: 'delivering',
  updated_at: '2026-11-28T12:30:00.000Z',
  last_delivery: {
    webhook_id: WEBHOOK_ID,
    status: 'pending',
    attempts: 1,
    next_attempt_at: '2026-11-28T12:30:00.000Z',
    last_response_status: 204,
    last_error: null,
    endpoint_state: 'healthy',
    circuit_open_until: null,
  },
} satisfies Watch;

export const endpoints = {
  data: [
    {
      url: 'https://hooks.example.com/zap/123',
      state: 'circuit_open',
      circuit_open_until: '2026-11-28T12:31:00.000Z',
      last_error: 'timed out after 15000 ms',
      last_error_at: '2026-11-28T12:30:00.000Z',
      pending: 12,
      next_attempt_at: '2026-11-28T12:31:00.000Z',
      updated_at: '2026-11-28T12:30:00.000Z',
    },
    {
      url: 'https://example.com/webhooks/taskhook',
      state: 'healthy',
      circuit_open_until: null,
      last_error: null,
      last_error_at: null,
      pending: 0,
      next_attempt_at: null,
      updated_at: '2026-11-28T12:00:08.214Z',
    },
  ] satisfies Endpoint[],
};

export const watchPage = { data: [deliveredWatch], next_cursor: null } satisfies WatchPage;

export const attempts = {
  data: [
    {
      webhook_id: WEBHOOK_ID,
      event_type: 'task.completed',
      attempted_at: '2026-11-28T12:00:08.180Z',
      response_status: 204,
      duration_ms: 34,
      error: null,
      response_excerpt: '',
    },
  ] satisfies DeliveryAttempt[],
};

export const tenantSettings = {
  tenant_id: 'ten_01jf7q0a1b2c3d4e5f6g7h8j9k',
  name: 'Acme',
  upstream_base_url: 'https://api.aiclonevoicefree.com',
  has_upstream_api_key: true,
  signing_secret_rotated_at: null,
  previous_secret_expires_at: null,
} satisfies TenantSettings;

export const patchTenantExample = { upstream_api_key: 'sk_live_new_key' };

export const rotatedSecret = {
  signing_secret: 'whsec_8yU2mZ1s0kq4Vq7cH1m0b0xJw4nQpE3r',
  previous_secret_expires_at: '2026-11-29T12:00:00.000Z',
} satisfies RotatedSecret;

export const createTenantExample = { name: 'Acme', upstream_api_key: 'sk_live_acme', upstream_base_url: 'https://api.aiclonevoicefree.com' };

export const createdTenant = {
  tenant_id: tenantSettings.tenant_id,
  name: 'Acme',
  api_key: 'thk_3f9c2a7d1e5b8c0a4f6d2e9b7c1a5d3e',
  signing_secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  upstream_base_url: 'https://api.aiclonevoicefree.com',
  created_at: '2026-11-28T11:00:00.000Z',
} satisfies z.infer<typeof createdTenantSchema>;

export const tenantSummary = {
  tenant_id: tenantSettings.tenant_id,
  name: 'Acme',
  upstream_base_url: 'https://api.aiclonevoicefree.com',
  created_at: '2026-11-28T11:00:00.000Z',
  disabled_at: null,
} satisfies z.infer<typeof tenantSummarySchema>;

export const disabledTenant = { ...tenantSummary, disabled_at: '2026-11-28T13:00:00.000Z' } satisfies z.infer<typeof tenantSummarySchema>;

/** The body errors.ts's problem() sends for this error. */
const body = (err: ApiError): Problem => ({
  type: `https://taskhook.dev/problems/${err.slug}`,
  title: err.title,
  status: err.status,
  detail: err.detail,
  ...(err.extra as Partial<Problem>),
});

export const problems = {
  MalformedRequest: body(BadRequest('the body is not valid JSON: Unexpected end of JSON input')),
  Unauthorized: body(Unauthorized()),
  NotFound: body(NotFound('watch', WATCH_ID)),
  Conflict: body(Conflict('the watch has no terminal event to redeliver yet (or was cancelled)')),
  TooLarge: body(TooLarge(`the body must be at most ${MAX_BODY_BYTES} bytes`)),
  UnsupportedMediaType: body(UnsupportedMediaType()),
  Invalid: body(
    Invalid(TASK_ID_MESSAGE, [{ field: 'task_id', message: TASK_ID_MESSAGE }]),
  ),
  RateLimited: body(TooManyRequests('this tenant may make 50 API requests per second', 1000)),
};

/** The problems of POST /v1/tasks, as src/submit/submitter.ts answers them; by HTTP status. */
export const submitProblems = {
  400: { 'idempotency-key-required': body(IdempotencyKeyRequired()), 'malformed-request': problems.MalformedRequest },
  409: { 'idempotency-key-in-use': body(KeyInUse()) },
  413: { 'too-large': body(TooLarge(`the body must be at most ${MAX_SUBMIT_REQUEST_BYTES} bytes`)) },
  422: {
    'upstream-rejected': body(
      new Err(422, 'upstream-rejected', 'Upstream rejected the submit', 'upstream answered HTTP 400: it refused the request (see upstream_body); nothing was created upstream, fix the request and submit again', {}, {
        outcome: 'not_submitted',
        upstream_status: 400,
        upstream_body: { error: { code: 'invalid_request', message: 'reference_audio_url (or voice_id) is required', type: 'invalid_request' } },
      }),
    ),
    'upstream-unauthorized': body(
      new Err(422, 'upstream-unauthorized', 'Upstream refused the tenant key', "upstream answered 401: this tenant's upstream key is wrong or revoked; set it with PATCH /v1/tenant (or UPSTREAM_API_KEY). Nothing was created upstream.", {}, {
        outcome: 'not_submitted',
        upstream_status: 401,
        upstream_body: { error: { code: 'unauthorized', message: 'Invalid or missing API key', type: 'auth' } },
      }),
    ),
    'idempotency-key-reused': body(KeyReused()),
    invalid: body(Invalid('submit.path must not contain . or .. segments', [{ field: 'submit.path', message: 'submit.path must not contain . or .. segments' }])),
  },
  502: {
    'outcome-unknown': body(
      outcomeUnknown(
        'upstream did not answer (timed out); it may have accepted the task. Submitting again could create a second task: check upstream (or wait for it to show up) before retrying with a new key; this key keeps answering this for 24 h',
        { upstream_status: null, upstream_body: null },
      ),
    ),
    'upstream-unavailable': body(
      new Err(502, 'upstream-unavailable', 'Upstream unavailable', 'upstream could not be reached (ECONNREFUSED: connect ECONNREFUSED 203.0.113.7:443); nothing was sent; retrying is safe (with this key or a new one)', {}, { outcome: 'not_submitted', upstream_status: null }),
    ),
    'submit-not-recorded': body(
      new Err(502, 'submit-not-recorded', 'Submitted but not recorded', `upstream accepted the task (task_id ${TASK_ID}) but taskhook could not record its watch; register it with POST /v1/watches {task_id: "${TASK_ID}", …} rather than submitting again`, {}, { outcome: 'accepted', task_id: TASK_ID }),
    ),
  },
} as const;

// ── Webhook bodies ──

type Event<K extends keyof typeof webhookEventSchemas> = z.infer<(typeof webhookEventSchemas)[K]>;
const event = { timestamp: '2026-11-28T12:00:08.000Z', watch_id: WATCH_ID, metadata: { order_id: 4711 } };

export const webhookExamples = {
  'task.completed': { type: 'task.completed', ...event, data: completedTask } satisfies Event<'task.completed'>,
  'task.failed': {
    type: 'task.failed',
    ...event,
    data: {
      ...runningTask,
      status: 'failed',
      progress: null,
      completed_at: 1795867207,
      error: { code: 'voice_unusable', message: 'the reference audio contains no speech', type: 'invalid_request' },
    },
  } satisfies Event<'task.failed'>,
  'task.cancelled': { type: 'task.cancelled', ...event, data: { ...runningTask, status: 'cancelled', progress: null, completed_at: 1795867203 } } satisfies Event<'task.cancelled'>,
  'task.processing': { type: 'task.processing', ...event, timestamp: '2026-11-28T12:00:02.000Z', data: runningTask } satisfies Event<'task.processing'>,
  'watch.failed': {
    type: 'watch.failed',
    ...event,
    data: JSON.parse(giveUpData(TASK_ID, 'task_not_found')) as Event<'watch.failed'>['data'],
  } satisfies Event<'watch.failed'>,
};

/** Signed for real, with the createdTenant example's secret: the example webhook verifies. */
export const webhookHeadersExample = {
  'webhook-id': WEBHOOK_ID,
  'webhook-timestamp': '1795867208',
  'webhook-signature': sign(createdTenant.signing_secret, WEBHOOK_ID, 1795867208, JSON.stringify(webhookExamples['task.completed'])),
};

export const streamedWebhook = {
  webhook_id: WEBHOOK_ID,
  type: 'task.completed',
  watch_id: WATCH_ID,
  headers: { ...webhookHeadersExample, 'content-type': 'application/json' },
  body: JSON.stringify(webhookExamples['task.completed']),
} satisfies StreamedWebhook;

export const sseFrame = `: ready\nretry: 1000\n\nid: ${WEBHOOK_ID}\nevent: task.completed\ndata: ${JSON.stringify(streamedWebhook)}\n\n`;

export const metricsExample = [
  '# HELP taskhook_deliveries_total Delivery attempts by outcome and the class of the receiver\'s HTTP status',
  '# TYPE taskhook_deliveries_total counter',
  'taskhook_deliveries_total{outcome="delivered",status_class="2xx"} 1287',
  '',
].join('\n');
