// /v1/watches: register, read, list, cancel, attempts, redeliver.
import { Hono, type Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { AppEnv, AppDeps } from './app.js';
import { readJsonBody } from './body.js';
import { scanJsonText } from './json-scan.js';
import { Conflict, Invalid, NotFound, TooManyRequests } from './errors.js';
import { listWatchesQuery, metadataProblem, parseOrThrow, registerWatchBody } from './validation.js';
import { checkCallbackUrl } from '../net/address-policy.js';
import { DEFAULT_EVENTS } from '../watches/store.js';
import { stringifyWithRaw } from './raw-json.js';

/** c.json, with stored upstream answers spliced in as their text (src/api/raw-json.ts). */
function jsonResponse(c: Context, value: unknown, status: ContentfulStatusCode = 200): Response {
  return c.body(stringifyWithRaw(value), status, { 'content-type': 'application/json' });
}

const WATCH_ID = /^wat_[0-9a-z]{26}$/;

export function watchRoutes(deps: AppDeps) {
  const app = new Hono<AppEnv>();
  const { watches } = deps;

  const watchId = (id: string) => {
    if (!WATCH_ID.test(id)) throw NotFound('watch', id);
    return id;
  };

  app.post('/', async (c) => {
    const body = await readJsonBody(c);
    const input = parseOrThrow(registerWatchBody, body.value);
    // What JSON.parse would silently change (duplicate keys, 1e999, rounded numbers) is
    // refused: metadata is echoed in every webhook and must come back as it was sent.
    const raw = body.value.metadata;
    const rawProblem = input.metadata === undefined ? undefined : metadataProblem(raw);
    if (rawProblem) throw Invalid(rawProblem, [{ field: 'metadata', message: rawProblem }]);
    const lossy = scanJsonText(body.text);
    if (lossy.length > 0) {
      const errors = lossy.map((i) => ({ field: String(i.path[0] ?? '(body)'), message: `${i.path.join('.')}: ${i.message}` }));
      throw Invalid(errors.map((e) => e.message).join('; '), errors);
    }
    const check = await checkCallbackUrl(input.callback_url, deps.policy, deps.lookupAll);
    if (!check.ok) throw Invalid(check.reason, [{ field: 'callback_url', message: check.reason }]);
    const events = input.events ? [...new Set(input.events)] : DEFAULT_EVENTS;
    const max = c.var.tenant.limits.maxActiveWatches;
    if (max !== null && (await watches.countActive(c.var.tenant.id)) >= max) {
      throw TooManyRequests(`this tenant may have at most ${max} active watches; cancel some or wait for them to finish`);
    }
    const { created, watch } = await watches.register(c.var.tenant.id, {
      task_id: input.task_id,
      callback_url: check.url.href,
      // the parsed body's own object, not zod's copy: zod drops a "__proto__" key
      metadata: (input.metadata === undefined ? {} : raw) as Record<string, unknown>,
      events,
    });
    return jsonResponse(c, watch, created ? 201 : 200);
  });

  app.get('/', async (c) => {
    const q = parseOrThrow(listWatchesQuery, c.req.query());
    return jsonResponse(c, await watches.list(c.var.tenant.id, q));
  });

  app.get('/:id', async (c) => {
    const watch = await watches.get(c.var.tenant.id, watchId(c.req.param('id')));
    if (!watch) throw NotFound('watch', c.req.param('id'));
    return jsonResponse(c, watch);
  });

  app.delete('/:id', async (c) => {
    const watch = await watches.cancel(c.var.tenant.id, watchId(c.req.param('id')));
    if (!watch) throw NotFound('watch', c.req.param('id'));
    return jsonResponse(c, watch);
  });

  app.get('/:id/deliveries', async (c) => {
    const attempts = await watches.attempts(c.var.tenant.id, watchId(c.req.param('id')));
    if (!attempts) throw NotFound('watch', c.req.param('id'));
    return c.json({ data: attempts });
  });

  app.post('/:id/redeliver', async (c) => {
    const result = await watches.redeliver(c.var.tenant.id, watchId(c.req.param('id')));
    if (result === 'not_found') throw NotFound('watch', c.req.param('id'));
    if (result === 'not_ready') throw Conflict('the watch has no terminal event to redeliver yet (or was cancelled)');
    deps.onEnqueued?.();
    return jsonResponse(c, result, 202);
  });

  return app;
}
