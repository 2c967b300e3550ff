// taskhook/verify on real webhooks from a running gateway, cross-checked with the
// `standardwebhooks` package both ways; forgeries, stale timestamps and wrong secrets
// refused; both secrets of a rotation accepted.
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { verifyWebhook, WebhookVerificationError, type WebhookEvent } from 'taskhook/verify';
import { startStack, type Stack } from './support/gateway.js';
import type { Received } from './support/receiver.js';
import { TEST_SIGNING_SECRET } from './support/env.js';

let s: Stack;
beforeAll(async () => {
  s = await startStack();
});
afterAll(async () => {
  await s?.close();
});

/** Registers a task that ends quickly and returns the webhook the receiver got for it. */
async function webhookFor(outcome: 'completed' | 'failed' = 'completed'): Promise<Received> {
  const task = s.upstream.createTask({ outcome, durationMs: 150 });
  const res = await s.api('/v1/watches', { body: { task_id: task.task_id, callback_url: `${s.receiver.url}/verify`, metadata: { k: 'v' } } });
  expect(res.status).toBe(201);
  const all = await s.receiver.waitFor((r) => r.some((x) => x.json?.watch_id === res.json.id), 15_000);
  return all.find((x) => x.json?.watch_id === res.json.id)!;
}

const tsOf = (hook: Received) => Number(hook.headers['webhook-timestamp']) * 1000;

function rejection(fn: () => unknown): WebhookVerificationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WebhookVerificationError);
    return err as WebhookVerificationError;
  }
  throw new Error('expected verifyWebhook to throw');
}

