import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { sign, signatureHeader } from '../src/delivery/sign.js';
import { newSigningSecret } from '../src/tenancy/keys.js';

// https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md (test vector)
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  msgId: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  payload: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

const nowSec = () => Math.floor(Date.now() / 1000);
const headers = (id: string, ts: number, sig: string) => ({ 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': sig });
const otherSecret = newSigningSecret();

describe('sign', () => {
  it('matches the Standard Webhooks published test vector', () => {
    expect(sign(VECTOR.secret, VECTOR.msgId, VECTOR.timestamp, VECTOR.payload)).toBe(VECTOR.signature);
    expect(signatureHeader([VECTOR.secret], VECTOR.msgId, VECTOR.timestamp, VECTOR.payload)).toBe(VECTOR.signature);
  });

  it('agrees with the standardwebhooks package signer on the test vector', () => {
    const wh = new Webhook(VECTOR.secret);
    expect(wh.sign(VECTOR.msgId, new Date(VECTOR.timestamp * 1000), VECTOR.payload)).toBe(VECTOR.signature);
  });

  it.each([
    { name: 'changed id', id: 'msg_other', ts: VECTOR.timestamp, body: VECTOR.payload },
    { name: 'changed timestamp', id: VECTOR.msgId, ts: VECTOR.timestamp + 1, body: VECTOR.payload },
    { name: 'changed body', id: VECTOR.msgId, ts: VECTOR.timestamp, body: '{"test": 2432232315}' },
    { name: 'reformatted body', id: VECTOR.msgId, ts: VECTOR.timestamp, body: '{"test":2432232314}' },
  ])('$name gives a different signature', ({ id, ts, body }) => {
    expect(sign(VECTOR.secret, id, ts, body)).not.toBe(VECTOR.signature);
  });

  const bodies = [
    { name: 'the test vector payload', body: VECTOR.payload },
    { name: 'a webhook body', body: JSON.stringify({ type: 'task.completed', timestamp: new Date().toISOString(), watch_id: 'wat_x', metadata: {}, data: { task_id: 't1', status: 'completed', audioUrl: 'https://x/y.wav' } }) },
    { name: 'unicode', body: JSON.stringify({ text: 'héllo 🌍 — ü', emoji: '\u{1F600}' }) },
    { name: 'an empty object', body: '{}' },
    { name: 'a 60 KiB body', body: JSON.stringify({ blob: 'x'.repeat(60 * 1024) }) },
  ];
  const secrets = [
    { label: 'vector secret', secret: VECTOR.secret },
    { label: 'generated secret', secret: newSigningSecret() },
  ];

  it.each(bodies.flatMap((b) => secrets.map((s) => ({ ...b, ...s }))))(
    'standardwebhooks verifies $name signed with the $label',
    ({ body, secret }) => {
      const ts = nowSec();
      const id = `msg_${randomBytes(8).toString('hex')}`;
      const sig = signatureHeader([secret], id, ts, body);
      expect(new Webhook(secret).verify(body, headers(id, ts, sig))).toEqual(JSON.parse(body));
      expect(() => new Webhook(otherSecret).verify(body, headers(id, ts, sig))).toThrow();
    },
  );

  it('the package rejects the test vector for its stale timestamp (so the cross-check above uses a current one)', () => {
    expect(() => new Webhook(VECTOR.secret).verify(VECTOR.payload, headers(VECTOR.msgId, VECTOR.timestamp, VECTOR.signature))).toThrow(
      /timestamp/i,
    );
  });

  const tampered = [
    { name: 'a changed value', mutate: (b: string) => b.replace('2432232314', '2432232315') },
    { name: 'an appended space', mutate: (b: string) => `${b} ` },
    { name: 'a removed space', mutate: (b: string) => b.replace(': ', ':') },
    { name: 'an empty body', mutate: () => '' },
  ];
  it.each(tampered)('a tampered body ($name) is rejected', ({ mutate }) => {
    const ts = nowSec();
    const sig = signatureHeader([VECTOR.secret], VECTOR.msgId, ts, VECTOR.payload);
    expect(() => new Webhook(VECTOR.secret).verify(VECTOR.payload, headers(VECTOR.msgId, ts, sig))).not.toThrow();
    expect(() => new Webhook(VECTOR.secret).verify(mutate(VECTOR.payload), headers(VECTOR.msgId, ts, sig))).toThrow();
  });

  it.each([
    { name: 'a different id', h: (ts: number, sig: string) => headers('msg_other', ts, sig) },
    { name: 'a different timestamp', h: (ts: number, sig: string) => headers(VECTOR.msgId, ts - 1, sig) },
  ])('a signature replayed with $name is rejected', ({ h }) => {
    const ts = nowSec();
    const sig = signatureHeader([VECTOR.secret], VECTOR.msgId, ts, VECTOR.payload);
    expect(() => new Webhook(VECTOR.secret).verify(VECTOR.payload, h(ts, sig))).toThrow();
  });
});

describe('signatureHeader during rotation', () => {
  const oldSecret = VECTOR.secret;
  const newSecret = newSigningSecret();
  const third = newSigningSecret();

  it('two secrets give two space-separated v1 signatures, in order', () => {
    const ts = nowSec();
    const header = signatureHeader([newSecret, oldSecret], VECTOR.msgId, ts, VECTOR.payload);
    const parts = header.split(' ');
    expect(parts).toHaveLength(2);
    expect(parts[0]).toBe(sign(newSecret, VECTOR.msgId, ts, VECTOR.payload));
    expect(parts[1]).toBe(sign(oldSecret, VECTOR.msgId, ts, VECTOR.payload));
    for (const p of parts) expect(p).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(signatureHeader([VECTOR.secret], VECTOR.msgId, VECTOR.timestamp, VECTOR.payload)).toBe(VECTOR.signature);
  });

  it.each([
    { label: 'the new secret', secret: newSecret, accepted: true },
    { label: 'the old secret', secret: oldSecret, accepted: true },
    { label: 'an unrelated secret', secret: third, accepted: false },
  ])('the package verifying with $label alone → accepted: $accepted', ({ secret, accepted }) => {
    const ts = nowSec();
    const header = signatureHeader([newSecret, oldSecret], VECTOR.msgId, ts, VECTOR.payload);
    const verify = () => new Webhook(secret).verify(VECTOR.payload, headers(VECTOR.msgId, ts, header));
    if (accepted) expect(verify()).toEqual(JSON.parse(VECTOR.payload));
    else expect(verify).toThrow();
  });

  it('a tampered body is rejected by either secret', () => {
    const ts = nowSec();
    const header = signatureHeader([newSecret, oldSecret], VECTOR.msgId, ts, VECTOR.payload);
    for (const s of [newSecret, oldSecret]) {
      expect(() => new Webhook(s).verify('{"test": 1}', headers(VECTOR.msgId, ts, header))).toThrow();
    }
  });

  it('no secrets gives an empty header', () => {
    expect(signatureHeader([], VECTOR.msgId, VECTOR.timestamp, VECTOR.payload)).toBe('');
  });
});
