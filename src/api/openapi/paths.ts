// The /v1 operations of the OpenAPI document. Request bodies and queries are the zod
// schemas the routes validate with, registered as they are.
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { listWatchesQuery, registerWatchBody, submitTaskBody, TASK_ID, MAX_SUBMIT_BODY_BYTES } from '../validation.js';
import { patchTenantBody } from '../tenant.js';
import { createTenantBody } from '../admin.js';
import * as ex from './examples.js';
import {
  createdTenantSchema,
  deliveryAttemptListSchema,
  endpointListSchema,
  rotatedSecretSchema,
  problemSchema,
  streamedWebhookSchema,
  submittedTaskSchema,
  taskSnapshotSchema,
  tenantListSchema,
  tenantSummarySchema,
  tenantViewSchema,
  watchPageSchema,
  watchSchema,
} from './schemas.js';

export type Registry = OpenAPIHono['openAPIRegistry'];
type Operation = Parameters<Registry['registerPath']>[0];
type Described = Omit<Operation, 'tags' | 'security'>;

/** Problem responses, registered once under components/responses. */
export const ERRORS = {
  MalformedRequest: [400, 'The body is not JSON, not a JSON object or not valid UTF-8 (or the client closed the connection mid-request).'],
  Unauthorized: [401, 'Missing or wrong bearer token.'],
  NotFound: [404, "No such resource (another tenant's resources are not found either: existence is not leaked)."],
  Conflict: [409, 'The resource is not in a state that allows this.'],
  TooLarge: [413, 'The body is larger than 64 KiB.'],
  UnsupportedMediaType: [415, 'The body is not application/json.'],
  Invalid: [422, 'A field is invalid (one entry per field in `errors`), or the callback / upstream address is forbidden.'],
  RateLimited: [429, 'Over a tenant limit, or too many failed authentications from this client address (TASKHOOK_AUTH_THROTTLE); `Retry-After` says when to try again, if it applies.'],
} as const satisfies Record<keyof typeof ex.problems, readonly [number, string]>;
export type ErrorName = keyof typeof ERRORS;

/**
 * `registry.register(id, schema)` names a schema (components/schemas/{id}) by calling
 * `schema.openapi()`, a method zod binds only to schemas created after @hono/zod-openapi
 * extended it; the validation schemas are built earlier, at import. So a clone (the
 * same definition, created now) is registered.
 */
export const named = <T extends z.ZodType>(r: Registry, id: string, schema: T): T => r.register(id, schema.clone());

export const errors = (...names: ErrorName[]) => Object.fromEntries(names.map((n) => [ERRORS[n][0], { $ref: `#/components/responses/${n}` }]));
export const json = (description: string, schema: z.ZodType, example: unknown) => ({ description, content: { 'application/json': { schema, example } } });
const body = (schema: z.ZodType, example: unknown) => ({ body: { required: true, content: { 'application/json': { schema, example } } } });

/** Every /v1 route behind the tenant key can answer these. */
const tenantErrors = ['Unauthorized', 'RateLimited'] as const;
const bodyErrors = ['MalformedRequest', 'TooLarge', 'UnsupportedMediaType', 'Invalid'] as const;

// Path parameters are checked by hand in the routes (a malformed id is simply not found).
const watchParams = z.object({ id: z.string().regex(/^wat_[0-9a-z]{26}$/).meta({ description: 'the watch id', example: ex.newWatch.id }) });
const taskParams = z.object({ task_id: z.string().regex(TASK_ID).meta({ description: 'the upstream task id', example: ex.newWatch.task_id }) });
const tenantParams = z.object({ id: z.string().meta({ description: 'the tenant id', example: ex.tenantSummary.tenant_id }) });

