// GET /docs: Swagger UI rendering ./openapi.json, every byte of it served by the gateway
// itself from the npm package swagger-ui-dist (pinned to one version in package.json),
// so the page works behind a firewall with no internet access. No outside host is named
// in the HTML, and the CSP would refuse one anyway.
//
// Why Swagger UI and not Scalar (which /docs used to load from a CDN): Scalar's browser
// bundle ships only inside @scalar/api-reference, whose install is ~240 MB over ~300
// packages (Vue and its whole app), and whose current versions need Node 22;
// swagger-ui-dist is the prebuilt viewer alone (13 MB, no dependency but Scarf's install
// telemetry, whose install script npm is told not to run: `allowScripts` in package.json).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Hono } from 'hono';

const ASSETS = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
} as const;
type AssetName = keyof typeof ASSETS | 'init.js';

// The page's one script of our own, as a file (the CSP allows no inline script).
// validatorUrl: null, or Swagger UI would send the document to validator.swagger.io.
const INIT_JS = `window.ui = SwaggerUIBundle({
  url: 'openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
  defaultModelsExpandDepth: 0,
});
`;

/** Relative URLs: the page keeps working behind a reverse proxy that adds a path prefix. */
export const DOCS_HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>taskhook API</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="docs/assets/swagger-ui.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="docs/assets/swagger-ui-bundle.js"></script>
    <script src="docs/assets/init.js"></script>
  </body>
</html>
`;

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // Swagger UI sets style attributes from script
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
}

/** Read (and gzip) once, on the first request for the docs: start-up doesn't pay for it. */
function loadAssets(): Map<AssetName, Asset> {
  const dir = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const files: Array<[AssetName, string, Buffer]> = [
    ...Object.entries(ASSETS).map(([name, type]) => [name as AssetName, type, readFileSync(path.join(dir, name))] as [AssetName, string, Buffer]),
    ['init.js', 'text/javascript; charset=utf-8', Buffer.from(INIT_JS)],
  ];
  return new Map(files.map(([name, type, body]) => [name, { type, body, gzip: gzipSync(body) }]));
}

export function viewerRoutes() {
  const app = new Hono();
  let assets: Map<AssetName, Asset> | undefined;
  app.get('/docs', (c) => c.html(DOCS_HTML, 200, { 'content-security-policy': CSP, 'x-content-type-options': 'nosniff' }));
  app.get('/docs/assets/:name', (c) => {
    assets ??= loadAssets();
    const asset = assets.get(c.req.param('name') as AssetName);
    if (!asset) return c.notFound();
    const gzip = /\bgzip\b/.test(c.req.header('accept-encoding') ?? '');
    const headers: Record<string, string> = {
      'content-type': asset.type,
      'cache-control': 'public, max-age=3600',
      'x-content-type-options': 'nosniff',
      vary: 'accept-encoding',
    };
    if (gzip) headers['content-encoding'] = 'gzip';
    return c.body(new Uint8Array(gzip ? asset.gzip : asset.body), 200, headers);
  });
  return app;
}
