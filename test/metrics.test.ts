// /metrics and the logs, against a running gateway: every metric name with its type,
// the counters moving through a real poll → webhook flow, labels free of ids, the
// optional bearer token; and the JSON log lines (request ids, state changes, no secrets).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startGateway, type Gateway } from '../src/gateway.js';
import { createLogger } from '../src/log.js';
import { startSimUpstream, type SimUpstream } from '../src/sim/server.js';
import { createTestDb, type TestDb } from './support/db.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { TEST_API_KEY, TEST_SIGNING_SECRET, TEST_UPSTREAM_KEY, testEnv } from './support/env.js';

const METRICS_TOKEN = 'metrics_token_0123456789abcdef';
const ENCRYPTION_KEY = Buffer.alloc(32, 7).toString('base64'); // testEnv's

/** Our metrics: name → type. The engines' and the API's; process metrics are checked apart. */
const METRICS = {
  taskhook_polls_total: 'counter',
  taskhook_poll_lateness_seconds: 'histogram',
  taskhook_give_ups_total: 'counter',
  taskhook_claim_batch_size: 'histogram',
  taskhook_deliveries_total: 'counter',
  taskhook_delivery_attempt_duration_seconds: 'histogram',
  taskhook_end_to_end_lag_seconds: 'histogram',
  taskhook_due_tasks: 'gauge',
  taskhook_pending_deliveries: 'gauge',
  taskhook_open_circuits: 'gauge',
  taskhook_submits_total: 'counter',
  taskhook_submit_upstream_duration_seconds: 'histogram',
  taskhook_learned_duration_seconds: 'gauge',
  taskhook_finished_tasks_total: 'counter',
  taskhook_finished_task_polls_total: 'counter',
} as const;

/** Every value each label may take: a fixed set, never an id. */
const LABEL_VALUES: Record<string, RegExp> = {
  outcome: /^(running|terminal|unauthorized|not_found|rate_limited|error|throttled|skipped|delivered|retry|undeliverable|deferred|accepted|replayed|rejected|not_submitted|unknown|not_recorded|in_use|key_reused)$/,
  status_class: /^([1-5]xx|other|none)$/,
  code: /^(task_not_found|upstream_unauthorized|watch_expired)$/,
  engine: /^(poller|deliverer)$/,
  scope: /^(url|host)$/,
  // capability/action/model as upstream names them, at most KIND_LABELS of them, then `other`
  kind: /^(other|[^/\s]+\/[^/\s]+\/[^/\s]+)$/,
  quantile: /^0\.(5|9)$/,
  le: /^(\+Inf|\d+(\.\d+)?(e[-+]?\d+)?)$/,
};

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Scrape {
  types: Map<string, string>;
  samples: Sample[];
  /** the sum of every sample of `name` whose labels include `labels` */
  value(name: string, labels?: Record<string, string>): number;
}

function parseExposition(text: string): Scrape {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return {
    types,
    samples,
    value: (name, labels = {}) =>
      samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0),
  };
}

let db: TestDb;
let upstream: SimUpstream;
let receiver: Receiver;
let gw: Gateway;
const logLines: string[] = [];
const logs = () => logLines.map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  [db, upstream, receiver] = await Promise.all([createTestDb(), startSimUpstream({ apiKeys: [TEST_UPSTREAM_KEY] }), startReceiver([TEST_SIGNING_SECRET])]);
  const cfg = loadConfig(testEnv(db.url, upstream.url, { TASKHOOK_METRICS_TOKEN: METRICS_TOKEN, LOG_LEVEL: 'info' }));
  const log = createLogger(cfg.logLevel, { destination: { write: (line: string) => void logLines.push(line) } });
  gw = await startGateway(cfg, log, { idleMs: 50 });
});
afterAll(async () => {
  await gw?.stop();
  await Promise.all([upstream?.close(), receiver?.close()]);
  await db?.drop();
});

