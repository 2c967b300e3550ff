// What the deliverer records after an attempt, pure: the delivery's next state (from
// retry.ts), the error kept for it, and the excerpt of the answer that is stored.
import { decideAfterAttempt } from './retry.js';
import type { SendResult } from './send.js';
import type { DeliveryOutcome } from '../metrics.js';

/** How much of a receiver's answer delivery_attempts keeps (UTF-8 bytes). */
export const EXCERPT_STORED = 1024;

export const DELIVERY_OUTCOMES = { delivered: 'delivered', pending: 'retry', undeliverable: 'undeliverable' } as const satisfies Record<string, DeliveryOutcome>;
export const ATTEMPT_MESSAGES = {
  delivered: 'webhook delivered',
  pending: 'webhook attempt failed; will retry',
  undeliverable: 'webhook undeliverable; giving up',
} as const;

/**
 * What is kept of a receiver's answer in delivery_attempts: at most `maxBytes` of
 * UTF-8, cut at a character boundary, without NUL characters (Postgres text refuses
 * them, and one would fail the whole completion batch it is written in).
 */
export function storedExcerpt(text: string, maxBytes = EXCERPT_STORED): string {
  const bytes = Buffer.from(text.replace(/\u0000/g, ''), 'utf8');
  if (bytes.length <= maxBytes) return bytes.toString('utf8');
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // don't split a multi-byte character
  return bytes.subarray(0, end).toString('utf8');
}

export interface AttemptRecord {
  status: 'delivered' | 'pending' | 'undeliverable';
  retryStep: number;
  delayMs: number;
  responseStatus: number | null;
  error: string | null;
  lastError: string | null;
  excerpt: string | null;
}

export function recordFor(result: SendResult, retryStep: number, scheduleMs: readonly number[], random: number): AttemptRecord {
  const next = decideAfterAttempt(result.outcome, retryStep, scheduleMs, random);
  const responseStatus = result.outcome.kind === 'response' ? result.outcome.status : null;
  const error =
    result.outcome.kind === 'error'
      ? result.outcome.message
      : next.status === 'delivered'
        ? null
        : `receiver answered HTTP ${result.outcome.status}`;
  return {
    status: next.status,
    retryStep: next.status === 'pending' ? next.retryStep : retryStep,
    delayMs: next.status === 'pending' ? next.delayMs : 0,
    responseStatus,
    error,
    lastError: next.status === 'undeliverable' ? `${error ?? ''}; ${next.reason}` : error,
    excerpt: result.excerpt === undefined ? null : storedExcerpt(result.excerpt),
  };
}
