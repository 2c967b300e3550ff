// Builds the Hono app from its dependencies: auth, routes, problem+json errors.
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import type { Sql } from '../db/client.js';
import { pendingMigrations } from '../db/migrate.js';
import type { Logger } from '../log.js';
import type { AddressPolicy, LookupAll } from '../net/address-policy.js';
import type { UpstreamAddressRules } from '../upstream/client.js';
import type { Tenant, TenantDirectory } from '../tenancy/directory.js';
import type { TenantStore } from '../tenancy/store.js';
import type { SecretBox } from '../tenancy/secret-box.js';
import type { WatchStore } from '../watches/store.js';
import type { Submitter } from '../submit/submitter.js';
import { ApiError, NotFound, TooManyRequests, Unauthorized, onError, problem } from './errors.js';
import { TokenBuckets } from '../engine/token-bucket.js';
import type { Registry } from 'prom-client';
import { constantTimeEqual } from '../tenancy/keys.js';
import { taskRoutes } from './tasks.js';
import { adminRoutes } from './admin.js';
import { tenantRoutes } from './tenant.js';
import { watchRoutes } from './watches.js';
import { docsRoutes } from './openapi/index.js';
import { dashboardRoutes } from '../dashboard/routes.js';
import { endpointRoutes } from './endpoints.js';
import { eventRoutes, type EventStreamOptions } from './events.js';
import { throttledAuth, type AuthThrottle } from './auth-throttle.js';


import type { DurationCache } from '../durations/cache.js';

export interface AppDeps {
  sql: Sql;
  log: Logger;
  tenants: TenantDirectory;
  watches: WatchStore;
  /** POST /v1/tasks (submit through taskhook); unset → 404 */
  submitter?: Submitter;
  policy: AddressPolicy;
  /** tenants' upstream_base_url policy (TASKHOOK_ALLOW_PRIVATE_UPSTREAMS); unset → any http(s) URL */
  upstreamRules?: UpstreamAddressRules;
  lookupAll?: LookupAll;
  onEnqueued?: () => void;
  /** extra readiness checks, e.g. the engines' database health */
  ready?: () => boolean;
  /** false on worker-only processes: they serve health checks but no API */
  serveApi?: boolean;
  /** tenant management for /v1/tenant and /v1/admin */
  tenantStore?: TenantStore;
  /** seals dashboard sessions (the gateway's SecretBox: every process of a deployment accepts them) */
  sessionBox?: SecretBox;
  /** TASKHOOK_ADMIN_TOKEN; unset → /v1/admin answers 404 */
  adminToken?: string;
  /** served at GET /metrics on every role (src/metrics.ts) */
  metrics?: Registry;
  /** TASKHOOK_METRICS_TOKEN; unset → /metrics is open (a private scrape network) */
  metricsToken?: string;
  /** failed-authentication throttling per client address (TASKHOOK_AUTH_THROTTLE); unset → off */
  authThrottle?: AuthThrottle;
  /** GET /v1/events tuning (tests shorten the slow-reader timeout) */
  eventStream?: EventStreamOptions;
  /** learned task durations: the ETA of GET /v1/tasks/{task_id} */
  durations?: Pick<DurationCache, 'eta'>;
}

export type AppEnv = { Variables: { tenant: Tenant; requestId: string } };

/** How long /readyz waits for the database before answering 503. */
const READY_CHECK_MS = 1_500;

function withinMs<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export function createApp(deps: AppDeps) {
  const app = new Hono<AppEnv>();
  app.onError(onError(deps.log));
  app.notFound((c) => problem(c, NotFound('route', `${c.req.method} ${c.req.path}`)));
  app.use(requestId());
  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    deps.log.info(
      { req_id: c.var.requestId, method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - started) },
      'request',
    );
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    try {
      // A probe must answer promptly: with the database down, the pool's queries queue
      // behind the engines' own retries, so a check that is not answered in time is a no.
      const pending = await withinMs(pendingMigrations(deps.sql), READY_CHECK_MS, 'the database did not answer in time');
      if (pending > 0) return c.json({ status: 'not ready', reason: `${pending} migration(s) pending` }, 503);
      if (deps.ready && !deps.ready()) return c.json({ status: 'not ready', reason: 'workers cannot reach the database' }, 503);
      return c.json({ status: 'ready' });
    } catch (err) {
      return c.json({ status: 'not ready', reason: `database unreachable: ${(err as Error).message}` }, 503);
    }
  });
  const registry = deps.metrics;
  if (registry) {
    app.get('/metrics', async (c) => {
      const token = deps.metricsToken;
      if (token !== undefined) {
        const header = c.req.header('authorization') ?? '';
        const m = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header);
        const ok = await throttledAuth(deps.authThrottle, c, header, () => (m && constantTimeEqual(m[1]!, token) ? true : undefined));
        if (!ok) throw Unauthorized('this endpoint requires Authorization: Bearer <TASKHOOK_METRICS_TOKEN>');
      }
      return c.body(await registry.metrics(), 200, { 'content-type': registry.contentType });
    });
  }

  if (deps.serveApi === false) return app;
  app.route('/', docsRoutes());
  const v1 = new Hono<AppEnv>();
  const apiBuckets = new TokenBuckets();
  v1.use(async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header);
    const tenant = await throttledAuth(deps.authThrottle, c, header, () => (m ? deps.tenants.byApiKeyNow(m[1]!) : undefined));
    if (!tenant) throw Unauthorized();
    c.set('tenant', tenant);
    const rate = tenant.limits.apiRatePerS;
    if (rate !== null) {
      const waitMs = apiBuckets.take(tenant.id, rate, Math.max(1, rate * 2), Date.now());
      if (waitMs > 0) throw TooManyRequests(`this tenant may make ${rate} API requests per second`, waitMs);
    }
    await next();
  });
  v1.route('/watches', watchRoutes(deps));
  v1.route('/tasks', taskRoutes(deps));
  v1.route('/events', eventRoutes(deps, deps.eventStream));
  v1.route('/endpoints', endpointRoutes(deps));
  if (deps.tenantStore) v1.route('/tenant', tenantRoutes({ ...deps, tenantStore: deps.tenantStore }));
  // Before /v1: admin requests must never reach the tenant-key middleware.
  app.route('/v1/admin', adminRoutes(deps));
  app.route('/v1', v1);
  app.route('/dashboard', dashboardRoutes(deps));
  return app;
}

export { ApiError };
