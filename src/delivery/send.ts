// One delivery attempt: POST the exact body with Standard Webhooks headers through
// the pinned (SSRF-safe) agent, within one total deadline, reading at most 4 KiB of
// the answer. Connection failures before any response get a few quick in-process
// retries (p-retry) inside that same deadline; everything else is the caller's call.
import pRetry, { AbortError } from 'p-retry';
import { request, type Dispatcher } from 'undici';
import { signatureHeader } from './sign.js';
import { describeError } from '../upstream/client.js';
import { parseRetryAfter } from '../upstream/schedule.js';
import type { AttemptOutcome } from './retry.js';

export const RESPONSE_EXCERPT_BYTES = 4096;
/**
 * Connection-level failures worth an immediate retry inside the same attempt: the
 * connect failed, or the socket died under us (typically a keep-alive connection the
 * receiver had just closed). The latter may have delivered the request already; the
 * retry carries the same webhook-id, so at worst it is a duplicate receivers dedupe.
 */
const QUICK_RETRY_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);
/**
 * A quick retry starts only while at least this share of the attempt's deadline is left,
 * read from the clock (not from the deadline's timer: in a process starved of CPU the
 * retry's timer can fire before an already-expired deadline's does). A retry sent near
 * the deadline is cut off while the receiver may already be handling it: the attempt is
 * recorded as failed, the event sent again later, and the receiver sees a duplicate that
 * no crash explains (found by the soak: bench/README.md, "Soak").
 */
const QUICK_RETRY_MIN_LEFT = 0.5;

export interface SendInput {
  url: string;
  msgId: string;
  body: string;
  secrets: readonly string[];
}

export interface SendResult {
  outcome: AttemptOutcome;
  durationMs: number;
  excerpt: string | undefined;
}

export interface Sender {
  send(input: SendInput): Promise<SendResult>;
}

export function createSender(o: {
  dispatcher: Dispatcher;
  timeoutMs: number;
  userAgent: string;
  now?: () => number;
  quickRetries?: number;
}): Sender {
  const now = o.now ?? Date.now;
  return {
    async send({ url, msgId, body, secrets }) {
      const started = performance.now();
      const deadline = AbortSignal.timeout(o.timeoutMs);
      let lastError: Error | undefined;
      const timestamp = Math.floor(now() / 1000);
      const headers = {
        'content-type': 'application/json',
        'user-agent': o.userAgent,
        'webhook-id': msgId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signatureHeader(secrets, msgId, timestamp, body),
      };
      try {
        const res = await pRetry(
          async (attempt) => {
            if (attempt > 1 && performance.now() - started > o.timeoutMs * (1 - QUICK_RETRY_MIN_LEFT)) throw new AbortError(lastError!);
            try {
              return await request(url, {
                method: 'POST',
                headers,
                body,
                dispatcher: o.dispatcher,
                signal: deadline,
                headersTimeout: o.timeoutMs,
                bodyTimeout: o.timeoutMs,
              });
            } catch (err) {
              const code = (err as { code?: string }).code;
              if (deadline.aborted || !code || !QUICK_RETRY_CODES.has(code)) throw new AbortError(err as Error);
              lastError = err as Error;
              throw err;
            }
          },
          { retries: o.quickRetries ?? 2, minTimeout: 100, maxTimeout: 400, signal: deadline },
        );
        const excerpt = await readExcerpt(res.body, deadline);
        return {
          outcome: { kind: 'response', status: res.statusCode, retryAfterMs: parseRetryAfter(res.headers['retry-after'], now()) },
          durationMs: Math.round(performance.now() - started),
          excerpt,
        };
      } catch (err) {
        const message = deadline.aborted ? `timed out after ${o.timeoutMs} ms` : describeError(err);
        return { outcome: { kind: 'error', message }, durationMs: Math.round(performance.now() - started), excerpt: undefined };
      }
    },
  };
}

/**
 * The first 4 KiB of the receiver's answer, for the attempts log. Anything more is
 * discarded by closing the stream: a receiver can't make us buffer a huge body.
 */
async function readExcerpt(body: Dispatcher.ResponseData['body'], deadline: AbortSignal): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= RESPONSE_EXCERPT_BYTES || deadline.aborted) break;
    }
  } catch {
    // A body cut short or timing out after the status line still counts by status.
  } finally {
    if (!body.destroyed) body.destroy();
  }
  return size === 0 ? undefined : Buffer.concat(chunks).subarray(0, RESPONSE_EXCERPT_BYTES).toString('utf8');
}
