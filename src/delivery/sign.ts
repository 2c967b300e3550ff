// Standard Webhooks signatures: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">
// keyed by the bytes after whsec_. Pure: id, time and body are all arguments.
import { createHmac } from 'node:crypto';

export function sign(secret: string, msgId: string, timestampSec: number, body: string): string {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  const mac = createHmac('sha256', key).update(`${msgId}.${timestampSec}.${body}`).digest('base64');
  return `v1,${mac}`;
}

/** One signature per secret, space-separated: receivers accept if any matches (rotation). */
export function signatureHeader(secrets: readonly string[], msgId: string, timestampSec: number, body: string): string {
  return secrets.map((s) => sign(s, msgId, timestampSec, body)).join(' ');
}
