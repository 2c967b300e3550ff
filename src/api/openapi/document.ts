// The OpenAPI 3.1 document: components, the public operations, the webhooks, and the
// /v1 operations of ./paths.ts. Request bodies and queries are the zod schemas the
// routes validate with, so the document can't drift from what the API accepts;
// responses are ./schemas.ts. The routes stay plain Hono: this only registers
// descriptions with @hono/zod-openapi's registry and runs its 3.1 generator.
import { OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { VERSION } from '../../version.js';
import * as ex from './examples.js';
import { healthSchema, problemSchema, readinessSchema, webhookEventSchemas } from './schemas.js';
import { adminPaths, endpointPaths, ERRORS, errors, json, named, taskAndEventPaths, tenantPaths, watchPaths, type ErrorName, type Registry } from './paths.js';

function registerComponents(r: Registry) {
  r.registerComponent('securitySchemes', 'gatewayKey', {
    type: 'http',
    scheme: 'bearer',
    description: "The tenant's gateway key (TASKHOOK_API_KEY for the default tenant, or the api_key the admin API returned).",
  });
  r.registerComponent('securitySchemes', 'adminToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'TASKHOOK_ADMIN_TOKEN. Without it set, /v1/admin answers 404.',
  });
  r.registerComponent('securitySchemes', 'metricsToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'TASKHOOK_METRICS_TOKEN, when set; otherwise /metrics is open.',
  });
  named(r, 'Problem', problemSchema);
  for (const [name, [status, description]] of Object.entries(ERRORS)) {
    const headers: Record<string, { description: string; schema: { type: 'string' } }> = {};
    if (status === 401) headers['WWW-Authenticate'] = { description: '`Bearer`', schema: { type: 'string' } };
    if (status === 429) headers['Retry-After'] = { description: 'seconds to wait, when a rate limit applies', schema: { type: 'string' } };
    r.registerComponent('responses', name, {
      description,
      ...(Object.keys(headers).length ? { headers } : {}),
      content: {
        'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' }, example: ex.problems[name as ErrorName] },
      },
    });
  }
}

