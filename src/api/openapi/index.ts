// GET /openapi.json (the document) and GET /docs (Scalar rendering it), both public.
import { Hono } from 'hono';
import { Scalar } from '@scalar/hono-api-reference';
import { buildOpenApiDocument } from './document.js';

export { buildOpenApiDocument };

export function docsRoutes() {
  const app = new Hono();
  let json: string | undefined; // built on first request: start-up doesn't pay for it
  app.get('/openapi.json', (c) => {
    json ??= JSON.stringify(buildOpenApiDocument());
    return c.body(json, 200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' });
  });
  // Relative, so the page keeps working behind a reverse proxy that adds a path prefix.
  app.get('/docs', Scalar({ url: './openapi.json', pageTitle: 'taskhook API' }));
  return app;
}
