// Dashboard sessions: who is signed in, for how long, and their CSRF token, kept
// client-side in one cookie that is sealed (AES-256-GCM, encrypted and authenticated)
// by the gateway's SecretBox. The gateway key itself is never stored anywhere: the
// session holds the tenant id, a short fingerprint of the key's hash (so rotating the
// key or disabling the tenant ends every session at once), a random session id and an
// expiry. Sign-out puts the session id on a revocation list in the database
// (dashboard_session_revocations), checked on every request: every copy of the cookie
// stops working at once, on every process.
//
// Why the SecretBox and not hono's HMAC-signed cookies: its keys come from
// configuration (TASKHOOK_ENCRYPTION_KEY, or the key generated into the data dir), so
// every process of one deployment opens the others' cookies, a key rotation
// (`new,old`) keeps sessions valid, and the tenant id is not readable in the cookie.
// The associated data below is not a tenant id (those are `ten_…`), so a sealed
// upstream key can never be replayed as a session, nor the other way round.
import { randomBytes } from 'node:crypto';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { Sql } from '../db/client.js';
import { constantTimeEqual } from '../tenancy/keys.js';
import { createSecretBox, type SecretBox } from '../tenancy/secret-box.js';

export const SESSION_COOKIE = 'taskhook_session';
export const SIGN_IN_COOKIE = 'taskhook_sign_in';
export const FLASH_COOKIE = 'taskhook_flash';
export const COOKIE_PATH = '/dashboard';
export const SESSION_TTL_S = 12 * 60 * 60;
/** how long a sign-in form stays usable */
export const SIGN_IN_TTL_S = 60 * 60;

const SESSION_AAD = 'taskhook:dashboard-session:v1';
const SIGN_IN_AAD = 'taskhook:dashboard-sign-in:v1';

export interface Session {
  /** random, per sign-in: what sign-out revokes */
  id: string;
  tenantId: string;
  tenantName: string;
  csrf: string;
  expiresAt: number;
}

interface SessionClaims {
  /** tenant id */
  t: string;
  /** first 16 hex digits of the gateway key's SHA-256 (as stored in tenants.api_key_hash) */
  k: string;
  /** CSRF token of this session */
  c: string;
  /** session id (sessions sealed before issue 12 have none and are no longer accepted: they can't be revoked) */
  s: string;
  /** expiry, Unix seconds */
  e: number;
}

export const newToken = () => randomBytes(18).toString('base64url');

/** https as the browser sees it: the request itself, or a TLS-terminating proxy that says so. */
function isHttps(c: Context): boolean {
  if (new URL(c.req.url).protocol === 'https:') return true;
  return c.req.header('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase() === 'https';
}

function cookieOptions(c: Context, maxAge: number) {
  return { path: COOKIE_PATH, httpOnly: true, sameSite: 'Strict', secure: isHttps(c), maxAge } as const;
}

export class Sessions {
  private readonly box: SecretBox;

  /**
   * `box` should be the gateway's SecretBox so that every process of a deployment accepts
   * the others' cookies. Without one, a random per-process key is used: sessions then
   * only work against the process that issued them and end when it restarts.
   */
  constructor(
    private readonly sql: Sql,
    box: SecretBox | undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.box = box ?? createSecretBox([randomBytes(32)]);
  }

  private nowS = () => Math.floor(this.now() / 1000);

  private unseal<T>(value: string | undefined, aad: string): T | undefined {
    if (!value || value.length > 4096) return undefined;
    try {
      return JSON.parse(this.box.open(value, aad)) as T;
    } catch {
      return undefined; // tampered, another deployment's, or sealed by a key no longer configured
    }
  }

  /** Starts a session for the tenant whose key was just verified. */
  start(c: Context, tenantId: string, keyHash: string): void {
    const claims: SessionClaims = { t: tenantId, k: keyHash.slice(0, 16), c: newToken(), s: newToken(), e: this.nowS() + SESSION_TTL_S };
    setCookie(c, SESSION_COOKIE, this.box.seal(JSON.stringify(claims), SESSION_AAD), cookieOptions(c, SESSION_TTL_S));
    deleteCookie(c, SIGN_IN_COOKIE, { path: COOKIE_PATH });
  }

  /**
   * The signed-in session, or undefined. Checked against the database on every request:
   * a disabled tenant or a rotated gateway key ends the session immediately.
   */
  async read(c: Context): Promise<Session | undefined> {
    const claims = this.unseal<SessionClaims>(getCookie(c, SESSION_COOKIE), SESSION_AAD);
    if (!claims || typeof claims.t !== 'string' || typeof claims.k !== 'string' || typeof claims.c !== 'string') return undefined;
    if (typeof claims.s !== 'string' || claims.s === '') return undefined;
    if (typeof claims.e !== 'number' || claims.e <= this.nowS()) return undefined;
    const [row] = await this.sql<{ name: string; api_key_hash: string; revoked: boolean }[]>`
      select name, api_key_hash,
             exists (select 1 from dashboard_session_revocations where session_id = ${claims.s}) as revoked
        from tenants where id = ${claims.t} and disabled_at is null`;
    if (!row || row.revoked || !constantTimeEqual(row.api_key_hash.slice(0, 16), claims.k)) return undefined;
    return { id: claims.s, tenantId: claims.t, tenantName: row.name, csrf: claims.c, expiresAt: claims.e };
  }

  /**
   * Sign-out: the session is revoked in the database first (every copy of the cookie, on
   * every process), then the browser's cookie is cleared. Revocations of sessions that
   * have expired anyway are swept in the same statement.
   */
  async end(c: Context, session: Session): Promise<void> {
    await this.sql`
      with swept as (delete from dashboard_session_revocations where expires_at < now())
      insert into dashboard_session_revocations (session_id, expires_at)
      values (${session.id}, to_timestamp(${session.expiresAt}))
      on conflict (session_id) do nothing`;
    deleteCookie(c, SESSION_COOKIE, { path: COOKIE_PATH, secure: isHttps(c) });
  }

  /**
   * The CSRF token of the sign-in form (login CSRF: a forged sign-in would put the victim
   * in the attacker's tenant). Double-submit: the token is in a sealed cookie and in the
   * form. An unexpired token is reused so two open sign-in tabs both work.
   */
  signInToken(c: Context): string {
    const existing = this.readSignInToken(c);
    if (existing) return existing;
    const token = newToken();
    const sealed = this.box.seal(JSON.stringify({ c: token, e: this.nowS() + SIGN_IN_TTL_S }), SIGN_IN_AAD);
    setCookie(c, SIGN_IN_COOKIE, sealed, cookieOptions(c, SIGN_IN_TTL_S));
    return token;
  }

  readSignInToken(c: Context): string | undefined {
    const claims = this.unseal<{ c: unknown; e: unknown }>(getCookie(c, SIGN_IN_COOKIE), SIGN_IN_AAD);
    if (!claims || typeof claims.c !== 'string' || typeof claims.e !== 'number' || claims.e <= this.nowS()) return undefined;
    return claims.c;
  }

  /** A one-shot message for the next page (a code from a fixed list, never free text). */
  flash(c: Context, code: string): void {
    setCookie(c, FLASH_COOKIE, code, cookieOptions(c, 60));
  }

  takeFlash(c: Context): string | undefined {
    const code = getCookie(c, FLASH_COOKIE);
    if (code !== undefined) deleteCookie(c, FLASH_COOKIE, { path: COOKIE_PATH });
    return code;
  }
}
