// Fairness under load: one hanging callback URL (on its own host or beside healthy ones
// on the same host:port), one tenant's huge backlog, or one URL that keeps failing must
// not hold up anyone else's webhooks (per-host, per-URL and per-tenant caps, a circuit
// breaker per URL; src/delivery/admission.ts, health.ts).
import net from 'node:net';
import { createHash } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { TEST_SIGNING_SECRET } from './support/env.js';

/**
 * In flight to one callback URL (createDeliverer's defaults, src/delivery/admission.ts): ½ of
 * the per-host cap of 32 while it is alone on its host, ¼ while other URLs there have work.
 */
const ALONE_CAP = 16;
/** How much later than the baseline a healthy webhook may arrive while someone else misbehaves. */
const LAG_SLACK_MS = 1_500;
/**
 * The same, while one in-process tenant's backlog keeps this process's CPU busy sending
 * (~50–150 webhooks/s here): CI, with other test files on the 2 cores, measured 2.6 s
 * (median 1.1 s) where an idle box gives 0.8–1.8 s, on this commit and the one before. What
 * fairness must rule out is waiting behind the backlog — its remaining rows ÷ its rate, tens
 * of seconds — so the test asserts that too, as a ratio from the same run (below).
 */
const BACKLOG_LAG_SLACK_MS = 4_000;

const sha256hex = (v: string) => createHash('sha256').update(v).digest('hex');

async function register(s: Stack, taskId: string, callbackUrl: string): Promise<string> {
  const res = await s.api('/v1/watches', { body: { task_id: taskId, callback_url: callbackUrl } });
  expect(res.status, res.text).toBe(201);
  return res.json.id as string;
}

/** Watches on already-finished tasks, registered one after the other; returns each one's registration time. */
async function registerFinished(s: Stack, n: number, callbackUrl: string): Promise<{ id: string; at: number }[]> {
  const out: { id: string; at: number }[] = [];
  for (let i = 0; i < n; i++) {
    const task = s.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });
    const at = Date.now();
    out.push({ id: await register(s, task.task_id, callbackUrl), at });
  }
  return out;
}

/** Registration → receipt at `receiver`, per watch, once every one of them has arrived. */
async function lags(receiver: Receiver, regs: { id: string; at: number }[], timeoutMs = 30_000): Promise<number[]> {
  const got = (all: Receiver['received'], id: string) => all.find((r) => r.json?.watch_id === id);
  await receiver.waitFor((all) => regs.every((r) => got(all, r.id)), timeoutMs);
  return regs.map((r) => {
    const hook = got(receiver.received, r.id)!;
    expect(hook.verified, hook.verifyError).toBe(true);
    return hook.at - r.at;
  });
}

/** The baseline: lags of 20 watches to the healthy receiver alone, after a few to warm the stack up. */
async function baseline(s: Stack) {
  await lags(s.receiver, await registerFinished(s, 5, `${s.receiver.url}/warmup`));
  return summary(await lags(s.receiver, await registerFinished(s, 20, `${s.receiver.url}/baseline`)));
}

