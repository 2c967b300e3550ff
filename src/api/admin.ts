// /v1/admin: operator routes behind TASKHOOK_ADMIN_TOKEN. Without the token the
// whole prefix answers 404, as if it didn't exist.
import { Hono } from 'hono';
import { z } from 'zod';
import type { AppDeps, AppEnv } from './app.js';
import { throttledAuth } from './auth-throttle.js';
import { readJsonObject } from './body.js';
import { NotFound, Unauthorized } from './errors.js';
import { parseOrThrow } from './validation.js';
import { upstreamApiKeyField, upstreamBaseUrlField, vetUpstreamBaseUrl } from './tenant.js';
import { constantTimeEqual } from '../tenancy/keys.js';

const TENANT_ID = /^ten_[0-9a-z_]{1,64}$/;

export const createTenantBody = z
  .object({
    name: z
      .string({ message: 'name is required: 1-100 characters' })
      .trim()
      .min(1, { message: 'name must be 1-100 characters' })
      .max(100, { message: 'name must be 1-100 characters' })
      .regex(/^[^\u0000-\u001f\u007f]*$/, { message: 'name must not contain control characters' }),
    upstream_api_key: upstreamApiKeyField,
    upstream_base_url: upstreamBaseUrlField.optional(),
    limits: z
      .object({
        api_rate_per_s: z.number().positive().max(1_000_000).nullable().optional(),
        max_active_watches: z.number().int().positive().max(100_000_000).nullable().optional(),
        max_polls_per_s: z.number().positive().max(1_000_000).nullable().optional(),
      }, { message: 'limits must be an object' })
      .strict()
      .optional(),
  })
  .strict();

export function adminRoutes(deps: AppDeps) {
  const app = new Hono<AppEnv>();
  const { tenantStore: store, adminToken: token } = deps;

  app.use(async (c, next) => {
    if (!token || !store) throw NotFound('route', `${c.req.method} ${c.req.path}`);
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer (.+)$/i.exec(header);
    const ok = await throttledAuth(deps.authThrottle, c, header, () => (m && constantTimeEqual(m[1]!, token) ? true : undefined));
    if (!ok) throw Unauthorized('a valid admin token is required: Authorization: Bearer <TASKHOOK_ADMIN_TOKEN>');
    await next();
  });
  if (!token || !store) return app;

  app.post('/tenants', async (c) => {
    const input = parseOrThrow(createTenantBody, await readJsonObject(c));
    if (input.upstream_base_url !== undefined) await vetUpstreamBaseUrl(deps, input.upstream_base_url);
    const l = input.limits ?? {};
    const limits = Object.fromEntries(
      Object.entries({ apiRatePerS: l.api_rate_per_s, maxActiveWatches: l.max_active_watches, maxPollsPerS: l.max_polls_per_s }).filter(([, v]) => v !== undefined),
    );
    const created = await store.create({ name: input.name, upstreamApiKey: input.upstream_api_key, upstreamBaseUrl: input.upstream_base_url, limits });
    return c.json(created, 201);
  });

  app.get('/tenants', async (c) => c.json({ data: await store.list() }));

  app.post('/tenants/:id/disable', async (c) => {
    const id = c.req.param('id');
    const tenant = TENANT_ID.test(id) ? await store.disable(id) : undefined;
    if (!tenant) throw NotFound('tenant', id);
    return c.json(tenant);
  });

  // Anything else under /v1/admin is a 404 here, not a fall-through to the tenant-key API.
  app.all('*', (c) => {
    throw NotFound('route', `${c.req.method} ${c.req.path}`);
  });
  return app;
}
