// /v1/tasks: submit through taskhook (POST: the upstream task and its watch in one
// call, src/submit/submitter.ts), and /v1/tasks/{task_id}: the last upstream answer,
// verbatim. The predicted completion rides in headers (Taskhook-Eta-P50 / -P90), never
// in upstream's own body.
import { Hono } from 'hono';
import type { AppEnv, AppDeps } from './app.js';
import { readJsonObject } from './body.js';
import { ApiError, BadRequest, Invalid, NotFound, TooManyRequests } from './errors.js';
import { IDEMPOTENCY_KEY, MAX_SUBMIT_REQUEST_BYTES, TASK_ID, parseOrThrow, submitTaskBody } from './validation.js';
import { checkCallbackUrl } from '../net/address-policy.js';
import { DEFAULT_EVENTS } from '../watches/store.js';

export const IdempotencyKeyRequired = () =>
  new ApiError(400, 'idempotency-key-required', 'Idempotency-Key required', 'POST /v1/tasks needs an Idempotency-Key header (1-255 printable ASCII characters, e.g. a UUID) so that a retry never submits twice');

export function taskRoutes(deps: AppDeps) {
  const app = new Hono<AppEnv>();

  app.post('/', async (c) => {
    const submitter = deps.submitter;
    if (!submitter) throw NotFound('route', 'POST /v1/tasks');
    const key = c.req.header('idempotency-key');
    if (key === undefined) throw IdempotencyKeyRequired();
    if (!IDEMPOTENCY_KEY.test(key)) throw BadRequest('the Idempotency-Key header must be 1-255 printable ASCII characters without spaces');
    const input = parseOrThrow(submitTaskBody, await readJsonObject(c, MAX_SUBMIT_REQUEST_BYTES));
    const check = await checkCallbackUrl(input.callback_url, deps.policy, deps.lookupAll);
    if (!check.ok) throw Invalid(check.reason, [{ field: 'callback_url', message: check.reason }]);
    const max = c.var.tenant.limits.maxActiveWatches;
    if (max !== null && (await deps.watches.countActive(c.var.tenant.id)) >= max) {
      throw TooManyRequests(`this tenant may have at most ${max} active watches; cancel some or wait for them to finish`);
    }
    const answer = await submitter.submit({
      tenant: c.var.tenant,
      idempotencyKey: key,
      path: input.submit.path,
      body: input.submit.body,
      watch: {
        callback_url: check.url.href,
        metadata: input.metadata ?? {},
        events: input.events ? [...new Set(input.events)] : DEFAULT_EVENTS,
      },
    });
    if (answer.status === 201) deps.onEnqueued?.();
    return c.body(answer.body, answer.status, answer.headers);
  });

  app.get('/:task_id', async (c) => {
    const taskId = c.req.param('task_id');
    const snapshot = TASK_ID.test(taskId) ? await deps.watches.taskSnapshot(c.var.tenant.id, taskId) : undefined;
    if (snapshot === undefined) throw NotFound('snapshot for task', taskId);
    const eta = deps.durations?.eta(c.var.tenant.id, parseObject(snapshot)) ?? null;
    return c.body(snapshot, 200, {
      'content-type': 'application/json',
      ...(eta ? { 'taskhook-eta-p50': eta.p50, 'taskhook-eta-p90': eta.p90 } : {}),
    });
  });
  return app;
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
