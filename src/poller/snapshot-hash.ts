// A fast 53-bit hash (cyrb53, public domain, by bryc) of upstream's raw answer bytes: tells
// whether the answer changed since the snapshot we stored, before it is decoded or parsed,
// without sending the snapshot back to Postgres to compare there. Not cryptographic; a
// collision (≈ 2⁻⁵³ per poll) would only leave the previous snapshot in place until the
// task's next change. Over the UTF-8 bytes: for an ASCII body the same value as the
// per-UTF-16-unit hash of earlier releases (whose stored hashes stay valid).
export function snapshotHashBytes(bytes: Uint8Array, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < bytes.length; i++) {
    const ch = bytes[i]!;
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** The hash of a text as upstream would have sent it (UTF-8). */
export const snapshotHash = (text: string, seed = 0): number => snapshotHashBytes(Buffer.from(text, 'utf8'), seed);
