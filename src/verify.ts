// taskhook/verify: check a webhook's Standard Webhooks signature and timestamp and
// return the parsed event. Several secrets (rotation) and several signatures in the
// header are accepted: one match is enough. No dependencies beyond node:crypto.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { WebhookEvent } from './api-types.js';

export type { TaskCancelledEvent, TaskCompletedEvent, TaskFailedEvent, TaskProcessingEvent, WatchFailedEvent, WebhookEvent, WebhookEventType } from './api-types.js';

export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  /** how far webhook-timestamp may be from now, either way; default 300 s */
  toleranceSec?: number;
  /** the current time (a Date or ms since the epoch); default now */
  now?: Date | number;
}

/** The webhook is not authentic or not fresh; `reason` says which check failed. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
  constructor(
    readonly reason: 'missing_header' | 'bad_timestamp' | 'timestamp_too_old' | 'timestamp_in_future' | 'no_matching_signature' | 'bad_body',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Verifies `body` (the raw request body, exactly as received: don't re-serialise parsed
 * JSON) against the webhook-id, webhook-timestamp and webhook-signature headers with
 * any of `secret` (`whsec_…`; pass both during a rotation) and returns the event.
 * Throws WebhookVerificationError otherwise, and TypeError for an unusable secret.
 */
export function verifyWebhook<E = WebhookEvent>(
  body: string | Buffer | Uint8Array,
  headers: WebhookHeaders,
  secret: string | readonly string[],
  { toleranceSec = 300, now = Date.now() }: VerifyOptions = {},
): E {
  const keys = (typeof secret === 'string' ? [secret] : secret).map(secretKey);
  if (keys.length === 0) throw new TypeError('verifyWebhook: give at least one signing secret');
  const msgId = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');

  if (!/^\d{1,15}$/.test(timestamp)) throw new WebhookVerificationError('bad_timestamp', `webhook-timestamp is not Unix seconds: ${JSON.stringify(timestamp.slice(0, 40))}`);
  const nowSec = Math.floor((typeof now === 'number' ? now : now.getTime()) / 1000);
  const age = nowSec - Number(timestamp);
  if (age > toleranceSec) throw new WebhookVerificationError('timestamp_too_old', `webhook-timestamp is ${age} s old; at most ${toleranceSec} s is accepted`);
  if (age < -toleranceSec) throw new WebhookVerificationError('timestamp_in_future', `webhook-timestamp is ${-age} s in the future; at most ${toleranceSec} s is accepted`);

  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const expected = keys.map((key) => createHmac('sha256', key).update(`${msgId}.${timestamp}.`).update(bytes).digest());
  const matched = signatures.split(' ').some((sig) => {
    const comma = sig.indexOf(',');
    if (comma < 0 || sig.slice(0, comma) !== 'v1') return false;
    const given = Buffer.from(sig.slice(comma + 1), 'base64');
    // Compare every expected MAC (no early exit on which secret matched).
    return expected.map((mac) => given.length === mac.length && timingSafeEqual(given, mac)).includes(true);
  });
  if (!matched) throw new WebhookVerificationError('no_matching_signature', 'no webhook-signature matches the body with the given secret(s)');

  try {
    return JSON.parse(bytes.toString('utf8')) as E;
  } catch {
    throw new WebhookVerificationError('bad_body', 'the signed body is not JSON');
  }
}

/** The HMAC key: the base64 after whsec_ (a bare base64 secret is accepted too). */
function secretKey(secret: string): Buffer {
  const b64 = secret.startsWith('whsec_') ? secret.slice(6) : secret;
  const key = Buffer.from(b64, 'base64');
  if (key.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new TypeError('verifyWebhook: a signing secret must be whsec_ followed by base64');
  return key;
}

function header(headers: WebhookHeaders, name: string): string {
  let value: string | string[] | null | undefined;
  if (typeof (headers as Headers).get === 'function') value = (headers as Headers).get(name);
  else {
    const h = headers as Record<string, string | string[] | undefined>;
    value = h[name] ?? Object.entries(h).find(([k]) => k.toLowerCase() === name)?.[1];
  }
  const v = Array.isArray(value) ? value.join(' ') : value;
  if (!v) throw new WebhookVerificationError('missing_header', `the ${name} header is missing`);
  return v.trim();
}