export function watchPaths(r: Registry) {
  const Watch = named(r, 'Watch', watchSchema);
  const op = (o: Described) => r.registerPath({ tags: ['watches'], security: [{ gatewayKey: [] }], ...o });
  op({
    method: 'post',
    path: '/v1/watches',
    operationId: 'createWatch',
    summary: 'Watch a task',
    description:
      'Registers a task_id and a callback URL. taskhook polls upstream until the task ends, then POSTs a signed webhook. Idempotent: the same (task_id, callback_url) again answers 200 with the existing watch.',
    request: body(named(r, 'RegisterWatch', registerWatchBody), ex.registerExample),
    responses: {
      201: json('Watch created.', Watch, ex.newWatch),
      200: json('Already registered: the existing watch.', Watch, ex.newWatch),
      ...errors(...bodyErrors, ...tenantErrors),
    },
  });
  op({
    method: 'get',
    path: '/v1/watches',
    operationId: 'listWatches',
    summary: 'List watches',
    description: 'Newest first, a page at a time: pass `next_cursor` as `cursor` for the next page.',
    request: { query: listWatchesQuery },
    responses: { 200: json('A page of watches.', watchPageSchema, ex.watchPage), ...errors('Invalid', ...tenantErrors) },
  });
  op({
    method: 'get',
    path: '/v1/watches/{id}',
    operationId: 'getWatch',
    summary: 'Get a watch',
    description: 'The watch, with the last-known task snapshot and its latest delivery.',
    request: { params: watchParams },
    responses: { 200: json('The watch.', Watch, ex.deliveredWatch), ...errors('NotFound', ...tenantErrors) },
  });
  op({
    method: 'delete',
    path: '/v1/watches/{id}',
    operationId: 'cancelWatch',
    summary: 'Stop watching',
    description: 'Stops polling and cancels pending webhooks. Idempotent.',
    request: { params: watchParams },
    responses: { 200: json('The watch, status cancelled.', Watch, ex.cancelledWatch), ...errors('NotFound', ...tenantErrors) },
  });
  op({
    method: 'get',
    path: '/v1/watches/{id}/deliveries',
    operationId: 'listDeliveryAttempts',
    summary: 'Delivery attempts',
    description: 'Every attempt to deliver webhooks of this watch, oldest first.',
    request: { params: watchParams },
    responses: { 200: json('The attempts.', deliveryAttemptListSchema, ex.attempts), ...errors('NotFound', ...tenantErrors) },
  });
  op({
    method: 'post',
    path: '/v1/watches/{id}/redeliver',
    operationId: 'redeliverWatch',
    summary: 'Send the terminal webhook again',
    description: 'Re-queues the terminal event with the same webhook-id (receivers deduplicate on it), e.g. after it became undeliverable.',
    request: { params: watchParams },
    responses: { 202: json('Queued; the watch is delivering again.', Watch, ex.redeliveringWatch), ...errors('NotFound', 'Conflict', ...tenantErrors) },
  });
}

export function endpointPaths(r: Registry) {
  r.registerPath({
    method: 'get',
    path: '/v1/endpoints',
    tags: ['endpoints'],
    security: [{ gatewayKey: [] }],
    operationId: 'listEndpoints',
    summary: "Health of the tenant's callback URLs",
    description:
      'Every callback URL taskhook has tried to deliver to, failing ones first: healthy, failing, or circuit open until a time (a URL that keeps failing gets its own circuit; the other URLs of its host are not affected), the last error, and how many webhooks wait for it. At most 1,000.',
    responses: { 200: json('The endpoints.', named(r, 'EndpointList', endpointListSchema), ex.endpoints), ...errors(...tenantErrors) },
  });
}

/** One status, several kinds of problem: each kind an example (the first also as `example`). */
function problemsFor(description: string, byType: Record<string, unknown>) {
  const entries = Object.entries(byType);
  return {
    description,
    content: {
      'application/problem+json': {
        schema: problemSchema,
        example: entries[0]![1],
        examples: Object.fromEntries(entries.map(([type, value]) => [type, { summary: type, value }])),
      },
    },
  };
}

