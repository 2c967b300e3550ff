// Re-seals every tenant's upstream key with the current encryption key, after a new
// key was put first in TASKHOOK_ENCRYPTION_KEY. One row per short transaction (row
// locked, opened, re-sealed, written), so it never holds the table, can run beside
// live gateways, and can be interrupted and simply run again: rows already under
// the current key are skipped.
import type { Sql } from '../db/client.js';
import type { SecretBox } from './secret-box.js';

export interface RewrapResult {
  rewrapped: number;
  /** rows already sealed with the current key */
  skipped: number;
  /** rows no configured key could open (left untouched) */
  failed: Array<{ tenant_id: string; error: string }>;
}

const sealedWith = (sealed: string) => sealed.split(':', 1)[0];

export async function rewrapAll(sql: Sql, box: SecretBox): Promise<RewrapResult> {
  const result: RewrapResult = { rewrapped: 0, skipped: 0, failed: [] };
  const ids = await sql<{ id: string }[]>`select id from tenants where upstream_api_key_enc is not null order by id`;
  for (const { id } of ids) {
    const outcome = await sql.begin(async (tx) => {
      const [row] = await tx<{ upstream_api_key_enc: string | null }[]>`
        select upstream_api_key_enc from tenants where id = ${id} for update`;
      const sealed = row?.upstream_api_key_enc;
      // Gone, cleared, or re-sealed (by a PATCH or another run) since the listing.
      if (!sealed || sealedWith(sealed) === box.currentKeyId) return 'skipped' as const;
      let plaintext: string;
      try {
        plaintext = box.open(sealed, id);
      } catch (err) {
        return { error: (err as Error).message };
      }
      await tx`update tenants set upstream_api_key_enc = ${box.seal(plaintext, id)}, updated_at = now() where id = ${id}`;
      return 'rewrapped' as const;
    });
    if (outcome === 'rewrapped') result.rewrapped++;
    else if (outcome === 'skipped') result.skipped++;
    else result.failed.push({ tenant_id: id, error: outcome.error });
  }
  return result;
}
