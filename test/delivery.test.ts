// How deliveries behave against receivers that fail, redirect, throttle or hang.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './support/gateway.js';
import { waitForStatus as waitForStatusOf } from './support/wait.js';

let s: Stack;
beforeAll(async () => {
  s = await startStack();
});
afterAll(async () => {
  await s?.close();
});

async function watchDoneTask(path: string) {
  const task = s.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });
  const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}${path}` } });
  expect(res.status, res.text).toBe(201);
  return res.json.id as string;
}

const waitForStatus = (id: string, status: string, timeoutMs?: number) => waitForStatusOf(s, id, status, timeoutMs);

const at = (path: string) => s.receiver.received.filter((r) => r.path === path);

describe('delivery', () => {
  it('retries a receiver that answers 500 twice, then 2xx: three attempts, one webhook-id', async () => {
    s.receiver.replies.push({ status: 500, body: 'boom' }, { status: 500, body: 'boom again' });
    const id = await watchDoneTask('/flaky');
    await s.receiver.waitFor(() => at('/flaky').length >= 1);
    expect((await s.api(`/v1/watches/${id}`)).json.status).toBe('delivering');
    const done = await waitForStatus(id, 'delivered');
    const hooks = at('/flaky');
    expect(hooks).toHaveLength(3);
    expect(new Set(hooks.map((h) => h.headers['webhook-id'])).size).toBe(1);
    expect(hooks.every((h) => h.verified)).toBe(true);
    expect(new Set(hooks.map((h) => h.body)).size).toBe(1);
    expect(done.last_delivery).toMatchObject({ status: 'delivered', attempts: 3, last_response_status: 204 });
    const attempts = (await s.api(`/v1/watches/${id}/deliveries`)).json.data;
    expect(attempts.map((a: { response_status: number }) => a.response_status)).toEqual([500, 500, 204]);
    expect(attempts[0]).toMatchObject({ webhook_id: hooks[0]!.headers['webhook-id'], event_type: 'task.completed', error: 'receiver answered HTTP 500', response_excerpt: 'boom' });
    expect(attempts[2].error).toBeNull();
    expect(attempts.every((a: { duration_ms: number }) => a.duration_ms >= 0)).toBe(true);
  });

  it('stops at once on 410 Gone: undeliverable after one attempt', async () => {
    s.receiver.replies.push({ status: 410 });
    const id = await watchDoneTask('/gone');
    const w = await waitForStatus(id, 'undeliverable');
    expect(at('/gone')).toHaveLength(1);
    expect(w.last_delivery).toMatchObject({ status: 'undeliverable', attempts: 1, last_response_status: 410 });
  });

  it('does not follow a redirect: a 302 is a failed attempt and the target is never called', async () => {
    s.receiver.fallback = { status: 302, headers: { location: `${s.receiver.url}/redirected` } };
    try {
      const id = await watchDoneTask('/moved');
      // schedule 100ms,200ms,300ms: four attempts, then undeliverable
      const w = await waitForStatus(id, 'undeliverable');
      expect(at('/moved')).toHaveLength(4);
      expect(at('/redirected')).toHaveLength(0);
      expect(w.last_delivery.last_response_status).toBe(302);
    } finally {
      s.receiver.fallback = { status: 204 };
    }
  });

  it('honours Retry-After on 429 instead of the (much shorter) schedule', async () => {
    s.receiver.replies.push({ status: 429, headers: { 'retry-after': '2' } });
    const id = await watchDoneTask('/throttled');
    await waitForStatus(id, 'delivered');
    const [first, second] = at('/throttled');
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1900);
    expect(Number(second!.headers['webhook-timestamp'])).toBeGreaterThan(Number(first!.headers['webhook-timestamp']));
  });

  it('ends an attempt against a hanging receiver at the deadline and records it as timed out', async () => {
    s.receiver.replies.push({ status: 200, hang: true });
    const id = await watchDoneTask('/hangs');
    await waitForStatus(id, 'delivered', 30_000);
    const attempts = (await s.api(`/v1/watches/${id}/deliveries`)).json.data;
    expect(attempts).toHaveLength(2);
    expect(attempts[0].response_status).toBeNull();
    expect(attempts[0].error).toMatch(/timed out/);
    // TASKHOOK_DELIVERY_TIMEOUT_S=2 in tests
    expect(attempts[0].duration_ms).toBeGreaterThanOrEqual(1900);
    expect(attempts[0].duration_ms).toBeLessThan(4000);
  });

  it('records a connection refused as a failed attempt with a clear error', async () => {
    const task = s.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });
    const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: 'http://127.0.0.1:1/nothing-listens' } });
    const w = await waitForStatus(res.json.id, 'undeliverable');
    const attempts = (await s.api(`/v1/watches/${w.id}/deliveries`)).json.data;
    expect(attempts).toHaveLength(4);
    expect(attempts[0].error).toMatch(/ECONNREFUSED/);
  });

  it('redelivers the terminal event with the same webhook-id and body', async () => {
    const id = await watchDoneTask('/again');
    await waitForStatus(id, 'delivered');
    const res = await s.api(`/v1/watches/${id}/redeliver`, { method: 'POST' });
    expect(res.status).toBe(202);
    expect(res.json.status).toBe('delivering');
    await s.receiver.waitFor(() => at('/again').length === 2);
    await waitForStatus(id, 'delivered');
    const [a, b] = at('/again');
    expect(b!.headers['webhook-id']).toBe(a!.headers['webhook-id']);
    expect(b!.body).toBe(a!.body);
    expect(b!.verified).toBe(true);
  });

  it('redelivers an undeliverable watch, which can then succeed', async () => {
    s.receiver.replies.push({ status: 410 });
    const id = await watchDoneTask('/second-chance');
    await waitForStatus(id, 'undeliverable');
    expect((await s.api(`/v1/watches/${id}/redeliver`, { method: 'POST' })).status).toBe(202);
    const w = await waitForStatus(id, 'delivered');
    expect(w.last_delivery.attempts).toBe(2);
  });
});
