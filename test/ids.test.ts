import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { constantTimeEqual, hashApiKey, newApiKey, newId, newSigningSecret } from '../src/tenancy/keys.js';
import { createSecretBox, keyId } from '../src/tenancy/secret-box.js';

describe('newId', () => {
  it.each(['wat', 'msg', 'ten', 'del'])('has the %s_ prefix and 26 lowercase Crockford base32 chars', (prefix) => {
    const id = newId(prefix);
    expect(id).toMatch(new RegExp(`^${prefix}_[0-9abcdefghjkmnpqrstvwxyz]{26}$`));
  });

  it.each([
    { a: 0, b: 1 },
    { a: 1_000, b: 1_001 },
    { a: Date.parse('2026-01-01T00:00:00Z'), b: Date.parse('2026-01-01T00:00:00.001Z') },
    { a: Date.parse('2026-01-01T00:00:00Z'), b: Date.parse('2027-01-01T00:00:00Z') },
    { a: 31, b: 32 },
    { a: 2 ** 32 - 1, b: 2 ** 32 },
    { a: 2 ** 47, b: 2 ** 48 - 1 },
  ])('an id made at $a sorts before one made at $b', ({ a, b }) => {
    for (let i = 0; i < 50; i++) {
      const ia = newId('wat', a);
      const ib = newId('wat', b);
      expect(ia < ib).toBe(true);
      expect([ib, ia].sort()).toEqual([ia, ib]);
    }
  });

  it('ids over a range of times sort in time order', () => {
    const start = Date.parse('2026-11-28T12:00:00Z');
    const times = Array.from({ length: 500 }, (_, i) => start + i * 7_919);
    const ids = times.map((t) => newId('wat', t));
    const shuffled = [...ids].sort(() => Math.random() - 0.5);
    expect(shuffled.sort()).toEqual(ids);
  });

  it('the time part encodes the millisecond', () => {
    const t = Date.parse('2026-11-28T12:00:00.123Z');
    const a = newId('x', t).slice(2, 12);
    const b = newId('x', t).slice(2, 12);
    expect(a).toBe(b);
    const B32 = '0123456789abcdefghjkmnpqrstvwxyz';
    expect([...a].reduce((acc, c) => acc * 32 + B32.indexOf(c), 0)).toBe(t);
  });

  it('is unique: 20 000 ids in the same millisecond never collide', () => {
    const now = Date.now();
    const ids = new Set(Array.from({ length: 20_000 }, () => newId('wat', now)));
    expect(ids.size).toBe(20_000);
  });

  it('the random part uses the whole alphabet (80 bits, not a constant tail)', () => {
    const tails = Array.from({ length: 2_000 }, () => newId('wat', 0).slice(-16));
    const seen = new Set(tails.join(''));
    expect(seen.size).toBe(32);
    // the last character also varies (no fixed padding bits)
    expect(new Set(tails.map((t) => t.at(-1))).size).toBeGreaterThan(16);
  });
});

describe('gateway keys and signing secrets', () => {
  it.each(Array.from({ length: 5 }, (_, i) => i))('api key #%i has the thk_ prefix and ≥ 128 bits of entropy', () => {
    const key = newApiKey();
    expect(key).toMatch(/^thk_[A-Za-z0-9_-]{22,}$/);
    expect(Buffer.from(key.slice(4), 'base64url').length * 8).toBeGreaterThanOrEqual(128);
  });

  it('api keys are unique', () => {
    expect(new Set(Array.from({ length: 5_000 }, newApiKey)).size).toBe(5_000);
  });

  it('signing secrets are whsec_ + ≥ 24 bytes of base64', () => {
    const s = newSigningSecret();
    expect(s).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    expect(Buffer.from(s.slice(6), 'base64').length).toBeGreaterThanOrEqual(24);
  });

  it.each([
    { a: 'thk_abc', b: 'thk_abc', equal: true },
    { a: 'thk_abc', b: 'thk_abd', equal: false },
    { a: 'thk_abc', b: 'thk_abcd', equal: false },
    { a: '', b: '', equal: true },
  ])('constantTimeEqual($a, $b) → $equal', ({ a, b, equal }) => {
    expect(constantTimeEqual(a, b)).toBe(equal);
  });

  it('hashApiKey is a stable sha256 hex digest that is not the key', () => {
    const key = newApiKey();
    expect(hashApiKey(key)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiKey(key)).toBe(hashApiKey(key));
    expect(hashApiKey(key)).not.toContain(key.slice(4));
  });
});

