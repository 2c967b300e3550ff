// HTTP face of the simulated upstream (CONTRACT §1) for tests, the demo and
// the benchmark: serves SimTaskStore over real loopback HTTP, counts polls so
// tests can assert on request volume, and applies injected faults (overrides)
// before auth so a poller can be shown any answer a real upstream might give.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import type { Context } from 'hono';
import { z } from 'zod';
import { SimTaskStore } from './tasks.js';
import type { Override, SimTaskStoreOptions, TaskScript, TaskView } from './tasks.js';
import { SimAdmin, faultResponse } from './admin.js';
import { SimGeneration, type SubmitFault, type SubmitRecord } from './generation.js';

export interface SimUpstreamOptions {
  /** 0 (default) picks a free port */
  port?: number;
  host?: string;
  /** bearer keys accepted; default ['sk_test'] */
  apiKeys?: string[];
  /** clock in ms; default Date.now */
  now?: () => number;
  /** serve /_sim (fault windows, poll log: src/sim/admin.ts); default off */
  admin?: boolean;
  /** timestamps, progress and per-kind durations of the task store (src/sim/tasks.ts) */
  tasks?: SimTaskStoreOptions;
}

export interface SimUpstream {
  /** base URL without trailing slash, e.g. http://127.0.0.1:41234 */
  url: string;
  store: SimTaskStore;
  createTask(script?: TaskScript): TaskView;
  /** GET /api/v2/tasks/:id requests received (for one task, or in total), whatever their answer */
  requests(task_id?: string): number;
  resetCounts(): void;
  /** generation requests (POST /api/v2/voice/clone, …) received, whatever their answer */
  submits(path?: string): number;
  /** each generation request as it arrived: path, headers, body, the task made */
  submitLog: SubmitRecord[];
  /** the knob: the next generation requests answer 4xx/5xx/timeout/garbage/no task_id (src/sim/generation.ts) */
  setSubmitFault(f: SubmitFault | undefined): void;
  close(): Promise<void>;
}

const errorSchema = z.object({ code: z.string(), message: z.string(), type: z.string() });
// Strict so a typo in a demo/bench script fails loudly instead of silently using a default.
const scriptSchema = z.strictObject({
  task_id: z.string().min(1).max(256).optional(),
  capability: z.enum(['voice', 'image', 'video']).optional(),
  action: z.string().optional(),
  model: z.string().optional(),
  outcome: z.enum(['completed', 'failed', 'cancelled']).optional(),
  processingAfterMs: z.number().nonnegative().optional(),
  durationMs: z.number().nonnegative().optional(),
  extra: z.record(z.string(), z.unknown()).optional(),
  error: errorSchema.optional(),
  metadata: z.unknown().optional(),
});

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

const apiError = (code: string, message: string, type: string) => ({ error: { code, message, type } });

// Statuses whose responses must not carry a body per the Fetch spec.
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

function overrideResponse(o: Override): Response {
  const headers = new Headers();
  // Malformed-JSON overrides keep a JSON content type, as a broken upstream would.
  if (o.body !== undefined) headers.set('content-type', 'application/json');
  for (const [k, v] of Object.entries(o.headers ?? {})) headers.set(k, v);
  const body =
    o.body === undefined || NULL_BODY_STATUSES.has(o.status)
      ? null
      : typeof o.body === 'string' || o.body instanceof Uint8Array
        ? (o.body as string | Uint8Array<ArrayBuffer>)
        : JSON.stringify(o.body);
  return new Response(body, { status: o.status, headers });
}