async function api(path: string, init: { body?: unknown; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${gw.url}${path}`, {
    method: init.body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json', ...init.headers },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as any };
}

async function register(taskId: string, headers: Record<string, string> = {}) {
  const res = await api('/v1/watches', { body: { task_id: taskId, callback_url: `${receiver.url}/hook` }, headers });
  expect(res.status).toBe(201);
  return res.json as { id: string };
}

async function waitForStatus(id: string, status: string, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await api(`/v1/watches/${id}`);
    if (res.json.status === status) return res.json;
    if (Date.now() > until) throw new Error(`watch ${id} is ${res.json.status}, wanted ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function scrape(url = gw.url!, token: string | null = METRICS_TOKEN): Promise<{ status: number; contentType: string | null; text: string }> {
  const res = await fetch(`${url}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.status, contentType: res.headers.get('content-type'), text: await res.text() };
}

/** The engines count right after their writes commit: scrape until `ready` holds. */
async function scrapeUntil(ready: (s: Scrape) => boolean, timeoutMs = 5_000): Promise<Scrape> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await scrape();
    expect(res.status).toBe(200);
    const s = parseExposition(res.text);
    if (ready(s) || Date.now() > until) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('GET /metrics', () => {
  it('exposes every metric with its type, and the counters move through poll → webhook → 2xx', async () => {
    const done = upstream.createTask({ capability: 'image', durationMs: 300, processingAfterMs: 50 });
    const ghost = `ghost-${Date.now()}`; // upstream never heard of it: 404 past the 1 s grace → give-up
    receiver.replies.push({ status: 500 }); // one retry, so a 5xx attempt is counted too
    const [a, b] = [await register(done.task_id), await register(ghost)];
    await Promise.all([waitForStatus(a.id, 'delivered'), waitForStatus(b.id, 'delivered')]);

    const s = await scrapeUntil(
      (x) => x.value('taskhook_end_to_end_lag_seconds_count') >= 1 && x.value('taskhook_give_ups_total') >= 1 && x.value('taskhook_deliveries_total', { outcome: 'delivered' }) >= 2,
    );
    for (const [name, type] of Object.entries(METRICS)) expect(s.types.get(name), name).toBe(type);
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(s.types.has(name), name).toBe(true);
    }

    expect(s.value('taskhook_polls_total', { outcome: 'terminal' })).toBeGreaterThanOrEqual(1);
    expect(s.value('taskhook_polls_total', { outcome: 'not_found' })).toBeGreaterThanOrEqual(1);
    expect(s.value('taskhook_give_ups_total', { code: 'task_not_found' })).toBe(1);
    expect(s.value('taskhook_poll_lateness_seconds_count')).toBeGreaterThanOrEqual(2);
    expect(s.value('taskhook_claim_batch_size_count', { engine: 'poller' })).toBeGreaterThanOrEqual(1);
    expect(s.value('taskhook_claim_batch_size_count', { engine: 'deliverer' })).toBeGreaterThanOrEqual(1);
    expect(s.value('taskhook_deliveries_total', { outcome: 'delivered', status_class: '2xx' })).toBe(2);
    expect(s.value('taskhook_deliveries_total', { outcome: 'retry', status_class: '5xx' })).toBe(1);
    expect(s.value('taskhook_delivery_attempt_duration_seconds_count')).toBe(3);
    // only the terminal task event carries upstream's completed_at (whole seconds, hence < 1 s early at worst)
    expect(s.value('taskhook_end_to_end_lag_seconds_count')).toBe(1);
    const lag = s.value('taskhook_end_to_end_lag_seconds_sum');
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(10);
    // nothing left to poll or deliver; the gauges are read from the database at scrape time
    expect(s.samples.find((x) => x.name === 'taskhook_due_tasks')?.value).toBe(0);
    expect(s.samples.find((x) => x.name === 'taskhook_pending_deliveries')?.value).toBe(0);

    // Bounded cardinality: every label value of ours comes from a fixed set, so no id can be one.
    const [tenant] = await db.sql<{ id: string }[]>`select id from tenants`;
    const ids = [done.task_id, ghost, a.id, b.id, tenant!.id, ...receiver.received.map((r) => String(r.headers['webhook-id']))];
    for (const x of s.samples.filter((x) => x.name.startsWith('taskhook_'))) {
      for (const [k, v] of Object.entries(x.labels)) {
        expect(LABEL_VALUES[k], `label ${k} of ${x.name}`).toBeDefined();
        expect(v, `${x.name}{${k}}`).toMatch(LABEL_VALUES[k]!);
        for (const id of ids) expect(v).not.toContain(id);
      }
    }
  });

  it('requires Authorization: Bearer <TASKHOOK_METRICS_TOKEN> when that is set', async () => {
    const none = await scrape(gw.url, null);
    expect(none.status).toBe(401);
    expect(none.contentType).toBe('application/problem+json');
    expect(none.text).not.toContain('taskhook_');
    expect((await scrape(gw.url, `${METRICS_TOKEN}x`)).status).toBe(401);
    expect((await scrape(gw.url, TEST_API_KEY)).status).toBe(401);
    const ok = await scrape(gw.url, METRICS_TOKEN);
    expect(ok.status).toBe(200);
    expect(ok.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('is served open (no token configured) on api-only and worker-only listeners too', async () => {
    const roles = ['api', 'worker'] as const;
    const gateways = await Promise.all(
      roles.map((role) => startGateway(loadConfig(testEnv(db.url, upstream.url, { TASKHOOK_ROLE: role })), createLogger('silent'), { idleMs: 50 })),
    );
    try {
      for (const [i, g] of gateways.entries()) {
        const res = await scrape(g.url, null);
        expect(res.status, roles[i]).toBe(200);
        const s = parseExposition(res.text);
        for (const [name, type] of Object.entries(METRICS)) expect(s.types.get(name), `${roles[i]}: ${name}`).toBe(type);
      }
      // a separate registry per gateway: these two have counted nothing yet
      expect(parseExposition((await scrape(gateways[0]!.url, null)).text).value('taskhook_polls_total')).toBe(0);
    } finally {
      await Promise.all(gateways.map((g) => g.stop()));
    }
  });
});

describe('logs', () => {
  it('one JSON line per request with its req_id, one per state change, and never a secret', async () => {
    const task = upstream.createTask({ durationMs: 200 });
    const watch = await register(task.task_id, { 'x-request-id': 'req-from-client-42' });
    await waitForStatus(watch.id, 'delivered');
    await api('/v1/watches', { headers: { authorization: 'Bearer thk_not_a_real_key_but_secret_looking' } }); // 401
    await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });

    const lines = logs();
    for (const l of lines) expect(l).toMatchObject({ level: expect.any(Number), time: expect.any(String), msg: expect.any(String), service: 'taskhook' });
    const requests = lines.filter((l) => l.msg === 'request');
    const registered = requests.find((l) => l.method === 'POST' && l.path === '/v1/watches' && l.req_id === 'req-from-client-42');
    expect(registered).toMatchObject({ status: 201, ms: expect.any(Number), level: 30 });
    expect(requests.every((l) => typeof l.req_id === 'string' && l.req_id !== '')).toBe(true);
    expect(requests.find((l) => l.status === 401)).toBeDefined();

    const info = (msg: string, extra: Record<string, unknown>) => lines.filter((l) => l.msg === msg && l.level === 30 && Object.entries(extra).every(([k, v]) => l[k] === v));
    expect(info('task finished', { task_id: task.task_id, status: 'completed' })).toHaveLength(1);
    expect(info('webhook delivered', { watch: watch.id, status: 204 })).toHaveLength(1);

    const all = logLines.join('\n');
    for (const secret of [TEST_API_KEY, TEST_SIGNING_SECRET, TEST_SIGNING_SECRET.slice(6), TEST_UPSTREAM_KEY, METRICS_TOKEN, ENCRYPTION_KEY, 'thk_not_a_real_key_but_secret_looking']) {
      expect(all).not.toContain(secret);
    }
  });

  it('redacts secret-named fields and authorization headers should one ever be passed in', () => {
    const out: string[] = [];
    const log = createLogger('info', { destination: { write: (l: string) => void out.push(l) } });
    log.info({ headers: { authorization: 'Bearer s1', cookie: 'c=s2' }, tenant: { upstreamApiKey: 's3', signingSecrets: ['s4'] }, api_key: 's5', token: 's6' }, 'x');
    const line = JSON.parse(out[0]!);
    expect(line.headers).toEqual({ authorization: '[redacted]', cookie: '[redacted]' });
    expect(line.tenant).toEqual({ upstreamApiKey: '[redacted]', signingSecrets: '[redacted]' });
    for (const s of ['s1', 's2', 's3', 's4', 's5', 's6']) expect(out[0]).not.toContain(`"${s}"`);
  });
});
