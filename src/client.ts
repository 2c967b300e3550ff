// taskhook/client: a small typed client for the gateway's HTTP API, with no dependency
// (globalThis.fetch). Its types are ./api-types.ts, generated from the zod schemas the
// gateway validates requests and documents answers with (a new route: add its schemas
// to API_TYPES in api/openapi/client-types.ts, `npm run types:api`, then a method here).
// This file imports nothing else from the server: it is what the `taskhook` package
// (client/) compiles and ships. Any non-2xx answer is thrown as a TaskhookError
// carrying the problem+json body.
import type {
  DeliveryAttempt,
  ListWatches,
  Problem,
  RegisterWatch,
  RotatedSecret,
  SubmitTask,
  SubmittedTask,
  TaskSnapshot,
  TenantSettings,
  UpdateTenant,
  Watch,
  WatchPage,
} from './api-types.js';

export type * from './api-types.js';

export interface ClientOptions {
  /** the gateway, e.g. http://localhost:8080 */
  baseUrl: string;
  /** the tenant's gateway key */
  apiKey: string;
  /** per request; default 30 s */
  timeoutMs?: number | undefined;
  /** default globalThis.fetch */
  fetch?: typeof fetch | undefined;
}

/** A non-2xx answer: `status` and the RFC 9457 `problem` the gateway sent. */
export class TaskhookError extends Error {
  override readonly name = 'TaskhookError';
  constructor(
    readonly status: number,
    readonly problem: Problem,
    readonly headers: Headers,
  ) {
    super(`${status} ${problem.title}: ${problem.detail}`);
  }

  /** e.g. 'not-found', 'invalid', 'rate-limited' (the end of problem.type) */
  get code(): string {
    return this.problem.type.slice(this.problem.type.lastIndexOf('/') + 1);
  }

  /** 422 only: what was wrong with which field */
  get fieldErrors(): Array<{ field: string; message: string }> {
    return this.problem.errors ?? [];
  }

  /** seconds from Retry-After (429), if sent */
  get retryAfterSec(): number | undefined {
    const v = Number(this.headers.get('retry-after'));
    return Number.isFinite(v) && v > 0 ? v : undefined;
  }
}

export type TaskhookClient = ReturnType<typeof createClient>;

export function createClient(opts: ClientOptions) {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const doFetch = opts.fetch ?? globalThis.fetch;
  const timeoutMs = opts.timeoutMs ?? 30_000;

  async function call<T>(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<{ status: number; data: T; headers: Headers }> {
    const headers: Record<string, string> = { ...extra, authorization: `Bearer ${opts.apiKey}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await doFetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) throw new TaskhookError(res.status, toProblem(res.status, text), res.headers);
    return { status: res.status, data: JSON.parse(text) as T, headers: res.headers };
  }
  const id = encodeURIComponent;

  return {
    watches: {
      /** Registers a watch; `created: false` when this (task_id, callback_url) was registered before. */
      async create(input: RegisterWatch): Promise<{ watch: Watch; created: boolean }> {
        const { status, data } = await call<Watch>('POST', '/v1/watches', input);
        return { watch: data, created: status === 201 };
      },
      get: async (watchId: string) => (await call<Watch>('GET', `/v1/watches/${id(watchId)}`)).data,
      /** One page, newest first; pass `next_cursor` as `cursor` for the next. */
      list: async (query: ListWatches = {}) => (await call<WatchPage>('GET', `/v1/watches${queryString(query)}`)).data,
      /** Every watch matching the filter, page after page. */
      async *iterate(query: Omit<ListWatches, 'cursor'> = {}): AsyncGenerator<Watch> {
        let cursor: string | undefined;
        do {
          const page: WatchPage = (await call<WatchPage>('GET', `/v1/watches${queryString({ ...query, cursor })}`)).data;
          yield* page.data;
          cursor = page.next_cursor ?? undefined;
        } while (cursor);
      },
      cancel: async (watchId: string) => (await call<Watch>('DELETE', `/v1/watches/${id(watchId)}`)).data,
      /** Re-sends the terminal webhook with the same webhook-id; 409 if there is none yet. */
      redeliver: async (watchId: string) => (await call<Watch>('POST', `/v1/watches/${id(watchId)}/redeliver`)).data,
      attempts: async (watchId: string) => (await call<{ data: DeliveryAttempt[] }>('GET', `/v1/watches/${id(watchId)}/deliveries`)).data.data,
    },
    tasks: {
      /**
       * Submits through taskhook: POSTs `submit.body` to the tenant's upstream at `submit.path`
       * and registers the watch, in one call. Pass the same `idempotencyKey` when retrying the
       * same submit (after a timeout, a 409 or a 502 with outcome not_submitted): it is never
       * submitted twice. Default: a new random key, i.e. no retry protection across calls.
       * `replayed`: this is the stored answer of an earlier call with the key.
       */
      async create(input: SubmitTask, o: { idempotencyKey?: string } = {}): Promise<SubmittedTask & { replayed: boolean }> {
        const key = o.idempotencyKey ?? globalThis.crypto.randomUUID();
        const { data, headers } = await call<SubmittedTask>('POST', '/v1/tasks', input, { 'idempotency-key': key });
        return { ...data, replayed: headers.get('idempotent-replayed') === 'true' };
      },
      get: async (taskId: string) => (await call<TaskSnapshot>('GET', `/v1/tasks/${id(taskId)}`)).data,
    },
    tenant: {
      get: async () => (await call<TenantSettings>('GET', '/v1/tenant')).data,
      update: async (input: UpdateTenant) => (await call<TenantSettings>('PATCH', '/v1/tenant', input)).data,
      /** The new secret is returned once; webhooks carry signatures by both for 24 h. */
      rotateSigningSecret: async () => (await call<RotatedSecret>('POST', '/v1/tenant/signing-secret/rotate')).data,
    },
  };
}

function queryString(q: ListWatches): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null) params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** The problem+json body, or one made up when something in between answered (a proxy's HTML 502). */
function toProblem(status: number, text: string): Problem {
  try {
    const p = JSON.parse(text) as Partial<Problem>;
    if (p && typeof p.title === 'string' && typeof p.detail === 'string') {
      return { ...p, type: p.type ?? 'about:blank', title: p.title, status: p.status ?? status, detail: p.detail };
    }
  } catch {
    // not JSON
  }
  return { type: 'about:blank', title: `HTTP ${status}`, status, detail: text.slice(0, 500) || `the server answered ${status}` };
}