export function taskAndEventPaths(r: Registry) {
  const p = ex.submitProblems;
  r.registerPath({
    method: 'post',
    path: '/v1/tasks',
    tags: ['tasks'],
    security: [{ gatewayKey: [] }],
    operationId: 'createTask',
    summary: 'Submit a task through taskhook',
    description: [
      "POSTs `submit.body` to the tenant's upstream at `submit.path` with the tenant's upstream key (the app never holds it), reads the `task_id` from upstream's answer and registers a watch on it, as `POST /v1/watches` would; answers `201 {task_id, upstream, watch}`.",
      '',
      '**Idempotency-Key** (required): the same key with the same request within 24 h answers the first answer again (`Idempotent-Replayed: true`) and never submits twice; with a different request → 422 `idempotency-key-reused`; while the first is still in flight → 409 `idempotency-key-in-use` (retry). Keys are per tenant. The attempt is recorded before upstream is called, and upstream\'s acceptance together with the watch in one transaction: if taskhook dies in between, a retry with the key answers 502 `outcome-unknown` rather than submitting again.',
      '',
      "**Failures** carry `outcome`: `not_submitted` (nothing was created upstream: upstream refused — 422 `upstream-rejected` with `upstream_status` and `upstream_body`, or 422 `upstream-unauthorized` for its 401 — or could not be reached, 502 `upstream-unavailable`; the key is freed, retrying is safe) or `unknown` (502 `outcome-unknown`: a timeout, a 5xx, a malformed answer or one without task_id — upstream may hold a task; the key keeps answering this).",
      '',
      `**Forwarding**: \`submit.path\` must lie under an allowed prefix (TASKHOOK_SUBMIT_PATHS, default \`/api/v2/\`) and is refused, never rewritten, if it has \`..\`, \`//\`, percent-encoding, a query, a scheme or host, or control characters; \`submit.body\` is a JSON object of at most ${MAX_SUBMIT_BODY_BYTES / 1024} KiB. Only content-type, authorization (the tenant's upstream key) and user-agent go upstream.`,
    ].join('\n'),
    request: {
      headers: z.object({
        'idempotency-key': z
          .string()
          .regex(/^[\x21-\x7e]{1,255}$/)
          .meta({ description: '1-255 printable ASCII characters; a UUID per logical submit', example: '5f0c7a1e-2b4d-4f7a-9c3e-8d1b2a6e4f00' }),
      }),
      ...body(named(r, 'SubmitTask', submitTaskBody), ex.submitExample),
    },
    responses: {
      201: {
        ...json('Submitted: the task upstream created, its answer verbatim, and the watch.', named(r, 'SubmittedTask', submittedTaskSchema), ex.submittedTask),
        headers: { 'Idempotent-Replayed': { description: '`true` when this is the stored answer of an earlier request with the same key', schema: { type: 'string' } } },
      },
      400: problemsFor('No Idempotency-Key (or a malformed one), or the body is not a JSON object.', p[400]),
      ...errors('Unauthorized', 'UnsupportedMediaType', 'RateLimited'),
      409: problemsFor('Another request with this Idempotency-Key is still in flight; retry after `Retry-After` to get its answer.', p[409]),
      413: problemsFor(`The request is larger than the submit cap (submit.body at most ${MAX_SUBMIT_BODY_BYTES / 1024} KiB).`, p[413]),
      422: problemsFor(
        'Upstream refused the submit (`upstream-rejected`, `upstream-unauthorized`: nothing created, outcome not_submitted), the key was used with a different request (`idempotency-key-reused`), or a field is invalid (`invalid`: e.g. submit.path outside the allowlist).',
        p[422],
      ),
      502: problemsFor(
        'No usable answer from upstream: `outcome-unknown` (upstream may hold a task; do not blindly resubmit), `upstream-unavailable` (not_submitted: retry), or `submit-not-recorded` (accepted: register task_id with POST /v1/watches).',
        p[502],
      ),
    },
  });
  r.registerPath({
    method: 'get',
    path: '/v1/tasks/{task_id}',
    tags: ['tasks'],
    security: [{ gatewayKey: [] }],
    operationId: 'getTask',
    summary: 'Last-known task snapshot',
    description:
      "The last answer upstream gave for this task, verbatim, in upstream's own shape. While the task runs and taskhook knows how long its kind takes, the predicted completion comes in the `Taskhook-Eta-P50` / `Taskhook-Eta-P90` headers (the watch's `eta`).",
    request: { params: taskParams },
    responses: {
      200: {
        ...json('The snapshot.', named(r, 'TaskSnapshot', taskSnapshotSchema), ex.completedTask),
        headers: {
          'Taskhook-Eta-P50': { description: 'ISO time: the median predicted completion (absent when unknown, and once the task ended)', schema: { type: 'string' } },
          'Taskhook-Eta-P90': { description: 'ISO time: nine in ten tasks of this kind and age have completed by then (absent when unknown)', schema: { type: 'string' } },
        },
      },
      ...errors('NotFound', ...tenantErrors),
    },
  });
  const resume = 'Resume after this webhook id (msg_…), or from a time (ISO 8601 or Unix seconds).';
  r.registerPath({
    method: 'get',
    path: '/v1/events',
    tags: ['events'],
    security: [{ gatewayKey: [] }],
    operationId: 'streamEvents',
    summary: "Stream the tenant's webhooks (SSE)",
    description:
      "Every webhook of the tenant as a Server-Sent Event, for receivers without a public URL (`taskhook listen --forward-to …`). `id` is the webhook-id, `event` the event type, `data` a JSON `StreamedWebhook` carrying the exact body and Standard Webhooks headers signed with the tenant's current secrets, so it verifies like a delivered webhook. Without a resume point, only events committed after the stream opened.",
    request: {
      headers: z.object({ 'last-event-id': z.string().optional().meta({ description: resume, example: ex.streamedWebhook.webhook_id }) }),
      query: z.object({
        last_event_id: z.string().optional().meta({ description: resume }),
        since: z.string().optional().meta({ description: resume, example: '2026-11-28T12:00:00Z' }),
      }),
    },
    responses: {
      200: {
        description: 'An endless text/event-stream; `: keepalive` comments while idle.',
        content: { 'text/event-stream': { schema: { type: 'string' }, example: ex.sseFrame } },
      },
      ...errors('MalformedRequest', ...tenantErrors),
    },
  });
  named(r, 'StreamedWebhook', streamedWebhookSchema);
}

