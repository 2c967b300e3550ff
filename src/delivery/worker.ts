// The deliverer: claims due outbox rows under a lease, sends each once, records the
// attempt and decides the next step, with every write guarded by the lease token so
// a worker that lost its lease can't overwrite the newer owner's result.
import type { Sql } from '../db/client.js';
import { ClaimLoop } from '../engine/loop.js';
import type { TenantDirectory } from '../tenancy/directory.js';
import type { Logger } from '../log.js';
import type { Sender } from './send.js';
import { decideAfterAttempt } from './retry.js';

export interface ClaimedDelivery {
  id: string;
  tenant_id: string;
  watch_id: string;
  terminal: boolean;
  callback_url: string;
  payload: string;
  retry_step: number;
  lease_token: string;
}

export interface DelivererOptions {
  sql: Sql;
  tenants: TenantDirectory;
  sender: Sender;
  log: Logger;
  retryScheduleMs: readonly number[];
  /** must outlive a whole attempt; see leaseFor() */
  leaseMs: number;
  batchSize?: number;
  maxInFlight?: number;
  idleMs?: number;
  random?: () => number;
}

const EXCERPT_STORED = 1024;

export function createDeliverer(o: DelivererOptions) {
  const { sql, log } = o;
  const leaseMs = o.leaseMs;
  const random = o.random ?? Math.random;

  const claim = (limit: number) => sql<ClaimedDelivery[]>`
    update deliveries d
       set lease_token = gen_random_uuid(),
           next_attempt_at = now() + ${leaseMs} * interval '1 millisecond',
           attempts = d.attempts + 1,
           updated_at = now()
      from (select id from deliveries
             where status = 'pending' and next_attempt_at <= now()
             order by next_attempt_at
             limit ${limit}
             for update skip locked) due
     where d.id = due.id
    returning d.id, d.tenant_id, d.watch_id, d.terminal, d.callback_url, d.payload, d.retry_step, d.lease_token`;

  async function work(d: ClaimedDelivery): Promise<void> {
    const tenant = await o.tenants.get(d.tenant_id);
    const attemptedAt = new Date();
    const result = tenant
      ? await o.sender.send({ url: d.callback_url, msgId: d.id, body: d.payload, secrets: tenant.signingSecrets })
      : { outcome: { kind: 'error' as const, message: 'tenant is disabled' }, durationMs: 0, excerpt: undefined };
    const next = decideAfterAttempt(result.outcome, d.retry_step, o.retryScheduleMs, random());
    const status = result.outcome.kind === 'response' ? result.outcome.status : null;
    const error =
      result.outcome.kind === 'error'
        ? result.outcome.message
        : next.status === 'delivered'
          ? null
          : `receiver answered HTTP ${result.outcome.status}`;

    await sql.begin(async (tx) => {
      await tx`
        insert into delivery_attempts (delivery_id, attempted_at, duration_ms, response_status, error, response_excerpt)
        values (${d.id}, ${attemptedAt}, ${result.durationMs}, ${status}, ${error},
                ${result.excerpt === undefined ? null : result.excerpt.slice(0, EXCERPT_STORED)})`;
      const delayMs = next.status === 'pending' ? next.delayMs : 0;
      const updated = await tx<{ watch_id: string }[]>`
        update deliveries
           set status = ${next.status},
               retry_step = ${next.status === 'pending' ? next.retryStep : d.retry_step},
               next_attempt_at = now() + ${delayMs} * interval '1 millisecond',
               lease_token = null,
               last_response_status = ${status},
               last_error = ${next.status === 'undeliverable' ? `${error ?? ''}; ${next.reason}` : error},
               delivered_at = ${next.status === 'delivered' ? tx`now()` : null},
               updated_at = now()
         where id = ${d.id} and lease_token = ${d.lease_token}
        returning watch_id`;
      if (updated.length === 0) {
        log.warn({ delivery: d.id }, 'lease lost during delivery; result not recorded as final');
        return;
      }
      if (d.terminal && next.status !== 'pending') {
        await tx`update watches set status = ${next.status}, updated_at = now()
                  where id = ${d.watch_id} and status = 'delivering'`;
      }
    });
    log.info(
      { delivery: d.id, watch: d.watch_id, status, outcome: next.status, duration_ms: result.durationMs, error: error ?? undefined },
      'delivery attempt',
    );
  }

  return new ClaimLoop<ClaimedDelivery>({
    name: 'deliverer',
    claim,
    work,
    maxInFlight: o.maxInFlight ?? 256,
    batchSize: o.batchSize ?? 100,
    idleMs: o.idleMs ?? 250,
    log,
  });
}