function bearerKey(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

export async function startSimUpstream(opts: SimUpstreamOptions = {}): Promise<SimUpstream> {
  const host = opts.host ?? '127.0.0.1';
  const keys = new Set(opts.apiKeys ?? ['sk_test']);
  const now = opts.now ?? Date.now;
  const store = new SimTaskStore(opts.tasks);
  const perTask = new Map<string, number>();
  let total = 0;
  // Release callbacks of requests held open by `hang` overrides, so close() never waits on them.
  const hanging = new Set<() => void>();

  const authorized = (c: Context): boolean => {
    const key = bearerKey(c.req.header('authorization'));
    return key !== undefined && keys.has(key);
  };
  const unauthorized = (c: Context) =>
    c.json(apiError('unauthorized', 'Invalid or missing API key', 'auth'), 401);

  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  const admin = opts.admin ? new SimAdmin(now) : undefined;
  const generation = new SimGeneration({ store, now, authorized, hang: (c) => hang(c) });
  if (admin) {
    const routes = admin.routes();
    generation.adminRoutes(routes);
    app.route('/_sim', routes);
  }

  /** Holds the request open until the client gives up or the server closes. */
  const hang = async (c: Context) => {
    await new Promise<void>((resolve) => {
      const release = () => {
        hanging.delete(release);
        resolve();
      };
      hanging.add(release);
      c.req.raw.signal.addEventListener('abort', release, { once: true });
    });
    // Only reached once the client is gone or the server is closing; nobody reads it.
    return c.body(null, 503);
  };

  app.get('/api/v2/tasks/:task_id', async (c) => {
    const id = c.req.param('task_id');
    total += 1;
    perTask.set(id, (perTask.get(id) ?? 0) + 1);
    const at = now();
    const key = bearerKey(c.req.header('authorization'));

    const fault = admin?.faultFor(key);
    if (fault) {
      admin!.record(at, id, key, fault.mode === 'hang' ? 0 : fault.mode === 'garbage' ? 200 : Number(fault.mode));
      return fault.mode === 'hang' ? hang(c) : faultResponse(fault);
    }
    const o = store.takeOverride(id);
    if (o?.hang) return hang(c);
    if (o) return overrideResponse(o);

    if (!authorized(c)) {
      admin?.record(at, id, key, 401);
      return unauthorized(c);
    }
    const task = store.get(id, at);
    if (!task) {
      admin?.record(at, id, key, 404);
      return c.json(apiError('task_not_found', `Task ${id} not found`, 'invalid_request'), 404);
    }
    if (!admin) return c.json(task, 200);
    // The exact bytes c.json would send, so the log can vouch for what each poll was told.
    const body = JSON.stringify(task);
    admin.record(at, id, key, 200, body, TERMINAL.has(task.status));
    return c.body(body, 200, { 'content-type': 'application/json' });
  });

  generation.mount(app);

  app.post('/api/v2/tasks', async (c) => {
    if (!authorized(c)) return unauthorized(c);
    let raw: unknown;
    try {
      const text = await c.req.text();
      raw = text.trim() === '' ? {} : JSON.parse(text);
    } catch {
      return c.json(apiError('invalid_json', 'Request body is not valid JSON', 'invalid_request'), 400);
    }
    const parsed = scriptSchema.safeParse(raw);
    if (!parsed.success) {
      return c.json(apiError('invalid_request', z.prettifyError(parsed.error), 'invalid_request'), 400);
    }
    return c.json(store.create(parsed.data, now()), 201);
  });

  // The default createServer is node:http, so the union type narrows to http.Server.
  const server = serve({ fetch: app.fetch, port: opts.port ?? 0, hostname: host }) as Server;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  // A wildcard bind is reachable on loopback; an IPv6 literal needs brackets in a URL.
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    store,
    createTask: (script = {}) => store.create(script, now()),
    requests: (task_id) => (task_id === undefined ? total : (perTask.get(task_id) ?? 0)),
    resetCounts: () => {
      total = 0;
      perTask.clear();
      generation.log.length = 0;
    },
    submits: (path) => generation.count(path),
    submitLog: generation.log,
    setSubmitFault: (f) => generation.setFault(f),
    close: () => {
      closing ??= new Promise<void>((resolve, reject) => {
        for (const release of [...hanging]) release();
        server.close((err) => (err ? reject(err) : resolve()));
        // Keep-alive sockets (e.g. undici's pool) would otherwise hold close() open.
        server.closeAllConnections?.();
      });
      return closing;
    },
  };
}