export function tenantPaths(r: Registry) {
  const Settings = named(r, 'TenantSettings', tenantViewSchema);
  const op = (o: Described) => r.registerPath({ tags: ['tenant'], security: [{ gatewayKey: [] }], ...o });
  op({
    method: 'get',
    path: '/v1/tenant',
    operationId: 'getTenant',
    summary: "The calling tenant's settings",
    description: 'Never returns a secret.',
    responses: { 200: json('The settings.', Settings, ex.tenantSettings), ...errors('NotFound', ...tenantErrors) },
  });
  op({
    method: 'patch',
    path: '/v1/tenant',
    operationId: 'updateTenant',
    summary: 'Change the upstream connection',
    description:
      'Sets the upstream API key and/or base URL (`null` goes back to the deployment default). A base URL whose host resolves to a non-public address is refused (422) unless TASKHOOK_ALLOW_PRIVATE_UPSTREAMS allows it; nothing is changed then.',
    request: body(named(r, 'UpdateTenant', patchTenantBody), ex.patchTenantExample),
    responses: { 200: json('The settings after the change.', Settings, ex.tenantSettings), ...errors('NotFound', ...bodyErrors, ...tenantErrors) },
  });
  op({
    method: 'post',
    path: '/v1/tenant/signing-secret/rotate',
    operationId: 'rotateSigningSecret',
    summary: 'Rotate the webhook signing secret',
    description: 'A new secret signs from now on; for 24 h webhooks also carry a signature by the previous one, so receivers can switch over.',
    responses: { 200: json('The new secret (shown once).', rotatedSecretSchema, ex.rotatedSecret), ...errors('NotFound', ...tenantErrors) },
  });
}

export function adminPaths(r: Registry) {
  const Summary = named(r, 'TenantSummary', tenantSummarySchema);
  const op = (o: Described) => r.registerPath({ tags: ['admin'], security: [{ adminToken: [] }], ...o });
  op({
    method: 'post',
    path: '/v1/admin/tenants',
    operationId: 'createTenant',
    summary: 'Create a tenant',
    request: body(named(r, 'CreateTenant', createTenantBody), ex.createTenantExample),
    responses: { 201: json('Created; api_key and signing_secret are shown this once.', createdTenantSchema, ex.createdTenant), ...errors(...bodyErrors, 'Unauthorized', 'NotFound', 'RateLimited') },
  });
  op({
    method: 'get',
    path: '/v1/admin/tenants',
    operationId: 'listTenants',
    summary: 'List tenants',
    responses: { 200: json('Every tenant.', tenantListSchema, { data: [ex.tenantSummary] }), ...errors('Unauthorized', 'NotFound', 'RateLimited') },
  });
  op({
    method: 'post',
    path: '/v1/admin/tenants/{id}/disable',
    operationId: 'disableTenant',
    summary: 'Disable a tenant',
    description: 'Its key stops working and its tasks stop being polled. Idempotent.',
    request: { params: tenantParams },
    responses: { 200: json('The tenant.', Summary, ex.disabledTenant), ...errors('Unauthorized', 'NotFound', 'RateLimited') },
  });
}
