// zod schemas for request input, and the one translation of zod issues into a 422.
import { z } from 'zod';
import { EVENT_TYPES, WATCH_STATUSES } from '../watches/store.js';
import { Invalid } from './errors.js';

export const TASK_ID = /^[A-Za-z0-9._:-]{1,256}$/;
export const MAX_METADATA_BYTES = 16 * 1024;

export const MAX_METADATA_DEPTH = 64;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function badString(s: string): string | undefined {
  if (s.includes('\u0000')) return 'metadata must not contain the NUL character (\\u0000)';
  if (LONE_SURROGATE.test(s)) return 'metadata must not contain unpaired UTF-16 surrogates';
  return undefined;
}

/**
 * Why metadata can't be stored (Postgres jsonb refuses \u0000 and unpaired surrogates)
 * or serialised safely (nesting deep enough to overflow a recursive stringify), or
 * undefined. Iterative, so the depth of the input can't overflow this either.
 */
function unstorable(value: unknown): string | undefined {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v === 'string') {
      const bad = badString(v);
      if (bad) return bad;
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    if (depth > MAX_METADATA_DEPTH) return `metadata must nest at most ${MAX_METADATA_DEPTH} levels deep`;
    if (Array.isArray(v)) {
      for (const x of v) stack.push([x, depth + 1]);
      continue;
    }
    for (const [k, x] of Object.entries(v)) {
      const bad = badString(k);
      if (bad) return bad;
      stack.push([x, depth + 1]);
    }
  }
  return undefined;
}

export const registerWatchBody = z
  .object({
    task_id: z
      .string({ message: 'task_id is required: 1-256 characters of [A-Za-z0-9._:-]' })
      .regex(TASK_ID, {
        message: 'task_id must be 1-256 characters of [A-Za-z0-9._:-]',
      })
      .describe('the upstream task id'),
    callback_url: z
      .string({ message: 'callback_url is required: an http(s) URL' })
      .min(1)
      .max(2048, {
        message: 'callback_url must be at most 2048 characters',
      })
      .describe('http(s) URL the webhook is POSTed to; loopback, private and metadata addresses are refused (422)'),
    metadata: z
      .record(z.string(), z.unknown(), { message: 'metadata must be a JSON object' })
      .superRefine((m, ctx) => {
        // unstorable() first: JSON.stringify recurses and would overflow the stack on deep nesting.
        const bad =
          unstorable(m) ??
          (Buffer.byteLength(JSON.stringify(m)) > MAX_METADATA_BYTES ? `metadata must serialise to at most ${MAX_METADATA_BYTES} bytes` : undefined);
        if (bad) ctx.addIssue({ code: 'custom', message: bad });
      })
      .optional()
      .describe(`any JSON object up to ${MAX_METADATA_BYTES} bytes, echoed in every webhook of the watch`),
    events: z
      .array(z.enum(EVENT_TYPES, { message: `events may contain ${EVENT_TYPES.join(', ')}` }), {
        message: 'events must be an array of event types',
      })
      .min(1, { message: 'events must name at least one event type' })
      .max(EVENT_TYPES.length)
      .optional()
      .describe('the events to send; default task.completed, task.failed, task.cancelled, watch.failed (task.processing is opt-in)'),
  })
  .strict();

/** submit.body of POST /v1/tasks, serialised, at most this many bytes */
export const MAX_SUBMIT_BODY_BYTES = 256 * 1024;
/** and nested at most this deep (a generation request is a few levels; the bound keeps every walk of it safe) */
export const MAX_SUBMIT_BODY_DEPTH = 32;
/** the whole request of POST /v1/tasks: the body, metadata and the rest */
export const MAX_SUBMIT_REQUEST_BYTES = MAX_SUBMIT_BODY_BYTES + 32 * 1024;

function tooDeep(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push([x, depth + 1]);
  }
  return false;
}

const watchFields = registerWatchBody.shape;

export const submitTaskBody = z
  .object({
    submit: z
      .object(
        {
          path: z
            .string({ message: 'submit.path is required: the upstream path to POST to, like /api/v2/voice/clone' })
            .describe('the upstream path to POST `body` to, under an allowed prefix (TASKHOOK_SUBMIT_PATHS, default /api/v2/); no .., //, query, scheme or host'),
          body: z
            .record(z.string(), z.unknown(), { message: 'submit.body must be a JSON object' })
            .superRefine((b, ctx) => {
              if (tooDeep(b, MAX_SUBMIT_BODY_DEPTH)) ctx.addIssue({ code: 'custom', message: `submit.body must nest at most ${MAX_SUBMIT_BODY_DEPTH} levels deep` });
              else if (Buffer.byteLength(JSON.stringify(b)) > MAX_SUBMIT_BODY_BYTES) ctx.addIssue({ code: 'custom', message: `submit.body must serialise to at most ${MAX_SUBMIT_BODY_BYTES} bytes` });
            })
            .describe(`the JSON object POSTed to upstream as it is (at most ${MAX_SUBMIT_BODY_BYTES} bytes)`),
        },
        { message: 'submit is required: {path, body}' },
      )
      .strict()
      .describe('what to POST to the tenant\'s upstream, with the tenant\'s upstream key'),
    callback_url: watchFields.callback_url,
    metadata: watchFields.metadata,
    events: watchFields.events,
  })
  .strict();

/** Idempotency-Key: 1-255 printable ASCII characters (the IETF draft's sf-string, kept simple). */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export const listWatchesQuery = z
  .object({
    status: z.enum(WATCH_STATUSES, { message: `status must be one of ${WATCH_STATUSES.join(', ')}` }).optional(),
    task_id: z.string().regex(TASK_ID, { message: 'task_id must be 1-256 characters of [A-Za-z0-9._:-]' }).optional(),
    limit: z.coerce
      .number({ message: 'limit must be an integer 1-100' })
      .int({ message: 'limit must be an integer 1-100' })
      .min(1, { message: 'limit must be an integer 1-100' })
      .max(100, { message: 'limit must be an integer 1-100' })
      .default(20)
      .describe('page size'),
    cursor: z
      .string()
      .regex(/^wat_[0-9a-z]{26}$/, { message: 'cursor must be a next_cursor value from a previous page' })
      .optional()
      .describe('next_cursor of the previous page'),
  })
  .strict();

export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((i) => ({
    field: i.path.join('.') || (i.code === 'unrecognized_keys' ? i.keys.join(', ') : '(body)'),
    message: i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
  }));
  throw Invalid(errors.map((e) => e.message).join('; '), errors);
}
