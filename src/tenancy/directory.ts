// Tenants as the engines and the API need them: looked up by gateway key or id,
// upstream key decrypted, cached briefly so the hot paths don't query per request.
import type { Sql } from '../db/client.js';
import type { SecretBox } from './secret-box.js';
import { hashApiKey } from './keys.js';

export interface Tenant {
  id: string;
  upstreamBaseUrl: string;
  /**
   * Decrypted upstream key. If the ciphertext can't be opened (wrong encryption key,
   * or a value copied from another tenant's row) reading this throws: only the
   * poller needs it, so auth and webhook signing for the tenant keep working and
   * the tenant can repair it with PATCH /v1/tenant.
   */
  upstreamApiKey: string | undefined;
  /** Secrets to sign with: the current one first, then any still within its rotation overlap. */
  signingSecrets: string[];
  limits: TenantLimits;
}

/** null = unlimited */
export interface TenantLimits {
  apiRatePerS: number | null;
  maxActiveWatches: number | null;
  maxPollsPerS: number | null;
}

interface Row {
  id: string;
  upstream_base_url: string | null;
  upstream_api_key_enc: string | null;
  signing_secret: string;
  previous_signing_secret: string | null;
  previous_secret_expires_at: Date | null;
  disabled_at: Date | null;
  api_rate_per_s: number | null;
  max_active_watches: number | null;
  max_polls_per_s: number | null;
}

export class TenantDirectory {
  private readonly byId = new Map<string, { at: number; tenant: Tenant | undefined }>();
  private readonly byKey = new Map<string, { at: number; id: string | undefined }>();

  constructor(
    private readonly sql: Sql,
    private readonly box: SecretBox,
    private readonly defaults: { upstreamBaseUrl: string },
    private readonly ttlMs = 5_000,
    private readonly now: () => number = Date.now,
  ) {}

  private readonly refreshing = new Set<string>();

  /**
   * The API's hot path: byApiKey without a promise while the key is cached. Past the TTL
   * (up to twice it) a known-good key still answers at once while one lookup refreshes it
   * in the background: a busy client's requests then never wait for, or pile up behind, a
   * database round trip every TTL (piled up, 64 concurrent requests each held a token of
   * the failed-auth throttle and the 11th was refused with 429). So a disabled key or
   * tenant stops working here within 2 × TTL (+ the refresh), not 1 × TTL; unknown or bad
   * keys are looked up (or refused from the cache) exactly as by byApiKey.
   */
  byApiKeyNow(key: string): Tenant | undefined | Promise<Tenant | undefined> {
    const hash = hashApiKey(key);
    const hit = this.byKey.get(hash);
    const at = this.now();
    if (hit?.id !== undefined && at - hit.at < 2 * this.ttlMs) {
      const t = this.byId.get(hit.id);
      if (t && at - t.at < 2 * this.ttlMs) {
        if ((at - hit.at >= this.ttlMs || at - t.at >= this.ttlMs) && !this.refreshing.has(hash)) {
          this.refreshing.add(hash);
          this.byApiKey(key)
            .catch(() => {}) // (the database away: the entry expires at 2 × TTL and the next request asks itself)
            .finally(() => this.refreshing.delete(hash));
        }
        return t.tenant;
      }
    }
    return this.byApiKey(key);
  }

  private readonly lookups = new Map<string, Promise<Tenant | undefined>>();

  /** Concurrent lookups of one key share one query. */
  byApiKey(key: string): Promise<Tenant | undefined> {
    const hash = hashApiKey(key);
    const hit = this.byKey.get(hash);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.id ? this.get(hit.id) : Promise.resolve(undefined);
    let p = this.lookups.get(hash);
    if (!p) {
      p = this.lookUp(hash).finally(() => this.lookups.delete(hash));
      this.lookups.set(hash, p);
    }
    return p;
  }

  private async lookUp(hash: string): Promise<Tenant | undefined> {
    const [row] = await this.sql<{ id: string }[]>`select id from tenants where api_key_hash = ${hash} and disabled_at is null`;
    if (this.byKey.size > 10_000) this.byKey.clear();
    this.byKey.set(hash, { at: this.now(), id: row?.id });
    return row ? this.get(row.id) : undefined;
  }

  /**
   * Forget what is cached for a tenant, after a write to it (rotation, disable, new
   * upstream key). Other processes pick the change up within the TTL.
   */
  invalidate(id: string): void {
    this.byId.delete(id);
    for (const [hash, hit] of this.byKey) if (hit.id === id) this.byKey.delete(hash);
  }

  /** The tenant as cached (a hit within the TTL) without a promise — the poller's hot path — or null: not cached, ask get(). */
  peek(id: string): Tenant | undefined | null {
    const hit = this.byId.get(id);
    return hit && this.now() - hit.at < this.ttlMs ? hit.tenant : null;
  }

  async get(id: string): Promise<Tenant | undefined> {
    const hit = this.byId.get(id);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.tenant;
    const [row] = await this.sql<Row[]>`
      select id, upstream_base_url, upstream_api_key_enc, signing_secret, previous_signing_secret,
             previous_secret_expires_at, disabled_at, api_rate_per_s, max_active_watches, max_polls_per_s
      from tenants where id = ${id}`;
    const tenant = row && !row.disabled_at ? this.toTenant(row) : undefined;
    this.byId.set(id, { at: this.now(), tenant });
    return tenant;
  }

  private toTenant(row: Row): Tenant {
    const secrets = [row.signing_secret];
    if (row.previous_signing_secret && row.previous_secret_expires_at && row.previous_secret_expires_at.getTime() > this.now()) {
      secrets.push(row.previous_signing_secret);
    }
    const tenant: Tenant = {
      id: row.id,
      upstreamBaseUrl: row.upstream_base_url ?? this.defaults.upstreamBaseUrl,
      upstreamApiKey: undefined,
      signingSecrets: secrets,
      limits: { apiRatePerS: row.api_rate_per_s, maxActiveWatches: row.max_active_watches, maxPollsPerS: row.max_polls_per_s },
    };
    if (row.upstream_api_key_enc) {
      try {
        tenant.upstreamApiKey = this.box.open(row.upstream_api_key_enc, row.id);
      } catch (err) {
        const error = new Error(`tenant ${row.id}: ${(err as Error).message}`);
        Object.defineProperty(tenant, 'upstreamApiKey', {
          enumerable: true,
          get() {
            throw error;
          },
        });
      }
    }
    return tenant;
  }
}