describe('verifyWebhook', () => {
  let hook: Received;
  beforeAll(async () => {
    hook = await webhookFor();
  });

  it('accepts a webhook from the gateway and returns the typed event, as standardwebhooks does', () => {
    const event = verifyWebhook(hook.body, hook.headers, TEST_SIGNING_SECRET);
    expect(event).toEqual(hook.json);
    expect(event).toMatchObject({ type: 'task.completed', metadata: { k: 'v' }, data: { status: 'completed' } });
    expectTypeOf(event).toEqualTypeOf<WebhookEvent>();
    if (event.type === 'watch.failed') expectTypeOf(event.data.error.code).toEqualTypeOf<'task_not_found' | 'upstream_unauthorized' | 'watch_expired'>();
    expect(new Webhook(TEST_SIGNING_SECRET).verify(hook.body, hook.headers as Record<string, string>)).toEqual(event);
  });

  it('takes the body as a Buffer and the headers as a Headers object', () => {
    const headers = new Headers(hook.headers as Record<string, string>);
    expect(verifyWebhook(Buffer.from(hook.body), headers, TEST_SIGNING_SECRET)).toEqual(hook.json);
    const upper = Object.fromEntries(Object.entries(hook.headers).map(([k, v]) => [k.toUpperCase(), v]));
    expect(verifyWebhook(new TextEncoder().encode(hook.body), upper, [TEST_SIGNING_SECRET])).toEqual(hook.json);
  });

  it('accepts what standardwebhooks signs', () => {
    const wh = new Webhook(TEST_SIGNING_SECRET);
    const body = JSON.stringify({ type: 'task.cancelled', timestamp: new Date().toISOString(), watch_id: 'wat_x', metadata: {}, data: { task_id: 't', status: 'cancelled' } });
    const at = new Date();
    const headers = { 'webhook-id': 'msg_cross', 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': wh.sign('msg_cross', at, body) };
    expect(verifyWebhook(body, headers, TEST_SIGNING_SECRET)).toEqual(JSON.parse(body));
  });

  it('refuses a tampered body, a wrong secret, a changed id and missing headers', () => {
    const tampered = hook.body.replace('"completed"', '"failed"');
    expect(tampered).not.toBe(hook.body);
    expect(rejection(() => verifyWebhook(tampered, hook.headers, TEST_SIGNING_SECRET)).reason).toBe('no_matching_signature');
    expect(rejection(() => verifyWebhook(`${hook.body} `, hook.headers, TEST_SIGNING_SECRET)).reason).toBe('no_matching_signature');
    expect(rejection(() => verifyWebhook(hook.body, hook.headers, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx')).reason).toBe('no_matching_signature');
    expect(rejection(() => verifyWebhook(hook.body, { ...hook.headers, 'webhook-id': 'msg_other' }, TEST_SIGNING_SECRET)).reason).toBe('no_matching_signature');
    expect(rejection(() => verifyWebhook(hook.body, { ...hook.headers, 'webhook-signature': 'v2,abc v1,' }, TEST_SIGNING_SECRET)).reason).toBe('no_matching_signature');
    const { 'webhook-signature': _, ...unsigned } = hook.headers;
    const missing = rejection(() => verifyWebhook(hook.body, unsigned, TEST_SIGNING_SECRET));
    expect(missing.reason).toBe('missing_header');
    expect(missing.message).toContain('webhook-signature');
    expect(() => verifyWebhook(hook.body, hook.headers, 'not base64!')).toThrow(TypeError);
    expect(() => verifyWebhook(hook.body, hook.headers, [])).toThrow(TypeError);
  });

  it('refuses a timestamp outside the tolerance, either way', () => {
    const sent = tsOf(hook);
    expect(verifyWebhook(hook.body, hook.headers, TEST_SIGNING_SECRET, { now: sent + 299_000 })).toEqual(hook.json);
    expect(rejection(() => verifyWebhook(hook.body, hook.headers, TEST_SIGNING_SECRET, { now: sent + 301_000 })).reason).toBe('timestamp_too_old');
    expect(rejection(() => verifyWebhook(hook.body, hook.headers, TEST_SIGNING_SECRET, { now: new Date(sent - 301_000) })).reason).toBe('timestamp_in_future');
    expect(rejection(() => verifyWebhook(hook.body, hook.headers, TEST_SIGNING_SECRET, { now: sent + 11_000, toleranceSec: 10 })).reason).toBe('timestamp_too_old');
    // The signature covers the timestamp: moving it into the window breaks the signature.
    const moved = { ...hook.headers, 'webhook-timestamp': String(sent / 1000 + 1) };
    expect(rejection(() => verifyWebhook(hook.body, moved, TEST_SIGNING_SECRET, { now: sent })).reason).toBe('no_matching_signature');
    expect(rejection(() => verifyWebhook(hook.body, { ...hook.headers, 'webhook-timestamp': '1e9' }, TEST_SIGNING_SECRET)).reason).toBe('bad_timestamp');
  });

  it('accepts both secrets during a rotation, and refuses the old one after the new alone signs', async () => {
    const rotated = await s.api('/v1/tenant/signing-secret/rotate', { method: 'POST' });
    expect(rotated.status).toBe(200);
    const fresh: string = rotated.json.signing_secret;
    const during = await webhookFor('failed');
    const signatures = String(during.headers['webhook-signature']).split(' ');
    expect(signatures).toHaveLength(2);

    // A receiver configured with both secrets, in either order, or with either one alone.
    for (const secrets of [[TEST_SIGNING_SECRET, fresh], [fresh, TEST_SIGNING_SECRET], [fresh], [TEST_SIGNING_SECRET]]) {
      expect(verifyWebhook(during.body, during.headers, secrets)).toMatchObject({ type: 'task.failed', data: { error: { code: expect.any(String) } } });
    }
    expect(new Webhook(fresh).verify(during.body, during.headers as Record<string, string>)).toEqual(during.json);
    expect(rejection(() => verifyWebhook(during.body, during.headers, ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx'])).reason).toBe('no_matching_signature');

    // With only the new secret's signature left (the overlap over), the old secret no longer verifies.
    const onlyNew = { ...during.headers, 'webhook-signature': signatures.find((sig) => safeVerify(during, fresh, sig))! };
    expect(verifyWebhook(during.body, onlyNew, [TEST_SIGNING_SECRET, fresh])).toEqual(during.json);
    expect(rejection(() => verifyWebhook(during.body, onlyNew, TEST_SIGNING_SECRET)).reason).toBe('no_matching_signature');
  });
});

function safeVerify(hook: Received, secret: string, signature: string): boolean {
  try {
    verifyWebhook(hook.body, { ...hook.headers, 'webhook-signature': signature }, secret);
    return true;
  } catch {
    return false;
  }
}
