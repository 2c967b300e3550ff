// GET /openapi.json (the document) and GET /docs (Swagger UI rendering it, ./viewer.ts), both public.
import { Hono } from 'hono';
import { buildOpenApiDocument } from './document.js';
import { viewerRoutes } from './viewer.js';

export { buildOpenApiDocument };

export function docsRoutes() {
  const app = new Hono();
  let json: string | undefined; // built on first request: start-up doesn't pay for it
  app.get('/openapi.json', (c) => {
    json ??= JSON.stringify(buildOpenApiDocument());
    return c.body(json, 200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' });
  });
  app.route('/', viewerRoutes());
  return app;
}
