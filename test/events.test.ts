// GET /v1/events: the tenant's webhooks as Server-Sent Events, each carrying the exact
// body and Standard Webhooks headers that verify with the tenant's secret; resumable
// with Last-Event-ID; tenant-scoped; a few streams per tenant at most.
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idTimeMs, resumePoint } from '../src/api/events.js';
import { startStack, type Stack } from './support/gateway.js';
import { TEST_API_KEY, TEST_SIGNING_SECRET } from './support/env.js';

const ADMIN_TOKEN = 'admin_token_0123456789abcdef_0123456789';

interface Stream {
  status: number;
  events: EventSourceMessage[];
  comments: string[];
  /** resolves once the stream has said it is live (after it primed "from now") */
  ready: Promise<void>;
  waitFor(pred: (events: EventSourceMessage[]) => boolean, timeoutMs?: number): Promise<EventSourceMessage[]>;
  close(): void;
}

async function open(s: Stack, headers: Record<string, string> = {}, key = TEST_API_KEY, query = ''): Promise<Stream> {
  const ctl = new AbortController();
  const res = await fetch(`${s.gateway.url}/v1/events${query}`, { headers: { authorization: `Bearer ${key}`, ...headers }, signal: ctl.signal });
  const events: EventSourceMessage[] = [];
  const comments: string[] = [];
  let onReady!: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  const parser = createParser({
    onEvent: (e) => events.push(e),
    onComment: (c) => {
      comments.push(c);
      if (c.trim() === 'ready') onReady();
    },
  });
  if (res.ok && res.body) {
    void (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
      } catch {
        // aborted by close()
      }
    })();
  } else {
    await res.text();
  }
  return {
    status: res.status,
    events,
    comments,
    ready,
    async waitFor(pred, timeoutMs = 15_000) {
      const until = Date.now() + timeoutMs;
      while (!pred(events)) {
        if (Date.now() > until) throw new Error(`stream: condition not met within ${timeoutMs} ms; got ${events.map((e) => `${e.event}/${e.id}`).join(', ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return events;
    },
    close: () => ctl.abort(),
  };
}

let s: Stack;
beforeAll(async () => {
  s = await startStack({ TASKHOOK_ADMIN_TOKEN: ADMIN_TOKEN });
});
afterAll(async () => {
  await s?.close();
});

/** A sim task that completes quickly, watched by `key`'s tenant with the stack's receiver as callback. */
async function completeTask(key = TEST_API_KEY, script: Record<string, unknown> = {}) {
  const task = s.upstream.createTask({ durationMs: 150, ...script });
  const res = await s.api('/v1/watches', {
    body: { task_id: task.task_id, callback_url: `${s.receiver.url}/hook`, metadata: { n: 1 } },
    headers: { authorization: `Bearer ${key}` },
  });
  expect(res.status, res.text).toBe(201);
  return { task, watchId: res.json.id as string };
}

const ofWatch = (watchId: string) => (events: EventSourceMessage[]) => events.some((e) => JSON.parse(e.data).watch_id === watchId);

describe('GET /v1/events', () => {
  it('streams a real event whose headers verify over the exact webhook body', async () => {
    const stream = await open(s);
    try {
      expect(stream.status).toBe(200);
      await stream.ready;
      const { watchId } = await completeTask();
      const events = await stream.waitFor(ofWatch(watchId));
      const e = events.find((x) => JSON.parse(x.data).watch_id === watchId)!;
      const data = JSON.parse(e.data);
      expect(e.event).toBe('task.completed');
      expect(e.id).toMatch(/^msg_[0-9a-z]{26}$/);
      expect(data).toMatchObject({ webhook_id: e.id, type: 'task.completed', watch_id: watchId });
      expect(data.headers['webhook-id']).toBe(e.id);
      // the Standard Webhooks library accepts it with the tenant's secret
      const verified = new Webhook(TEST_SIGNING_SECRET).verify(data.body, data.headers) as { type: string; metadata: unknown };
      expect(verified).toMatchObject({ type: 'task.completed', metadata: { n: 1 } });
      // and the body is byte for byte what the deliverer sent to the callback
      const hook = (await s.receiver.waitFor((all) => all.some((r) => r.json?.watch_id === watchId))).find((r) => r.json?.watch_id === watchId)!;
      expect(data.body).toBe(hook.body);
      expect(hook.headers['webhook-id']).toBe(e.id);
    } finally {
      stream.close();
    }
  });

  it('starts from now, and resumes after Last-Event-ID with what came since, in id order', async () => {
    const before = await completeTask();
    await s.receiver.waitFor((all) => all.some((r) => r.json?.watch_id === before.watchId));

    const first = await open(s);
    await first.ready;
    const a = await completeTask();
    const seenA = (await first.waitFor(ofWatch(a.watchId))).find((e) => JSON.parse(e.data).watch_id === a.watchId)!;
    first.close();
    // what existed before the stream opened was not sent
    expect(first.events.some((e) => JSON.parse(e.data).watch_id === before.watchId)).toBe(false);

    // while nobody listens, two more events
    const b = await completeTask();
    const c = await completeTask(TEST_API_KEY, { capability: 'image' });
    await s.receiver.waitFor((all) => [b, c].every((x) => all.some((r) => r.json?.watch_id === x.watchId)));

    const resumed = await open(s, { 'last-event-id': seenA.id! });
    try {
      await resumed.waitFor((evs) => [b, c].every((x) => ofWatch(x.watchId)(evs)));
      const ids = resumed.events.map((e) => e.id!);
      expect(resumed.events.some((e) => JSON.parse(e.data).watch_id === a.watchId)).toBe(false);
      expect(ids).toEqual([...ids].sort());
      expect(new Set(ids).size).toBe(ids.length);
    } finally {
      resumed.close();
    }

    // ?since= as a query parameter works the same way (EventSource can't set headers on the first request)
    const byQuery = await open(s, {}, TEST_API_KEY, `?since=${seenA.id}`);
    try {
      await byQuery.waitFor((evs) => [b, c].every((x) => ofWatch(x.watchId)(evs)));
    } finally {
      byQuery.close();
    }
  });

  it('requires a gateway key (401 problem+json) and rejects a malformed Last-Event-ID (400)', async () => {
    const res = await fetch(`${s.gateway.url}/v1/events`);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const wrong = await open(s, {}, 'thk_not_a_real_key_000000000000');
    expect(wrong.status).toBe(401);
    for (const id of ["'; drop table deliveries; --", 'msg_uuuuuuuuuuuuuuuu', '0000-01-01T00:00:00Z', 'yesterday']) {
      const bad = await open(s, { 'last-event-id': id });
      expect(bad.status, id).toBe(400);
    }
  });

  it("never shows another tenant's events", async () => {
    const created = await s.api('/v1/admin/tenants', {
      body: { name: 'other', upstream_api_key: 'sk_test' },
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(created.status, created.text).toBe(201);
    const otherKey = created.json.api_key as string;
    const mine = await open(s);
    const theirs = await open(s, {}, otherKey);
    try {
      await Promise.all([mine.ready, theirs.ready]);
      const other = await completeTask(otherKey);
      const own = await completeTask();
      await theirs.waitFor(ofWatch(other.watchId));
      await mine.waitFor(ofWatch(own.watchId));
      expect(mine.events.some((e) => JSON.parse(e.data).watch_id === other.watchId)).toBe(false);
      expect(theirs.events.some((e) => JSON.parse(e.data).watch_id === own.watchId)).toBe(false);
      // theirs verifies with their secret, not the default tenant's
      const e = theirs.events.find((x) => JSON.parse(x.data).watch_id === other.watchId)!;
      const data = JSON.parse(e.data);
      expect(() => new Webhook(created.json.signing_secret).verify(data.body, data.headers)).not.toThrow();
      expect(() => new Webhook(TEST_SIGNING_SECRET).verify(data.body, data.headers)).toThrow();
    } finally {
      mine.close();
      theirs.close();
    }
  });

  it('allows 5 open streams per tenant, 429 for a sixth, and frees the slot when a client goes away', async () => {
    const streams = await Promise.all(Array.from({ length: 5 }, () => open(s)));
    try {
      expect(streams.map((x) => x.status)).toEqual([200, 200, 200, 200, 200]);
      const sixth = await open(s);
      expect(sixth.status).toBe(429);
      streams.pop()!.close();
      let again: Stream | undefined;
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, 50));
        again = await open(s);
        if (again.status === 200) break;
      }
      expect(again?.status).toBe(200);
      again?.close();
    } finally {
      for (const x of streams) x.close();
    }
  });
});

describe('resume points', () => {
  it.each([
    ['msg_01abcdefgh0123456789abcdef', 'msg_01abcdefgh0123456789abcdef'],
    ['2026-11-28T12:00:00.000Z', 'time'],
    ['1780704348', 'time'],
  ])('%s', (value, expected) => {
    const p = resumePoint(value)!;
    if (expected === 'time') {
      expect(p).toMatch(/^msg_[0-9a-z]{10}$/);
      expect(idTimeMs(p)).toBe(/^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value));
    } else {
      expect(p).toBe(expected);
    }
  });
});
