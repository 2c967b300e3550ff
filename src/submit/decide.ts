// What an upstream's answer to a submit means for the client (POST /v1/tasks). Pure:
// a SubmitResult in, a decision out; the table test is test/submit-decide.test.ts.
//
//   accepted  2xx with a JSON object carrying a usable task_id → the watch is registered
//   refused   upstream said no (4xx; 401 on its own: the tenant's upstream key) → 422,
//             nothing was created upstream, the Idempotency-Key is freed
//   failed    no usable answer → 502 with `outcome`:
//             not_submitted: the request cannot have created anything (never connected,
//               a redirect, 503 "not now") → the key is freed, retrying is safe
//             unknown: upstream may have created a task taskhook cannot see (timeout
//               after sending, 5xx, garbage, no task_id) → the key keeps answering this
import type { SubmitResult } from '../upstream/client.js';
import { TASK_ID } from '../api/validation.js';

/** upstream's error body carried in a problem, at most this many bytes */
export const MAX_UPSTREAM_ERROR_BYTES = 4 * 1024;

export type SubmitOutcome = 'not_submitted' | 'unknown';

export interface TaskKind {
  capability: string | null;
  action: string | null;
  model: string | null;
}

export type SubmitDecision =
  | { kind: 'accepted'; taskId: string; status: number; text: string; taskKind: TaskKind }
  | { kind: 'refused'; reason: 'unauthorized' | 'rejected'; status: number; text: string | null; retryAfter: string | undefined }
  | { kind: 'failed'; outcome: SubmitOutcome; status: number | null; text: string | null; message: string };

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export function decideSubmit(r: SubmitResult): SubmitDecision {
  if (r.kind === 'no_answer') {
    return r.sent
      ? { kind: 'failed', outcome: 'unknown', status: null, text: null, message: `upstream did not answer (${r.message}); it may have accepted the task` }
      : { kind: 'failed', outcome: 'not_submitted', status: null, text: null, message: `upstream could not be reached (${r.message}); nothing was sent` };
  }
  const { status, text } = r;
  if (status >= 200 && status < 300) {
    const unknown = (why: string): SubmitDecision => ({ kind: 'failed', outcome: 'unknown', status, text, message: `upstream answered HTTP ${status} ${why}; it may have accepted the task` });
    if (text === null) return unknown(`but its body could not be read (${r.readError ?? 'unreadable'})`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return unknown('with a body that is not JSON');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return unknown('with a body that is not a JSON object');
    const o = body as Record<string, unknown>;
    if (typeof o.task_id !== 'string' || !TASK_ID.test(o.task_id)) {
      return unknown(o.task_id === undefined ? 'without a task_id' : 'with a task_id taskhook cannot watch (1-256 characters of [A-Za-z0-9._:-])');
    }
    return { kind: 'accepted', taskId: o.task_id, status, text, taskKind: { capability: str(o.capability), action: str(o.action), model: str(o.model) } };
  }
  if (status === 401) return { kind: 'refused', reason: 'unauthorized', status, text, retryAfter: undefined };
  if (status >= 400 && status < 500) return { kind: 'refused', reason: 'rejected', status, text, retryAfter: r.retryAfter };
  if (status >= 300 && status < 400) {
    return { kind: 'failed', outcome: 'not_submitted', status, text, message: `upstream answered a redirect (HTTP ${status}), which taskhook does not follow; nothing was accepted` };
  }
  if (status === 503) {
    return { kind: 'failed', outcome: 'not_submitted', status, text, message: 'upstream answered HTTP 503 (unavailable): it did not take the task' };
  }
  return { kind: 'failed', outcome: 'unknown', status, text, message: `upstream answered HTTP ${status}; it may have accepted the task` };
}

/** upstream's body for a problem: parsed JSON when it is JSON and small, else a capped string. */
export function upstreamBodyForProblem(text: string | null): { upstream_body: unknown; upstream_body_truncated?: true } {
  if (text === null || text === '') return { upstream_body: null };
  const bytes = Buffer.byteLength(text);
  if (bytes <= MAX_UPSTREAM_ERROR_BYTES) {
    try {
      return { upstream_body: JSON.parse(text) };
    } catch {
      return { upstream_body: text };
    }
  }
  // cut on a character boundary
  const cut = Buffer.from(text).subarray(0, MAX_UPSTREAM_ERROR_BYTES).toString('utf8').replace(/\uFFFD$/, '');
  return { upstream_body: cut, upstream_body_truncated: true };
}
