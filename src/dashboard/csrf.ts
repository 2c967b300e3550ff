// CSRF defence for every dashboard POST, in two independent layers: the browser's
// word on where the request comes from (hono/csrf: Sec-Fetch-Site same-origin, or an
// Origin equal to ours), and a per-session token that must come back in the form body.
// SameSite=Strict on the session cookie is a third: a cross-site POST carries no session.
import type { MiddlewareHandler } from 'hono';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { csrf } from 'hono/csrf';
import { constantTimeEqual } from '../tenancy/keys.js';
import { ClientGone } from '../api/errors.js';

/** Every dashboard form is a few short fields. */
const MAX_FORM_BYTES = 8 * 1024;

/** An error shown as an HTML page (the dashboard's counterpart of the API's ApiError). */
export class PageError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 413 | 429,
    readonly title: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const expiredForm = () =>
  new PageError(403, 'Forbidden', 'This form has expired or did not come from this dashboard. Go back, reload the page and try again.');

/** For POSTs: same-origin only, and a bounded body. */
export function postGuard(): MiddlewareHandler {
  const originCheck = csrf();
  const limit = bodyLimit({
    maxSize: MAX_FORM_BYTES,
    onError: () => {
      throw new PageError(413, 'Payload too large', `A dashboard form is at most ${MAX_FORM_BYTES} bytes.`);
    },
  });
  return async (c, next) => {
    if (c.req.method !== 'POST') return next();
    // Run the origin check on its own so an error thrown further down is never mistaken for its verdict.
    let sameOrigin = false;
    try {
      await originCheck(c, async () => {
        sameOrigin = true;
      });
    } catch {
      // HTTPException(403): the verdict is sameOrigin = false
    }
    if (!sameOrigin) throw new PageError(403, 'Forbidden', 'Cross-site form submissions are refused.');
    return limit(c, next);
  };
}

/**
 * The urlencoded form of this POST, once its CSRF token (field `_csrf`) matched `expected`.
 * Anything else — another content type, no token, a stale one — is a 403 before the
 * request touches any data.
 */
/** The form's text; a request stream that breaks while it is read is the client going away. */
async function formText(c: Context): Promise<string> {
  try {
    return await c.req.text();
  } catch {
    throw ClientGone();
  }
}

export async function checkedForm(c: Context, expected: string | undefined): Promise<URLSearchParams> {
  const type = c.req.header('content-type') ?? '';
  const form = /^application\/x-www-form-urlencoded\b/i.test(type) ? new URLSearchParams(await formText(c)) : new URLSearchParams();
  const token = form.get('_csrf');
  if (!expected || !token || !constantTimeEqual(token, expected)) throw expiredForm();
  return form;
}