describe('secret box', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const box = createSecretBox([k1]);

  const flipByte = (sealed: string, part: number, index = 0) => {
    const parts = sealed.split(':');
    const bytes = Buffer.from(parts[part]!, 'base64');
    bytes[index % bytes.length] = bytes[index % bytes.length]! ^ 0x01;
    parts[part] = bytes.toString('base64');
    return parts.join(':');
  };
  const replacePart = (sealed: string, part: number, value: string) => {
    const parts = sealed.split(':');
    parts[part] = value;
    return parts.join(':');
  };

  it.each(['sk_live_abc123', '', 'ünïcødé 🔑', 'x'.repeat(4096), 'a:b:c:d'])('round-trips %j', (plaintext) => {
    const sealed = box.seal(plaintext, 'ten_1');
    expect(sealed).not.toContain(plaintext || '\u0000');
    expect(box.open(sealed, 'ten_1')).toBe(plaintext);
  });

  it('sealing the same plaintext twice gives different ciphertexts', () => {
    expect(box.seal('sk_live_abc123', 'ten_1')).not.toBe(box.seal('sk_live_abc123', 'ten_1'));
  });

  it('the sealed form carries the key id', () => {
    expect(box.seal('x', 'ten_1').split(':')[0]).toBe(keyId(k1));
  });

  const sealed = box.seal('sk_live_abc123', 'ten_1');
  const otherKeySealed = createSecretBox([k2]).seal('sk_live_abc123', 'ten_1');
  it.each([
    { name: 'another tenant id', value: sealed, tenant: 'ten_2' },
    { name: 'an empty tenant id', value: sealed, tenant: '' },
    { name: 'a tenant id prefix', value: sealed, tenant: 'ten_' },
    { name: 'a tampered ciphertext (first byte)', value: flipByte(sealed, 3, 0), tenant: 'ten_1' },
    { name: 'a tampered ciphertext (last byte)', value: flipByte(sealed, 3, 13), tenant: 'ten_1' },
    { name: 'a truncated ciphertext', value: replacePart(sealed, 3, Buffer.from(sealed.split(':')[3]!, 'base64').subarray(0, 5).toString('base64')), tenant: 'ten_1' },
    { name: 'an empty ciphertext', value: replacePart(sealed, 3, ''), tenant: 'ten_1' },
    { name: 'a tampered tag', value: flipByte(sealed, 2, 5), tenant: 'ten_1' },
    { name: 'a truncated tag (4-byte prefix of the real one)', value: replacePart(sealed, 2, Buffer.from(sealed.split(':')[2]!, 'base64').subarray(0, 4).toString('base64')), tenant: 'ten_1' },
    { name: 'a truncated tag (12-byte prefix of the real one)', value: replacePart(sealed, 2, Buffer.from(sealed.split(':')[2]!, 'base64').subarray(0, 12).toString('base64')), tenant: 'ten_1' },
    { name: 'an empty tag', value: replacePart(sealed, 2, ''), tenant: 'ten_1' },
    { name: 'a tampered iv', value: flipByte(sealed, 1, 3), tenant: 'ten_1' },
    { name: 'an empty iv', value: replacePart(sealed, 1, ''), tenant: 'ten_1' },
    { name: 'an unknown key id', value: otherKeySealed, tenant: 'ten_1' },
    { name: 'a key id swapped to an unknown one', value: replacePart(sealed, 0, keyId(k2)), tenant: 'ten_1' },
    { name: 'a missing key id', value: replacePart(sealed, 0, ''), tenant: 'ten_1' },
    { name: 'garbage', value: 'not-a-sealed-value', tenant: 'ten_1' },
    { name: 'an empty string', value: '', tenant: 'ten_1' },
  ])('fails (throws) when opened with $name', ({ value, tenant }) => {
    let returned: unknown = '<threw>';
    expect(() => {
      returned = box.open(value, tenant);
    }).toThrow();
    expect(returned).toBe('<threw>');
  });

  it('a two-key box seals with the first key and opens what the old key sealed', () => {
    const oldBox = createSecretBox([k1]);
    const rotated = createSecretBox([k2, k1]);
    const old = oldBox.seal('sk_old', 'ten_1');
    expect(rotated.open(old, 'ten_1')).toBe('sk_old');
    const fresh = rotated.seal('sk_new', 'ten_1');
    expect(fresh.split(':')[0]).toBe(keyId(k2));
    expect(rotated.open(fresh, 'ten_1')).toBe('sk_new');
    expect(() => oldBox.open(fresh, 'ten_1')).toThrow();
    expect(() => rotated.open(old, 'ten_2')).toThrow();
  });

  it.each([
    { name: 'no keys', keys: [] as Buffer[] },
    { name: 'a 16-byte key', keys: [randomBytes(16)] },
    { name: 'a good and a 31-byte key', keys: [randomBytes(32), randomBytes(31)] },
  ])('refuses to be created with $name', ({ keys }) => {
    expect(() => createSecretBox(keys)).toThrow();
  });
});
