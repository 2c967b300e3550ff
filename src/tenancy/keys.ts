// Gateway keys, signing secrets and ids: generated with enough entropy, recognisable
// by prefix, and (for gateway keys) only ever stored as a hash.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export function newApiKey(): string {
  return `thk_${randomBytes(24).toString('base64url')}`;
}

export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

// Ids are minted on every registration and outbox row: take their random bytes from a
// pooled buffer (one getrandom call per 409 ids) rather than a call per id.
const ID_POOL_BYTES = 4096;
let idPool = Buffer.alloc(0);
let idPoolAt = 0;
function idRandom(n: number): Buffer {
  if (idPoolAt + n > idPool.length) {
    idPool = randomBytes(ID_POOL_BYTES);
    idPoolAt = 0;
  }
  const out = idPool.subarray(idPoolAt, idPoolAt + n);
  idPoolAt += n;
  return out;
}

/**
 * Sortable ids: 48-bit millisecond time then 80 random bits, Crockford base32,
 * so ids sort by creation and a listing cursor can be an id.
 */
const B32 = '0123456789abcdefghjkmnpqrstvwxyz';
export function newId(prefix: string, now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = B32[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  const rnd = idRandom(10);
  let rand = '';
  let acc = 0;
  let bits = 0;
  for (const byte of rnd) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      rand += B32[(acc >> (bits - 5)) & 31]!;
      bits -= 5;
    }
  }
  return `${prefix}_${time}${rand}`;
}
