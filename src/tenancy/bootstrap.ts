// First-boot setup: the encryption key (generated into the data dir if not given)
// and the default tenant, created from the environment. A key or secret we had to
// generate is printed exactly once, by the process whose insert won.
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Sql } from '../db/client.js';
import { createSecretBox, type SecretBox } from './secret-box.js';
import { hashApiKey, newApiKey, newSigningSecret } from './keys.js';
import { ROTATION_OVERLAP_MS } from './store.js';

export const DEFAULT_TENANT_ID = 'ten_default';

export async function loadSecretBox(encryptionKey: string | undefined, dataDir: string): Promise<SecretBox> {
  if (encryptionKey) return createSecretBox(encryptionKey.split(',').map((k) => Buffer.from(k.trim(), 'base64')));
  const file = path.join(dataDir, 'encryption.key');
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  try {
    await fs.writeFile(file, randomBytes(32).toString('base64'), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return createSecretBox([Buffer.from((await fs.readFile(file, 'utf8')).trim(), 'base64')]);
}

export interface BootstrapInput {
  apiKey: string | undefined;
  signingSecret: string | undefined;
  upstreamApiKey: string | undefined;
  /** a line for the operator (the environment's signing secret was not applied, and why) */
  warn?: (msg: string) => void;
}

/** Ensures the default tenant exists and matches the environment; returns generated secrets to print. */
export async function bootstrapDefaultTenant(
  sql: Sql,
  box: SecretBox,
  input: BootstrapInput,
): Promise<{ apiKey?: string; signingSecret?: string }> {
  const apiKey = input.apiKey ?? newApiKey();
  const secret = input.signingSecret ?? newSigningSecret();
  const upstreamEnc = input.upstreamApiKey ? box.seal(input.upstreamApiKey, DEFAULT_TENANT_ID) : null;
  const inserted = await sql`
    insert into tenants (id, name, api_key_hash, signing_secret, upstream_api_key_enc)
    values (${DEFAULT_TENANT_ID}, 'default', ${hashApiKey(apiKey)}, ${secret}, ${upstreamEnc})
    on conflict (id) do nothing
    returning id`;
  if (inserted.length === 1) {
    return { apiKey: input.apiKey ? undefined : apiKey, signingSecret: input.signingSecret ? undefined : secret };
  }
  // The tenant exists: the environment stays the source of truth for what it sets.
  if (input.apiKey) {
    await sql`update tenants set api_key_hash = ${hashApiKey(input.apiKey)}, updated_at = now()
              where id = ${DEFAULT_TENANT_ID} and api_key_hash <> ${hashApiKey(input.apiKey)}`;
  }
  if (input.signingSecret) {
    // A changed TASKHOOK_SIGNING_SECRET is a rotation (the replaced secret keeps signing for
    // the overlap), applied only while the secret was never rotated otherwise. Once it has
    // been (POST /v1/tenant/signing-secret/rotate), every process restarting with the old
    // value used to overwrite the rotated secret: webhooks signed only by a secret receivers
    // had been told to drop (found by the soak).
    const changed = await sql<{ rotated: boolean }[]>`
      with t as (select signing_secret, previous_secret_expires_at is not null as rotated from tenants where id = ${DEFAULT_TENANT_ID}),
      upd as (
        update tenants set previous_signing_secret = signing_secret,
                           previous_secret_expires_at = now() + ${ROTATION_OVERLAP_MS} * interval '1 millisecond',
                           signing_secret = ${input.signingSecret}, updated_at = now()
         where id = ${DEFAULT_TENANT_ID} and signing_secret <> ${input.signingSecret} and previous_secret_expires_at is null)
      select rotated from t where signing_secret <> ${input.signingSecret}`;
    if (changed[0]?.rotated) {
      input.warn?.('TASKHOOK_SIGNING_SECRET differs from the default tenant\'s signing secret, which has been rotated since: keeping the rotated one (rotate with POST /v1/tenant/signing-secret/rotate)');
    }
  }
  if (upstreamEnc) {
    await sql`update tenants set upstream_api_key_enc = ${upstreamEnc}, updated_at = now() where id = ${DEFAULT_TENANT_ID}`;
  }
  return {};
}

/** Whether the default tenant has an upstream key (from UPSTREAM_API_KEY now or before, or PATCH /v1/tenant). */
export async function defaultTenantHasUpstreamKey(sql: Sql): Promise<boolean> {
  const [row] = await sql<{ has: boolean }[]>`select upstream_api_key_enc is not null as has from tenants where id = ${DEFAULT_TENANT_ID}`;
  return row?.has === true;
}
