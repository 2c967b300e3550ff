// Tenants as the admin and tenant APIs manage them: create (credentials shown once),
// list, disable, read, update the upstream connection, rotate the signing secret.
// Gateway keys are stored as SHA-256 only and upstream keys sealed to their tenant;
// nothing here ever returns a stored secret except the one just generated.
import type { Sql } from '../db/client.js';
import type { SecretBox } from './secret-box.js';
import type { TenantDirectory, TenantLimits } from './directory.js';
import { hashApiKey, newApiKey, newId, newSigningSecret } from './keys.js';

/** Limits of a tenant created through the admin API unless it says otherwise (null = unlimited). */
export const DEFAULT_SAAS_LIMITS: TenantLimits = { apiRatePerS: 50, maxActiveWatches: 10_000, maxPollsPerS: 20 };

/** How long webhooks keep carrying a signature by the secret a rotation replaced. */
export const ROTATION_OVERLAP_MS = 24 * 60 * 60 * 1000;

export interface TenantSummary {
  tenant_id: string;
  name: string;
  upstream_base_url: string;
  created_at: string;
  disabled_at: string | null;
}

export interface CreatedTenant {
  tenant_id: string;
  name: string;
  api_key: string;
  signing_secret: string;
  upstream_base_url: string;
  created_at: string;
}

export interface TenantView {
  tenant_id: string;
  name: string;
  upstream_base_url: string;
  has_upstream_api_key: boolean;
  signing_secret_rotated_at: string | null;
  previous_secret_expires_at: string | null;
}

interface Row {
  id: string;
  name: string;
  upstream_base_url: string | null;
  has_upstream_api_key: boolean;
  previous_secret_expires_at: Date | null;
  created_at: Date;
  disabled_at: Date | null;
}

export class TenantStore {
  constructor(
    private readonly sql: Sql,
    private readonly box: SecretBox,
    private readonly directory: TenantDirectory,
    private readonly defaults: { upstreamBaseUrl: string },
    private readonly now: () => number = Date.now,
  ) {}

  async create(input: { name: string; upstreamApiKey: string; upstreamBaseUrl?: string; limits?: Partial<TenantLimits> }): Promise<CreatedTenant> {
    const limits = { ...DEFAULT_SAAS_LIMITS, ...input.limits };
    const id = newId('ten', this.now());
    const apiKey = newApiKey();
    const secret = newSigningSecret();
    const [row] = await this.sql<Row[]>`
      insert into tenants (id, name, api_key_hash, signing_secret, upstream_base_url, upstream_api_key_enc,
                           api_rate_per_s, max_active_watches, max_polls_per_s)
      values (${id}, ${input.name}, ${hashApiKey(apiKey)}, ${secret}, ${input.upstreamBaseUrl ?? null},
              ${this.box.seal(input.upstreamApiKey, id)}, ${limits.apiRatePerS}, ${limits.maxActiveWatches}, ${limits.maxPollsPerS})
      returning ${this.columns()}`;
    const s = this.summary(row!);
    return { tenant_id: s.tenant_id, name: s.name, api_key: apiKey, signing_secret: secret, upstream_base_url: s.upstream_base_url, created_at: s.created_at };
  }

  async list(): Promise<TenantSummary[]> {
    const rows = await this.sql<Row[]>`select ${this.columns()} from tenants order by created_at, id`;
    return rows.map((r) => this.summary(r));
  }

  /** Disables (idempotently; the first disable time is kept). Its key stops working and its tasks stop being polled. */
  async disable(id: string): Promise<TenantSummary | undefined> {
    const [row] = await this.sql<Row[]>`
      update tenants set disabled_at = coalesce(disabled_at, now()), updated_at = now()
       where id = ${id}
      returning ${this.columns()}`;
    this.directory.invalidate(id);
    return row && this.summary(row);
  }

  async view(id: string): Promise<TenantView | undefined> {
    const [row] = await this.sql<Row[]>`select ${this.columns()} from tenants where id = ${id} and disabled_at is null`;
    return row && this.toView(row);
  }

  /** `upstreamBaseUrl: null` goes back to the deployment's UPSTREAM_BASE_URL; undefined leaves it. */
  async update(id: string, input: { upstreamApiKey?: string; upstreamBaseUrl?: string | null }): Promise<TenantView | undefined> {
    const enc = input.upstreamApiKey === undefined ? undefined : this.box.seal(input.upstreamApiKey, id);
    const [row] = await this.sql<Row[]>`
      update tenants set
        upstream_api_key_enc = ${enc === undefined ? this.sql`upstream_api_key_enc` : enc},
        upstream_base_url = ${input.upstreamBaseUrl === undefined ? this.sql`upstream_base_url` : input.upstreamBaseUrl},
        updated_at = now()
       where id = ${id} and disabled_at is null
      returning ${this.columns()}`;
    this.directory.invalidate(id);
    return row && this.toView(row);
  }

  /**
   * A new secret becomes current; the one it replaces keeps signing (as the second
   * signature) for ROTATION_OVERLAP_MS. Only two secrets ever sign: rotating again
   * inside the window drops the older previous secret at once and the one being
   * rotated out takes its place, with a fresh 24 h. One statement, so concurrent
   * rotations serialise on the row and none loses the secret it rotated out.
   */
  async rotateSigningSecret(id: string): Promise<{ signing_secret: string; previous_secret_expires_at: string } | undefined> {
    const secret = newSigningSecret();
    const expires = new Date(this.now() + ROTATION_OVERLAP_MS);
    const [row] = await this.sql<{ previous_secret_expires_at: Date }[]>`
      update tenants set
        previous_signing_secret = signing_secret,
        previous_secret_expires_at = ${expires},
        signing_secret = ${secret},
        updated_at = now()
       where id = ${id} and disabled_at is null
      returning previous_secret_expires_at`;
    this.directory.invalidate(id);
    return row && { signing_secret: secret, previous_secret_expires_at: row.previous_secret_expires_at.toISOString() };
  }

  private columns() {
    return this.sql`id, name, upstream_base_url, upstream_api_key_enc is not null as has_upstream_api_key,
                    previous_secret_expires_at, created_at, disabled_at`;
  }

  private summary(r: Row): TenantSummary {
    return {
      tenant_id: r.id,
      name: r.name,
      upstream_base_url: r.upstream_base_url ?? this.defaults.upstreamBaseUrl,
      created_at: r.created_at.toISOString(),
      disabled_at: r.disabled_at?.toISOString() ?? null,
    };
  }

  private toView(r: Row): TenantView {
    const expires = r.previous_secret_expires_at;
    return {
      tenant_id: r.id,
      name: r.name,
      upstream_base_url: r.upstream_base_url ?? this.defaults.upstreamBaseUrl,
      has_upstream_api_key: r.has_upstream_api_key,
      // Not stored on its own: a rotation sets the expiry to rotation time + the overlap.
      signing_secret_rotated_at: expires ? new Date(expires.getTime() - ROTATION_OVERLAP_MS).toISOString() : null,
      previous_secret_expires_at: expires && expires.getTime() > this.now() ? expires.toISOString() : null,
    };
  }
}

