// What a receiver answers is kept in delivery_attempts as at most 1 KiB of UTF-8,
// so attempt rows stay small however much history retention keeps, and whatever
// bytes a receiver sends back (a NUL would make Postgres refuse the row).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storedExcerpt } from '../src/delivery/worker.js';
import { startStack, type Stack } from './support/gateway.js';
import { waitForStatus } from './support/wait.js';

describe('storedExcerpt', () => {
  it.each([
    ['short ASCII', 'boom', 'boom'],
    ['exactly 1 KiB', 'a'.repeat(1024), 'a'.repeat(1024)],
    ['ASCII past 1 KiB', 'a'.repeat(5000), 'a'.repeat(1024)],
    // '€' is 3 bytes: 341 fit in 1023 bytes, the 342nd would be cut in half
    ['3-byte characters, cut at a boundary', '€'.repeat(1000), '€'.repeat(341)],
    // '😀' is 4 bytes (two UTF-16 units): slice(0, 1024) would have kept 2 KiB
    ['4-byte characters', '😀'.repeat(1000), '😀'.repeat(256)],
    ['NUL characters dropped', 'a\u0000b\u0000', 'ab'],
  ])('%s', (_name, input, expected) => {
    const out = storedExcerpt(input);
    expect(out).toBe(expected);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(1024);
  });
});

describe('a receiver answering bytes Postgres text cannot hold', () => {
  let s: Stack;
  beforeAll(async () => {
    s = await startStack();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('is delivered once, its attempt recorded with the excerpt cleaned and capped', async () => {
    s.receiver.replies.push({ status: 200, body: `ok\u0000${'€'.repeat(2000)}` });
    const task = s.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });
    const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/nul` } });
    expect(res.status, res.text).toBe(201);
    await waitForStatus(s, res.json.id, 'delivered');
    const attempts = (await s.api(`/v1/watches/${res.json.id}/deliveries`)).json.data as Array<{ response_excerpt: string }>;
    expect(attempts).toHaveLength(1);
    expect(attempts[0]!.response_excerpt.startsWith('ok€€')).toBe(true);
    expect(Buffer.byteLength(attempts[0]!.response_excerpt)).toBeLessThanOrEqual(1024);
    expect(s.receiver.received.filter((r) => r.path === '/nul')).toHaveLength(1);
  });
});
