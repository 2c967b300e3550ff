// Which upstream paths a submit through taskhook (POST /v1/tasks) may POST to. Pure.
//
// The path is refused, never repaired: what is checked is exactly what is sent, so no
// decoding, resolving or normalising step can turn an allowed path into another one.
// A path is `/seg/seg/…` of unreserved characters (RFC 3986: letters, digits, `.`, `_`,
// `~`, `-`), no `.`/`..` segment, no empty segment (`//`), no percent-encoding, no query
// or fragment, no scheme or host, no backslash, whitespace or control character, and it
// lies under one of the allowed prefixes (TASKHOOK_SUBMIT_PATHS, default `/api/v2/`).

export const DEFAULT_SUBMIT_PATHS: readonly string[] = ['/api/v2/'];
export const MAX_SUBMIT_PATH_CHARS = 512;

const SEGMENT = /^[A-Za-z0-9._~-]+$/;

export type PathCheck = { ok: true; path: string } | { ok: false; reason: string };

/** Why `path` is not a plain absolute path of unreserved segments, or undefined. */
function shapeProblem(path: string, what: string): string | undefined {
  if (path.length === 0) return `${what} must not be empty`;
  if (path.length > MAX_SUBMIT_PATH_CHARS) return `${what} must be at most ${MAX_SUBMIT_PATH_CHARS} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f-\u009f\u2028\u2029]/.test(path)) return `${what} must not contain spaces or control characters`;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(path) || path.startsWith('//')) return `${what} must be a path on the upstream (like /api/v2/voice/clone), not a URL`;
  if (!path.startsWith('/')) return `${what} must start with /`;
  if (path.includes('?') || path.includes('#')) return `${what} must not carry a query string or fragment`;
  if (path.includes('\\')) return `${what} must not contain a backslash`;
  if (path.includes('%')) return `${what} must not be percent-encoded`;
  const segments = path.slice(1).split('/');
  // a trailing slash leaves one empty last segment, which is fine; an empty one elsewhere is `//`
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '') {
      if (i === segments.length - 1) continue;
      return `${what} must not contain an empty segment (//)`;
    }
    if (s === '.' || s === '..') return `${what} must not contain . or .. segments`;
    if (!SEGMENT.test(s)) return `${what} may contain only letters, digits and . _ ~ - between slashes`;
  }
  return undefined;
}

/** Checks a client's `submit.path` against the allowed prefixes. */
export function checkSubmitPath(path: unknown, allowed: readonly string[]): PathCheck {
  if (typeof path !== 'string') return { ok: false, reason: 'submit.path must be a string' };
  const bad = shapeProblem(path, 'submit.path');
  if (bad) return { ok: false, reason: bad };
  const prefix = allowed.find((p) => path.startsWith(p) && path.length > p.length);
  if (!prefix) return { ok: false, reason: `submit.path must lie under ${allowed.join(' or ')}` };
  return { ok: true, path };
}

/** Parses TASKHOOK_SUBMIT_PATHS: a comma list of prefixes, each `/…/`. Throws with a one-line reason. */
export function parseSubmitPaths(value: string): string[] {
  const list = value
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (list.length === 0) throw new Error('expected a comma list of path prefixes like /api/v2/');
  for (const p of list) {
    const bad = shapeProblem(p, `prefix ${JSON.stringify(p)}`);
    if (bad) throw new Error(bad);
    if (!p.endsWith('/')) throw new Error(`prefix ${JSON.stringify(p)} must end with / (a prefix of whole segments)`);
  }
  return list;
}

/**
 * `{base}{path}`, made sure to stay on the base URL's origin and under its path: the
 * last guard, should a base URL with a path of its own meet a path checked above.
 */
export function submitUrl(baseUrl: string, path: string): string | undefined {
  let base: URL;
  let url: URL;
  try {
    base = new URL(baseUrl);
    url = new URL(`${baseUrl.replace(/\/+$/, '')}${path}`);
  } catch {
    return undefined;
  }
  const basePath = base.pathname.replace(/\/+$/, '');
  if (url.origin !== base.origin || url.pathname !== `${basePath}${path}` || url.search !== '' || url.hash !== '') return undefined;
  return url.href;
}
