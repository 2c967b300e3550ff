// Typed API errors and the one place they become application/problem+json (RFC 9457).
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from '../log.js';
import { isConnectionError } from '../db/client.js';

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly slug: string,
    readonly title: string,
    readonly detail: string,
    readonly headers: Record<string, string> = {},
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail);
  }
}

export const BadRequest = (detail: string) => new ApiError(400, 'malformed-request', 'Malformed request', detail);
export const Unauthorized = (detail = 'a valid gateway key is required: Authorization: Bearer <key>') =>
  new ApiError(401, 'unauthorized', 'Unauthorized', detail, { 'www-authenticate': 'Bearer' });
export const NotFound = (entity: string, id: string) => new ApiError(404, 'not-found', 'Not found', `no ${entity} ${id}`);
export const Conflict = (detail: string) => new ApiError(409, 'conflict', 'Conflict', detail);
export const TooLarge = (detail: string) => new ApiError(413, 'too-large', 'Payload too large', detail);
export const UnsupportedMediaType = () =>
  new ApiError(415, 'unsupported-media-type', 'Unsupported media type', 'the request body must be application/json');
export const Invalid = (detail: string, errors?: Array<{ field: string; message: string }>) =>
  new ApiError(422, 'invalid', 'Invalid request', detail, {}, errors ? { errors } : {});

export const TooManyRequests = (detail: string, retryAfterMs?: number) =>
  new ApiError(429, 'rate-limited', 'Too many requests', detail, retryAfterMs === undefined ? {} : { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) });

/** The problem+json body of an error (also stored, for answers an Idempotency-Key replays). */
export function problemJson(err: ApiError): string {
  return JSON.stringify({
    type: `https://taskhook.dev/problems/${err.slug}`,
    title: err.title,
    status: err.status,
    detail: err.detail,
    ...err.extra,
  });
}

export function problem(c: Context, err: ApiError): Response {
  return c.body(
    problemJson(err),
    err.status,
    { 'content-type': 'application/problem+json', ...err.headers },
  );
}

export function onError(log: Logger) {
  return (err: Error, c: Context): Response => {
    if (err instanceof ApiError) return problem(c, err);
    // Hono's own HTTP errors (e.g. from middleware) keep their status.
    const status = (err as { status?: number }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return problem(c, new ApiError(status as ContentfulStatusCode, 'http-error', 'Request error', err.message || 'request error'));
    }
    // The database went away under the request (restart, killed backend): say so, and that a
    // retry is the thing to do. Not "not applied": a commit may have landed before the loss.
    if (isConnectionError(err)) {
      log.warn({ err, path: c.req.path }, 'database unreachable');
      return problem(c, new ApiError(503, 'unavailable', 'Service unavailable', 'the database is unreachable right now; retry shortly', { 'retry-after': '1' }));
    }
    log.error({ err, path: c.req.path }, 'unhandled error');
    return problem(c, new ApiError(500, 'internal', 'Internal error', 'something went wrong on our side; the request was not applied'));
  };
}
