// The snapshot hash is over the answer's bytes (the poller compares before decoding); for an
// ASCII body it is the value earlier releases computed over the string, so hashes stored by
// them stay valid across an upgrade (the constants are the previous implementation's output).
import { describe, expect, it } from 'vitest';
import { snapshotHash, snapshotHashBytes } from '../src/poller/snapshot-hash.js';

describe('snapshotHash', () => {
  it('is the previous release’s value for ASCII answers', () => {
    expect(snapshotHash('{"task_id":"t-1","status":"processing","progress":0.5}')).toBe(786373000405827);
    expect(snapshotHash('')).toBe(3338908027751811);
  });
  it('hashes the UTF-8 bytes: the text and its bytes agree, and a one-byte change differs', () => {
    const text = '{"task_id":"t-2","status":"pending","note":"größe ✓"}';
    const bytes = Buffer.from(text, 'utf8');
    expect(snapshotHashBytes(bytes)).toBe(snapshotHash(text));
    const changed = Buffer.from(bytes);
    changed[changed.length - 2] = changed[changed.length - 2]! ^ 1;
    expect(snapshotHashBytes(changed)).not.toBe(snapshotHash(text));
    expect(Number.isSafeInteger(snapshotHash(text))).toBe(true);
  });
});
