// Upstream API keys at rest: AES-256-GCM with a random 96-bit IV, the key id beside
// the ciphertext, and the tenant id bound as additional data so a ciphertext copied
// onto another tenant's row fails to open instead of yielding a key.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

export interface SecretBox {
  /** id of the key that seals (the first configured); the first part of every sealed value */
  readonly currentKeyId: string;
  seal(plaintext: string, tenantId: string): string;
  open(sealed: string, tenantId: string): string;
}

export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/** keys[0] seals; every key in the list can open (for rotation). */
export function createSecretBox(keys: Buffer[]): SecretBox {
  if (keys.length === 0 || keys.some((k) => k.length !== 32)) throw new Error('encryption keys must be 32 bytes');
  const byId = new Map(keys.map((k) => [keyId(k), k]));
  const current = keys[0]!;
  return {
    currentKeyId: keyId(current),
    seal(plaintext, tenantId) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', current, iv);
      cipher.setAAD(Buffer.from(tenantId));
      const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return [keyId(current), iv.toString('base64'), cipher.getAuthTag().toString('base64'), data.toString('base64')].join(':');
    },
    open(sealed, tenantId) {
      const [id, iv, tag, data] = sealed.split(':');
      const key = id ? byId.get(id) : undefined;
      if (!key || !iv || !tag || data === undefined) throw new Error('upstream key ciphertext cannot be opened with the configured encryption keys');
      try {
        // authTagLength pins the full 16-byte tag: otherwise GCM accepts a truncated
        // (down to 4-byte) prefix of the real tag, weakening authentication.
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'), { authTagLength: 16 });
        decipher.setAAD(Buffer.from(tenantId));
        decipher.setAuthTag(Buffer.from(tag, 'base64'));
        return Buffer.concat([decipher.update(Buffer.from(data, 'base64')), decipher.final()]).toString('utf8');
      } catch {
        throw new Error('upstream key ciphertext failed authentication (wrong key or wrong tenant)');
      }
    },
  };
}
