// /v1/tenant: the calling tenant's own settings (never its secrets), its upstream
// connection, and signing-secret rotation.
import { Hono } from 'hono';
import { z } from 'zod';
import type { AppDeps, AppEnv } from './app.js';
import { readJsonObject } from './body.js';
import { Invalid, NotFound } from './errors.js';
import { checkUpstreamBaseUrl } from '../upstream/client.js';
import { parseOrThrow } from './validation.js';
import type { TenantStore } from '../tenancy/store.js';

// Sent as `Authorization: Bearer <key>` upstream, so printable ASCII without spaces.
export const upstreamApiKeyField = z
  .string({ message: 'upstream_api_key is required: 1-512 printable ASCII characters' })
  .regex(/^[\x21-\x7e]{1,512}$/, { message: 'upstream_api_key must be 1-512 printable ASCII characters without spaces' });

const BASE_URL_MESSAGE = 'upstream_base_url must be an http(s) URL without credentials, query or fragment, at most 2048 characters';
/** An admin- or tenant-chosen outbound target: http(s) only; trailing slashes dropped (paths are appended). */
export const upstreamBaseUrlField = z
  .string({ message: BASE_URL_MESSAGE })
  .max(2048, { message: BASE_URL_MESSAGE })
  .refine(
    (v) => {
      if (!URL.canParse(v)) return false;
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password && !u.search && !u.hash && !v.includes('#') && !v.includes('?');
    },
    { message: BASE_URL_MESSAGE },
  )
  .transform((v) => new URL(v).href.replace(/\/+$/, ''));

export const patchTenantBody = z
  .object({
    upstream_api_key: upstreamApiKeyField.optional(),
    upstream_base_url: upstreamBaseUrlField.nullable().optional(),
  })
  .strict()
  .refine((b) => b.upstream_api_key !== undefined || b.upstream_base_url !== undefined, {
    message: 'give at least one of upstream_api_key, upstream_base_url',
  });

/** 422 unless the tenant-chosen upstream passes the address policy (checkUpstreamBaseUrl); nothing is written before. */
export async function vetUpstreamBaseUrl(deps: Pick<AppDeps, 'upstreamRules'>, url: string): Promise<void> {
  if (!deps.upstreamRules) return;
  const check = await checkUpstreamBaseUrl(url, deps.upstreamRules);
  if (!check.ok) throw Invalid(check.reason, [{ field: 'upstream_base_url', message: check.reason }]);
}

export function tenantRoutes(deps: AppDeps & { tenantStore: TenantStore }) {
  const app = new Hono<AppEnv>();
  const store = deps.tenantStore;
  // The tenant was found by its key a moment ago; undefined here means it was disabled since.
  const gone = (id: string) => NotFound('tenant', id);

  app.get('/', async (c) => {
    const view = await store.view(c.var.tenant.id);
    if (!view) throw gone(c.var.tenant.id);
    return c.json(view);
  });

  app.patch('/', async (c) => {
    const input = parseOrThrow(patchTenantBody, await readJsonObject(c));
    if (typeof input.upstream_base_url === 'string') await vetUpstreamBaseUrl(deps, input.upstream_base_url);
    const view = await store.update(c.var.tenant.id, { upstreamApiKey: input.upstream_api_key, upstreamBaseUrl: input.upstream_base_url });
    if (!view) throw gone(c.var.tenant.id);
    return c.json(view);
  });

  app.post('/signing-secret/rotate', async (c) => {
    const rotated = await store.rotateSigningSecret(c.var.tenant.id);
    if (!rotated) throw gone(c.var.tenant.id);
    return c.json(rotated);
  });

  return app;
}
