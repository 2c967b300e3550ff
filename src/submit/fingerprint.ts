// The identity of a submit request for its Idempotency-Key: SHA-256 over a canonical
// JSON of everything that changes what it does (path, body, callback_url, metadata,
// events). Object keys are sorted, so the same request re-serialised by another
// client library in another key order is the same request. Pure.
import { createHash } from 'node:crypto';

/** Sorted-key JSON. Callers bound the depth first (src/submit/limits.ts). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export function requestFingerprint(r: { path: string; body: unknown; callback_url: string; metadata: unknown; events: string[] }): string {
  return createHash('sha256')
    .update(canonicalJson({ path: r.path, body: r.body, callback_url: r.callback_url, metadata: r.metadata, events: [...r.events].sort() }))
    .digest('hex');
}