function opsPaths(r: Registry) {
  const op = (o: Omit<Parameters<Registry['registerPath']>[0], 'tags' | 'security'>) => r.registerPath({ tags: ['operations'], security: [], ...o });
  op({
    method: 'get',
    path: '/healthz',
    operationId: 'health',
    summary: 'Liveness',
    responses: { 200: json('The process is up.', healthSchema, { status: 'ok' }) },
  });
  op({
    method: 'get',
    path: '/readyz',
    operationId: 'ready',
    summary: 'Readiness',
    description: 'Ready when the database is reachable, migrations are applied and the workers are healthy.',
    responses: {
      200: json('Ready.', readinessSchema, { status: 'ready' }),
      503: json('Not ready, and why.', readinessSchema, { status: 'not ready', reason: '1 migration(s) pending' }),
    },
  });
  r.registerPath({
    method: 'get',
    path: '/metrics',
    tags: ['operations'],
    security: [{}, { metricsToken: [] }],
    operationId: 'metrics',
    summary: 'Prometheus metrics',
    description: 'Served by every role (api, worker, all). Open unless TASKHOOK_METRICS_TOKEN is set.',
    responses: {
      200: { description: 'Prometheus text exposition format.', content: { 'text/plain': { schema: { type: 'string' }, example: ex.metricsExample } } },
      ...errors('Unauthorized'),
    },
  });
  op({
    method: 'get',
    path: '/openapi.json',
    operationId: 'openapi',
    summary: 'This document',
    responses: {
      200: { description: 'The OpenAPI 3.1 document.', content: { 'application/json': { schema: { type: 'object' }, example: { openapi: '3.1.0', info: { title: 'taskhook', version: VERSION } } } } },
    },
  });
  op({
    method: 'get',
    path: '/docs',
    operationId: 'docs',
    summary: 'This document, rendered',
    responses: { 200: { description: 'An HTML page rendering /openapi.json (Swagger UI, served by the gateway itself: works offline).', content: { 'text/html': { schema: { type: 'string' }, example: '<!doctype html>…' } } } },
  });
  op({
    method: 'get',
    path: '/docs/assets/{name}',
    operationId: 'docsAsset',
    summary: "The /docs page's script and stylesheet",
    request: { params: z.object({ name: z.enum(['swagger-ui-bundle.js', 'swagger-ui.css', 'init.js']).meta({ description: 'the file', example: 'swagger-ui.css' }) }) },
    responses: {
      200: { description: 'The file (gzip when accepted), from the pinned swagger-ui-dist package.', content: { 'text/css': { schema: { type: 'string' }, example: '.swagger-ui{…}' } } },
      404: { description: 'No such file.', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' }, example: ex.problems.NotFound } } },
    },
  });
}

const WEBHOOK_DESCRIPTIONS: Record<keyof typeof webhookEventSchemas, string> = {
  'task.completed': 'The task completed; `data` is the upstream task object with its result fields.',
  'task.failed': "The task failed; `data.error` is upstream's `{code, message, type}`.",
  'task.cancelled': 'The task was cancelled upstream.',
  'task.processing': 'Opt-in (`events`): sent once, when upstream first reports `processing`.',
  'watch.failed': 'taskhook gave up on the watch: the task is unknown upstream, the upstream key is refused, or the watch outlived TASKHOOK_MAX_WATCH_AGE_S.',
};

function webhooks(r: Registry) {
  const headers = z.object({
    'webhook-id': z.string().meta({ description: 'msg_…: the same on every retry and redelivery of one event; deduplicate on it', example: ex.webhookHeadersExample['webhook-id'] }),
    'webhook-timestamp': z.string().meta({ description: 'Unix seconds of this attempt', example: ex.webhookHeadersExample['webhook-timestamp'] }),
    'webhook-signature': z.string().meta({
      description:
        'Space-separated `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}" keyed by the secret bytes after whsec_>`; two during a secret rotation. Verify with `verifyWebhook` from taskhook/verify or any Standard Webhooks library.',
      example: ex.webhookHeadersExample['webhook-signature'],
    }),
    'user-agent': z.string().meta({ description: 'taskhook/<version>', example: `taskhook/${VERSION}` }),
  });
  for (const [type, schema] of Object.entries(webhookEventSchemas) as Array<[keyof typeof webhookEventSchemas, z.ZodType]>) {
    const name = type.replace(/(^|\.)(\w)/g, (_, _dot: string, c: string) => c.toUpperCase());
    r.registerWebhook({
      method: 'post',
      path: type,
      operationId: `webhook${name}`,
      summary: type,
      description: `${WEBHOOK_DESCRIPTIONS[type]} Standard Webhooks headers; any 2xx within the timeout acknowledges.`,
      tags: ['webhooks'],
      request: {
        headers,
        body: { required: true, content: { 'application/json': { schema: named(r, `${name}Event`, schema), example: ex.webhookExamples[type] } } },
      },
      responses: {
        '2XX': { description: 'Acknowledged: no more attempts.' },
        410: { description: 'Gone: stops all retries; the watch becomes undeliverable.' },
        429: { description: 'Retried after `Retry-After` (capped at 1 h).' },
        503: { description: 'Retried after `Retry-After` (capped at 1 h).' },
        default: { description: 'Anything else (or no answer in time) is retried on TASKHOOK_RETRY_SCHEDULE, then the watch becomes undeliverable.' },
      },
    });
  }
}

/** The document, generated on each call (cheap, but callers cache it). */
export function buildOpenApiDocument() {
  // An OpenAPIHono only for its registry and 3.1 generator; it serves nothing.
  const doc = new OpenAPIHono();
  const r = doc.openAPIRegistry;
  registerComponents(r);
  watchPaths(r);
  taskAndEventPaths(r);
  endpointPaths(r);
  tenantPaths(r);
  adminPaths(r);
  opsPaths(r);
  webhooks(r);
  return doc.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: 'taskhook',
      version: VERSION,
      description:
        'Turns an async task API (submit, then poll `GET /api/v2/tasks/{task_id}`) into push: register a task_id and a callback URL; taskhook polls upstream and POSTs a signed webhook when the task ends.\n\nErrors are `application/problem+json` (RFC 9457). Webhooks follow Standard Webhooks (see `webhooks`).',
    },
    tags: [
      { name: 'watches', description: 'Register tasks to watch; read, cancel, redeliver.' },
      { name: 'tasks', description: 'Last-known upstream snapshots.' },
      { name: 'events', description: 'Webhooks as a Server-Sent Events stream.' },
      { name: 'endpoints', description: "Health of the tenant's callback URLs (circuits, last errors, what waits)." },
      { name: 'tenant', description: "The calling tenant's own settings." },
      { name: 'admin', description: 'Operator API behind TASKHOOK_ADMIN_TOKEN.' },
      { name: 'operations', description: 'Health checks and this document.' },
      { name: 'webhooks', description: 'What taskhook POSTs to callback URLs.' },
    ],
  });
}
