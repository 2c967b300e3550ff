// /v1/endpoints: the health of the calling tenant's callback URLs (src/delivery/health.ts).
import { Hono } from 'hono';
import type { AppDeps, AppEnv } from './app.js';
import { listEndpoints } from '../delivery/sql.js';
import { publicState } from '../delivery/health.js';
import type { Endpoint } from './openapi/schemas.js';

export function endpointRoutes(deps: AppDeps) {
  const app = new Hono<AppEnv>();
  app.get('/', async (c) => {
    const rows = await listEndpoints(deps.sql, c.var.tenant.id);
    const now = Date.now();
    const data = rows.map((r): Endpoint => {
      const state = publicState(r.state, r.open_until, now);
      return {
        url: r.url,
        state,
        circuit_open_until: state === 'circuit_open' ? r.open_until!.toISOString() : null,
        last_error: r.last_error,
        last_error_at: r.last_error_at?.toISOString() ?? null,
        pending: r.pending,
        next_attempt_at: r.pending > 0 && r.next_attempt_at ? r.next_attempt_at.toISOString() : null,
        updated_at: r.updated_at.toISOString(),
      };
    });
    return c.json({ data });
  });
  return app;
}