const summary = (xs: number[]) => ({ max: Math.max(...xs), median: [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! });

/** A TCP server that accepts connections, reads whatever comes, and never answers. */
async function blackHole() {
  const events = new EventEmitter();
  const sockets = new Set<net.Socket>();
  const stats = { open: 0, maxOpen: 0, accepted: 0 };
  const server = net.createServer((sock) => {
    sockets.add(sock);
    stats.accepted++;
    stats.open++;
    stats.maxOpen = Math.max(stats.maxOpen, stats.open);
    sock.on('data', () => {});
    sock.on('error', () => {}); // ECONNRESET when the gateway gives up: expected
    sock.on('close', () => {
      sockets.delete(sock);
      stats.open--;
      events.emit('change');
    });
    events.emit('change');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/hook`,
    stats,
    async until(pred: () => boolean, timeoutMs = 20_000) {
      const signal = AbortSignal.timeout(timeoutMs);
      while (!pred()) {
        try {
          await once(events, 'change', { signal });
        } catch {
          throw new Error(`black hole: condition not met within ${timeoutMs} ms (${JSON.stringify(stats)})`);
        }
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const sock of sockets) sock.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('fairness between endpoints and tenants', () => {
  it('a hanging endpoint with 200 pending deliveries does not delay a healthy endpoint', async () => {
    const s = await startStack();
    const hole = await blackHole();
    try {
      const base = await baseline(s);

      for (let i = 0; i < 200; i += 20) {
        await Promise.all(
          Array.from({ length: 20 }, () => register(s, s.upstream.createTask({ durationMs: 0, processingAfterMs: 0 }).task_id, hole.url)),
        );
      }
      // maxOpen, not open: on a slow machine the first ones may already have timed out and
      // opened the circuit by now, which is the behaviour under test too.
      await hole.until(() => hole.stats.maxOpen >= ALONE_CAP);
      const pendingToHole = await s.db.sql<{ n: number }[]>`
        select count(*)::int as n from watches where callback_url like ${hole.url + '%'} and status in ('watching', 'delivering')`;

      const during = summary(await lags(s.receiver, await registerFinished(s, 20, `${s.receiver.url}/during`)));
      console.info('[fairness/hanging endpoint]', {
        baseline_ms: base,
        with_hanging_endpoint_ms: during,
        hanging_pending_deliveries: pendingToHole[0]!.n,
        hanging_connections_open_now: hole.stats.open,
        hanging_connections_max: hole.stats.maxOpen,
        hanging_connections_total: hole.stats.accepted,
      });
      expect(pendingToHole[0]!.n).toBeGreaterThanOrEqual(150);
      expect(during.max).toBeLessThanOrEqual(base.max + LAG_SLACK_MS);
      expect(hole.stats.maxOpen).toBe(ALONE_CAP);
    } finally {
      await s.close();
      await hole.close();
    }
  });

  it("one tenant's 60 webhooks to a hanging URL do not delay another tenant's to a healthy URL on the same host:port", async () => {
    // Real timeouts (15 s): the hanging URL's requests hold their connections for the whole test.
    const s = await startStack({ TASKHOOK_DELIVERY_TIMEOUT_S: '15' });
    s.receiver.byPath['/hang'] = { status: 200, hang: true };
    try {
      const base = await baseline(s);
      await s.db.sql`
        insert into tenants (id, name, api_key_hash, signing_secret)
        values ('ten_hang', 'hang', ${sha256hex('thk_hang_tenant_key_0123456789')}, ${`whsec_${Buffer.alloc(32, 5).toString('base64')}`})`;
      await s.db.sql`
        insert into deliveries (id, tenant_id, watch_id, event_type, terminal, callback_url, endpoint, payload, next_attempt_at)
        select 'msg_hang_' || i, 'ten_hang', 'wat_hang_' || i, 'task.completed', true, ${`${s.receiver.url}/hang`}, ${s.receiver.url},
               '{"type":"task.completed","watch_id":"wat_hang_' || i || '"}', now()
          from generate_series(1, 60) as i`;
      // Alone on the host, the hanging URL takes ½ of its slots; the rest stays free for newcomers.
      await s.receiver.waitFor((all) => all.filter((r) => r.path === '/hang').length >= ALONE_CAP);

      const regs = await registerFinished(s, 10, `${s.receiver.url}/ok`);
      const during = summary(await lags(s.receiver, regs));
      const hangOpenNow = s.receiver.inFlight.get('/hang') ?? 0;
      const hangMax = s.receiver.maxInFlight.get('/hang') ?? 0;
      console.info('[fairness/hanging URL on a shared host]', {
        baseline_ms: base,
        healthy_url_same_host_ms: during,
        hanging_in_flight_now: hangOpenNow,
        hanging_in_flight_max: hangMax,
        hanging_requests: s.receiver.received.filter((r) => r.path === '/hang').length,
      });
      expect(hangOpenNow).toBe(ALONE_CAP); // still hanging: the healthy ones went beside it, not after it
      expect(hangMax).toBe(ALONE_CAP);
      expect(s.receiver.received.filter((r) => r.path === '/hang')).toHaveLength(ALONE_CAP);
      expect(during.max).toBeLessThan(5_000);
      expect(during.max).toBeLessThanOrEqual(base.max + LAG_SLACK_MS);
    } finally {
      await s.close();
    }
  });

  it("a failing URL's circuit leaves its host's other URLs untouched", async () => {
    const s = await startStack({ TASKHOOK_RETRY_SCHEDULE: Array(8).fill('100ms').join(',') });
    s.receiver.byPath['/fail'] = { status: 500, body: 'down' };
    const failUrl = `${s.receiver.url}/fail`;
    try {
      const base = await baseline(s);
      const failing = await registerFinished(s, 6, failUrl);
      // The URL's circuit has opened once its queue is pushed out by ~30 s.
      const started = Date.now();
      for (;;) {
        const [open] = await s.db.sql<{ n: number }[]>`
          select count(*)::int as n from deliveries
           where callback_url = ${failUrl} and status = 'pending' and next_attempt_at > now() + interval '10 seconds'`;
        if (open!.n > 0) break;
        if (Date.now() - started > 10_000) throw new Error("the failing URL's circuit never opened");
        await new Promise((r) => setTimeout(r, 20));
      }
      const failedSoFar = s.receiver.received.filter((r) => r.path === '/fail').length;
      const during = summary(await lags(s.receiver, await registerFinished(s, 10, `${s.receiver.url}/ok`)));
      // (the receiver has them all; their completions commit a moment later)
      let okRows: { n: number; delivered: number } | undefined;
      for (const until = Date.now() + 10_000; Date.now() < until; await new Promise((r) => setTimeout(r, 20))) {
        [okRows] = await s.db.sql<{ n: number; delivered: number }[]>`
          select count(*)::int as n, count(*) filter (where status = 'delivered')::int as delivered
            from deliveries where callback_url = ${`${s.receiver.url}/ok`}`;
        if (okRows!.delivered === 10) break;
      }
      console.info('[fairness/failing URL on a shared host]', { baseline_ms: base, healthy_url_same_host_ms: during, fail_requests: failedSoFar });
      expect(okRows).toEqual({ n: 10, delivered: 10 });
      expect(during.max).toBeLessThanOrEqual(base.max + LAG_SLACK_MS);
      expect(s.receiver.received.filter((r) => r.path === '/fail').length).toBe(failedSoFar); // still open

      // Visible: the tenant's endpoint listing and the watch's last_delivery say which URL is open, until when.
      const listed = (await s.api('/v1/endpoints')).json.data as Array<Record<string, any>>;
      const fail = listed.find((e) => e.url === failUrl)!;
      expect(fail).toMatchObject({ state: 'circuit_open', last_error: 'receiver answered HTTP 500' });
      expect(Date.parse(fail.circuit_open_until)).toBeGreaterThan(Date.now() + 10_000);
      expect(fail.pending).toBeGreaterThan(0);
      expect(Date.parse(fail.next_attempt_at)).toBeGreaterThan(Date.now() + 10_000);
      expect(listed.find((e) => e.url === `${s.receiver.url}/ok`)).toMatchObject({ state: 'healthy', pending: 0, circuit_open_until: null });
      expect(listed[0]!.url).toBe(failUrl); // failing ones first
      const watch = (await s.api(`/v1/watches/${failing[0]!.id}`)).json;
      expect(watch.last_delivery).toMatchObject({ status: 'pending', endpoint_state: 'circuit_open', last_error: 'receiver answered HTTP 500' });
      expect(watch.last_delivery.circuit_open_until).toBe(fail.circuit_open_until);
    } finally {
      await s.close();
    }
  });

  it("one tenant's 10,000 pending deliveries do not delay another tenant", async () => {
    const s = await startStack();
    const BULK_SECRET = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
    const bulk = await startReceiver([BULK_SECRET]);
    bulk.fallback = { status: 200, delayMs: 20 };
    try {
      const base = await baseline(s);

      await s.db.sql`
        insert into tenants (id, name, api_key_hash, signing_secret)
        values ('ten_bulk', 'bulk', ${sha256hex('thk_bulk_tenant_key_0123456789')}, ${BULK_SECRET})`;
      await s.db.sql`
        insert into deliveries (id, tenant_id, watch_id, event_type, terminal, callback_url, endpoint, payload, next_attempt_at)
        select 'msg_bulk_' || i, 'ten_bulk', 'wat_bulk', 'task.completed', false, ${`${bulk.url}/bulk`}, ${bulk.url},
               '{"type":"task.completed","watch_id":"wat_bulk","n":' || i || '}', now()
          from generate_series(1, 10000) as i`;
      const backlogAt = Date.now();
      await bulk.waitFor((all) => all.length >= 50); // the backlog is being worked

      const during = summary(await lags(s.receiver, await registerFinished(s, 20, `${s.receiver.url}/during`)));
      const [left] = await s.db.sql<{ n: number }[]>`
        select count(*)::int as n from deliveries where tenant_id = 'ten_bulk' and status = 'pending'`;
      // how long a webhook queued behind the rest of the backlog would have waited, at its measured rate
      const behindBacklogMs = (left!.n / bulk.received.length) * (Date.now() - backlogAt);
      console.info('[fairness/bulk tenant]', {
        baseline_ms: base,
        with_bulk_backlog_ms: during,
        bulk_delivered_so_far: bulk.received.length,
        bulk_still_pending: left!.n,
        behind_the_backlog_would_be_ms: Math.round(behindBacklogMs),
      });
      expect(left!.n).toBeGreaterThan(5_000);
      expect(during.max).toBeLessThanOrEqual(base.max + BACKLOG_LAG_SLACK_MS);
      expect(during.max).toBeLessThan(behindBacklogMs / 5);
      expect(bulk.received.every((r) => r.verified)).toBe(true);
    } finally {
      await s.close();
      await bulk.close();
    }
  });

  it('an endpoint that keeps failing gets its circuit opened: its queue is deferred without burning retry budget', async () => {
    // 1 attempt + 8 retries each, 100 ms apart: without a breaker, 30 watches would cost 270 requests within ~2 s.
    const s = await startStack({ TASKHOOK_RETRY_SCHEDULE: Array(8).fill('100ms').join(',') });
    const failing = await startReceiver([TEST_SIGNING_SECRET]);
    failing.fallback = { status: 500, body: 'down' };
    const endpoint = failing.url;
    try {
      const first = await registerFinished(s, 6, `${failing.url}/hook`);
      await failing.waitFor((all) => all.length >= 5);
      const fifthAt = Date.now();
      // The breaker has opened once the endpoint's queue is pushed out by ~30 s.
      for (;;) {
        const [open] = await s.db.sql<{ n: number }[]>`
          select count(*)::int as n from deliveries
           where endpoint = ${endpoint} and status = 'pending' and next_attempt_at > now() + interval '10 seconds'`;
        if (open!.n > 0) break;
        if (Date.now() - fifthAt > 10_000) throw new Error('the endpoint circuit never opened');
        await new Promise((r) => setTimeout(r, 20));
      }
      const rest = await registerFinished(s, 24, `${failing.url}/hook`);
      const all = [...first, ...rest];
      // Every watch has its terminal event in the outbox…
      for (;;) {
        const [n] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where endpoint = ${endpoint}`;
        if (n!.n === all.length) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      // …and for a while after, the endpoint hears nothing.
      const before = failing.received.length;
      await new Promise((r) => setTimeout(r, 3_000));
      const inWindow = failing.received.length - before;

      const rows = await s.db.sql<{ id: string; status: string; retry_step: number; attempts: number; logged: number; deferred_s: number }[]>`
        select d.id, d.status, d.retry_step, d.attempts,
               (select count(*)::int from delivery_attempts a where a.delivery_id = d.id) as logged,
               extract(epoch from d.next_attempt_at - now())::float8 as deferred_s
          from deliveries d where d.endpoint = ${endpoint}`;
      const neverAttempted = rows.filter((r) => r.logged === 0);
      console.info('[fairness/failing endpoint]', {
        requests_total: failing.received.length,
        requests_before_open: before,
        requests_in_3s_window_after_open: inWindow,
        without_breaker_would_be: 30 * 9,
        deliveries: rows.length,
        never_attempted: neverAttempted.length,
        retry_steps: rows.map((r) => r.retry_step).sort(),
        min_deferral_s: Math.round(Math.min(...rows.map((r) => r.deferred_s))),
      });

      expect(inWindow).toBe(0);
      expect(failing.received.length).toBeLessThanOrEqual(12);
      expect(neverAttempted.length).toBeGreaterThanOrEqual(rest.length);
      for (const r of rows) {
        expect(r.status).toBe('pending');
        // the retry budget moved only for attempts that really happened
        expect(r.retry_step, r.id).toBe(r.logged);
        expect(r.attempts, r.id).toBe(r.logged);
        expect(r.deferred_s).toBeGreaterThan(10);
      }
      for (const w of all) expect((await s.api(`/v1/watches/${w.id}`)).json.status, w.id).toBe('delivering');
    } finally {
      await s.close();
      await failing.close();
    }
  });
});
