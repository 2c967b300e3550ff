// Submit through taskhook (POST /v1/tasks): one call creates the upstream task and its
// watch. The phases, each durable before the next:
//
//   claim    the Idempotency-Key's record is written (in_flight, with a lease) BEFORE
//            upstream is called: a second request with the key finds it
//   call     POST {tenant's upstream}{path} with the tenant's upstream key (src/upstream/client.ts)
//   decide   what the answer means (src/submit/decide.ts, pure)
//   record   accepted → the watch and the acceptance in ONE transaction, the answer stored
//            for replay; unknown → stored, replayed; certainly-not-created → key freed
//
// So the only window left is "upstream accepted, this process died before the record":
// the lease runs out, and a retry with the key is told the outcome is unknown instead
// of submitting a second time.
import type { Sql } from '../db/client.js';
import type { Logger } from '../log.js';
import type { Fault } from '../faults.js';
import type { Metrics } from '../metrics.js';
import type { Tenant } from '../tenancy/directory.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { NewWatch, WatchStore } from '../watches/store.js';
import { ApiError, Invalid, problemJson } from '../api/errors.js';
import { decideSubmit, upstreamBodyForProblem, type SubmitDecision } from './decide.js';
import { requestFingerprint } from './fingerprint.js';
import { checkSubmitPath, submitUrl } from './path.js';
import { SubmissionStore, type SubmissionRow } from './store.js';

/** upstream's answer to a submit is read up to this many bytes (an acceptance is a few hundred) */
export const MAX_SUBMIT_ANSWER_BYTES = 1 << 20;
/**
 * The lease of an attempt outlives its upstream call (the timeout) by this much, for the
 * writes after it: a retry within it is told 409 (in progress), after it "outcome unknown".
 */
export const SUBMIT_LEASE_MARGIN_MS = 5_000;

export interface SubmitterOptions {
  sql: Sql;
  watches: WatchStore;
  upstream: UpstreamClient;
  log: Logger;
  /** TASKHOOK_SUBMIT_PATHS */
  allowedPaths: readonly string[];
  /** TASKHOOK_SUBMIT_TIMEOUT_S, the whole upstream call */
  timeoutMs: number;
  userAgent: string;
  metrics?: Metrics;
  fault?: Fault;
  submissions?: SubmissionStore;
}

export interface SubmitInput {
  tenant: Tenant;
  idempotencyKey: string;
  path: string;
  body: Record<string, unknown>;
  /** the watch to register on the task_id upstream answers */
  watch: Omit<NewWatch, 'task_id'>;
}

/** What to answer: a body already serialised (a replay sends the stored bytes). */
export interface SubmitAnswer {
  status: 201 | 400 | 409 | 422 | 502;
  body: string;
  headers: Record<string, string>;
}

const JSON_TYPE = { 'content-type': 'application/json' };
const PROBLEM_TYPE = { 'content-type': 'application/problem+json' };

const problemAnswer = (err: ApiError): SubmitAnswer => ({
  status: err.status as SubmitAnswer['status'],
  body: problemJson(err),
  headers: { ...PROBLEM_TYPE, ...err.headers },
});

export const KeyReused = () =>
  new ApiError(422, 'idempotency-key-reused', 'Idempotency-Key reused', 'this Idempotency-Key was used in the last 24 h with a different request; use a new key for a new request');
export const KeyInUse = () =>
  new ApiError(409, 'idempotency-key-in-use', 'Idempotency-Key in use', 'a request with this Idempotency-Key is still being processed; retry shortly to get its answer', { 'retry-after': '1' });

export function outcomeUnknown(detail: string, extra: Record<string, unknown> = {}) {
  return new ApiError(502, 'outcome-unknown', 'Submit outcome unknown', detail, {}, { outcome: 'unknown', ...extra });
}

export class Submitter {
  private readonly store: SubmissionStore;

  constructor(private readonly o: SubmitterOptions) {
    this.store = o.submissions ?? new SubmissionStore(o.sql);
  }

  get submissions(): SubmissionStore {
    return this.store;
  }

  async submit(input: SubmitInput): Promise<SubmitAnswer> {
    const { tenant, idempotencyKey: key } = input;
    const checked = checkSubmitPath(input.path, this.o.allowedPaths);
    if (!checked.ok) throw Invalid(checked.reason, [{ field: 'submit.path', message: checked.reason }]);
    const url = submitUrl(tenant.upstreamBaseUrl, checked.path);
    if (!url) throw Invalid('submit.path does not make a URL under the upstream base URL', [{ field: 'submit.path', message: 'not under the upstream base URL' }]);
    let apiKey: string | undefined;
    try {
      apiKey = tenant.upstreamApiKey;
    } catch (err) {
      this.o.log.warn({ err, tenant: tenant.id }, 'submit: the tenant upstream key cannot be decrypted');
      this.count('unauthorized');
      throw new ApiError(422, 'upstream-unauthorized', 'Upstream key unusable', "this tenant's upstream key cannot be decrypted here; set it again with PATCH /v1/tenant. Nothing was sent upstream.", {}, { outcome: 'not_submitted', upstream_status: null });
    }

    const hash = requestFingerprint({ path: checked.path, body: input.body, callback_url: input.watch.callback_url, metadata: input.watch.metadata, events: input.watch.events });
    const claim = await this.store.claim(tenant.id, key, hash, checked.path, this.o.timeoutMs + SUBMIT_LEASE_MARGIN_MS);
    if (claim === 'contended') {
      this.count('in_use');
      return problemAnswer(KeyInUse());
    }
    if (!claim.owned) return this.answerExisting(claim.row, hash);

    const started = performance.now();
    const result = await this.o.upstream.submitTask(tenant.upstreamBaseUrl, apiKey, {
      path: checked.path,
      body: JSON.stringify(input.body),
      userAgent: this.o.userAgent,
      timeoutMs: this.o.timeoutMs,
      maxAnswerBytes: MAX_SUBMIT_ANSWER_BYTES,
    });
    this.o.metrics?.submitDuration(performance.now() - started);
    this.o.fault?.('submit.after-upstream');
    return this.record(input, claim.token, decideSubmit(result));
  }

  private async record(input: SubmitInput, token: string, d: SubmitDecision): Promise<SubmitAnswer> {
    const { tenant, idempotencyKey: key } = input;
    switch (d.kind) {
      case 'accepted': {
        try {
          const body = await this.o.sql.begin(async (tx) => {
            const { watch } = await this.o.watches.registerIn(tx, tenant.id, { ...input.watch, task_id: d.taskId });
            // upstream's answer goes out byte for byte: it was parsed only to be checked
            const response = `{"task_id":${JSON.stringify(d.taskId)},"upstream":${d.text},"watch":${JSON.stringify(watch)}}`;
            const mine = await this.store.recordAccepted(tx, tenant.id, key, token, {
              taskId: d.taskId,
              watchId: watch.id,
              upstreamStatus: d.status,
              upstreamBody: d.text,
              ...d.taskKind,
              response,
            });
            if (!mine) this.o.log.warn({ tenant: tenant.id, task_id: d.taskId }, 'submit: the Idempotency-Key was taken over during the call; the watch is registered all the same');
            return response;
          });
          this.count('accepted');
          return { status: 201, body, headers: JSON_TYPE };
        } catch (err) {
          // The task exists upstream; say which, so it can be registered by task_id.
          this.o.log.error({ err, tenant: tenant.id, task_id: d.taskId }, 'submit: upstream accepted the task but recording it failed');
          this.count('not_recorded');
          return problemAnswer(
            new ApiError(
              502,
              'submit-not-recorded',
              'Submitted but not recorded',
              `upstream accepted the task (task_id ${d.taskId}) but taskhook could not record its watch; register it with POST /v1/watches {task_id: "${d.taskId}", …} rather than submitting again`,
              {},
              { outcome: 'accepted', task_id: d.taskId },
            ),
          );
        }
      }
      case 'refused': {
        await this.store.release(tenant.id, key, token);
        const body = upstreamBodyForProblem(d.text);
        if (d.reason === 'unauthorized') {
          this.count('unauthorized');
          return problemAnswer(
            new ApiError(422, 'upstream-unauthorized', 'Upstream refused the tenant key', "upstream answered 401: this tenant's upstream key is wrong or revoked; set it with PATCH /v1/tenant (or UPSTREAM_API_KEY). Nothing was created upstream.", {}, { outcome: 'not_submitted', upstream_status: d.status, ...body }),
          );
        }
        this.count('rejected');
        return problemAnswer(
          new ApiError(
            422,
            'upstream-rejected',
            'Upstream rejected the submit',
            `upstream answered HTTP ${d.status}: it refused the request (see upstream_body); nothing was created upstream, fix the request and submit again`,
            d.retryAfter ? { 'retry-after': d.retryAfter } : {},
            { outcome: 'not_submitted', upstream_status: d.status, ...body },
          ),
        );
      }
      case 'failed': {
        if (d.outcome === 'not_submitted') {
          await this.store.release(tenant.id, key, token);
          this.count('not_submitted');
          return problemAnswer(
            new ApiError(502, 'upstream-unavailable', 'Upstream unavailable', `${d.message}; retrying is safe (with this key or a new one)`, {}, { outcome: 'not_submitted', upstream_status: d.status }),
          );
        }
        const err = outcomeUnknown(
          `${d.message}. Submitting again could create a second task: check upstream (or wait for it to show up) before retrying with a new key; this key keeps answering this for 24 h`,
          { upstream_status: d.status, ...upstreamBodyForProblem(d.text) },
        );
        const answer = problemAnswer(err);
        await this.store.recordUnknown(tenant.id, key, token, { upstreamStatus: d.status, upstreamBody: d.text, detail: d.message, responseStatus: 502, response: answer.body });
        this.count('unknown');
        return answer;
      }
    }
  }

  /** A request whose key is held already: replay, conflict, or unknown. */
  private async answerExisting(row: SubmissionRow, hash: string): Promise<SubmitAnswer> {
    if (row.request_hash !== hash) {
      this.count('key_reused');
      return problemAnswer(KeyReused());
    }
    if (row.state === 'accepted' || (row.state === 'unknown' && row.response !== null)) {
      this.count('replayed');
      return {
        status: row.response_status as SubmitAnswer['status'],
        body: row.response!,
        headers: { ...(row.response_status === 201 ? JSON_TYPE : PROBLEM_TYPE), 'idempotent-replayed': 'true' },
      };
    }
    if (row.state === 'in_flight' && !row.lease_expired) {
      this.count('in_use');
      return problemAnswer(KeyInUse());
    }
    if (row.state === 'in_flight') await this.store.markAbandoned(row.tenant_id, row.idempotency_key, row.attempt_token);
    this.count('unknown');
    return {
      ...problemAnswer(
        outcomeUnknown(
          'the earlier request with this Idempotency-Key stopped while upstream was being called (taskhook was killed or lost its database), so taskhook cannot tell whether upstream accepted the task. It was not submitted again. Check upstream before retrying with a new key',
          { upstream_status: row.upstream_status },
        ),
      ),
      headers: { ...PROBLEM_TYPE, 'idempotent-replayed': 'true' },
    };
  }

  private count(outcome: Parameters<Metrics['submit']>[0]) {
    this.o.metrics?.submit(outcome);
  }
}

