// GET /v1/events: the tenant's outbox as Server-Sent Events, so a developer without a
// public URL can still receive its webhooks (`taskhook listen --forward-to …` re-POSTs
// each one to a local URL). One event per deliveries row of the tenant:
//   id: the webhook-id (msg_…)   event: the event type
//   data: {"webhook_id","type","watch_id","headers":{webhook-id, webhook-timestamp,
//          webhook-signature, content-type},"body":"<the exact webhook body>"}
// signed at send time with the tenant's current secrets, so the body forwarded as is
// verifies like a webhook from the deliverer. Resumable: `Last-Event-ID` (or
// `?last_event_id=` / `?since=`, which also takes a time) → the rows after that id;
// without one, only events committed after the stream opened.
import { Hono } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { Sql } from '../db/client.js';
import type { Logger } from '../log.js';
import type { TenantDirectory } from '../tenancy/directory.js';
import { outboxIdPrefix } from '../delivery/outbox.js';
import { signatureHeader } from '../delivery/sign.js';
import { bodySql } from '../delivery/sql.js';
import type { AppEnv } from './app.js';
import { BadRequest, TooManyRequests } from './errors.js';

export interface EventStreamOptions {
  /** how often the outbox is read for new rows */
  pollMs?: number;
  /** an SSE comment this often keeps proxies and idle timeouts from closing the stream */
  heartbeatMs?: number;
  /** open streams per tenant in this process; one more → 429 */
  maxStreamsPerTenant?: number;
  /** how far behind the newest id already sent each read looks again (see below) */
  overlapMs?: number;
  batchSize?: number;
  /**
   * A page of the outbox holds at most this many bytes of payload (at least one row):
   * payloads can be a megabyte each (upstream's answer), and 100 of them per stream was
   * ~90 MB (issue 12).
   */
  maxPageBytes?: number;
  /** a client that hasn't taken an event (or heartbeat) for this long is dropped */
  slowReaderMs?: number;
  now?: () => number;
}

export const DEFAULT_MAX_PAGE_BYTES = 1 << 20;
export const DEFAULT_SLOW_READER_MS = 30_000;

interface Row {
  id: string;
  watch_id: string;
  event_type: string;
  /** null past the page's byte budget: the page ends before this row */
  payload: string | null;
}

const B32 = '0123456789abcdefghjkmnpqrstvwxyz';
/** a webhook id: msg_ and Crockford base32 (the time part decodes; hex random parts are a subset) */
const MSG_ID = /^msg_[0-9a-hjkmnp-tv-z]{10,40}$/;
const MAX_TIME_MS = Date.UTC(9999, 11, 31);

/** The creation time (ms) in an outbox id's 10-character prefix. */
export function idTimeMs(id: string): number {
  let t = 0;
  for (const ch of id.slice(4, 14)) t = t * 32 + B32.indexOf(ch);
  return t;
}

/** A resume point: a webhook id as is, or a time (ISO 8601 or Unix seconds) as the id prefix of that instant. */
export function resumePoint(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (MSG_ID.test(value)) return value;
  const ms = /^\d{9,11}$/.test(value) ? Number(value) * 1000 : /^\d{4}-\d\d-\d\dT/.test(value) ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_TIME_MS) throw BadRequest('Last-Event-ID / since must be a webhook id (msg_…), an ISO 8601 time or Unix seconds');
  // the id prefix sorts before every id of that millisecond (each has random characters after it)
  return outboxIdPrefix(new Date(ms));
}

/**
 * One page of a tenant's outbox after `after`: up to `batchSize` rows, their payloads
 * within `maxBytes` (the first row always). → the rows to send, and whether more follow.
 */
export async function outboxPage(sql: Sql, tenantId: string, after: string, batchSize: number, maxBytes: number): Promise<{ rows: Array<Row & { payload: string }>; more: boolean }> {
  // The running sum is taken in Postgres, so rows past the budget never reach this
  // process: a stream's memory is bounded by maxBytes, not by batchSize × payload size.
  const rows = await sql<Row[]>`
    select id, watch_id, event_type, case when running - len < ${maxBytes} then payload end as payload from (
      select id, watch_id, event_type, payload, octet_length(payload) as len,
             sum(octet_length(payload)) over (order by id) as running
        from (select d.id, d.watch_id, d.event_type, ${bodySql(sql)} as payload from deliveries d
               where d.tenant_id = ${tenantId} and d.id > ${after}
               order by d.id limit ${batchSize}) q) p
     order by id`;
  const cut = rows.findIndex((r) => r.payload === null);
  if (cut === -1) return { rows: rows as Array<Row & { payload: string }>, more: rows.length === batchSize };
  return { rows: rows.slice(0, cut) as Array<Row & { payload: string }>, more: true };
}

export function eventRoutes(deps: { sql: Sql; tenants: TenantDirectory; log: Logger }, o: EventStreamOptions = {}) {
  const pollMs = o.pollMs ?? 300;
  const heartbeatMs = o.heartbeatMs ?? 15_000;
  const maxStreams = o.maxStreamsPerTenant ?? 5;
  const overlapMs = o.overlapMs ?? 2_000;
  const batchSize = o.batchSize ?? 100;
  const maxPageBytes = o.maxPageBytes ?? DEFAULT_MAX_PAGE_BYTES;
  const slowReaderMs = o.slowReaderMs ?? DEFAULT_SLOW_READER_MS;
  const now = o.now ?? Date.now;
  const { sql, log } = deps;
  const open = new Map<string, number>();
  const app = new Hono<AppEnv>();

  // Keyset read of the tenant's outbox. The primary key (id) serves the range and the
  // order; tenant_id is a filter on the rows of that range, which is the recent past
  // for a live stream. (A resume from far back in a busy multi-tenant outbox would be
  // better served by an index on (tenant_id, id).)
  const page = (tenantId: string, after: string) => outboxPage(sql, tenantId, after, batchSize, maxPageBytes);
  /** ids only, for the "from now" pass: nothing of the payloads is needed there */
  const idPage = (tenantId: string, after: string) => sql<{ id: string }[]>`
    select id from deliveries where tenant_id = ${tenantId} and id > ${after} order by id limit ${batchSize}`;

  app.get('/', async (c) => {
    const tenantId = c.var.tenant.id;
    const resume = resumePoint(c.req.header('last-event-id') ?? c.req.query('last_event_id') ?? c.req.query('since'));
    const streams = open.get(tenantId) ?? 0;
    if (streams >= maxStreams) throw TooManyRequests(`this tenant may have at most ${maxStreams} event streams open at once`, 5_000);
    open.set(tenantId, streams + 1);
    const release = () => {
      const n = (open.get(tenantId) ?? 1) - 1;
      if (n <= 0) open.delete(tenantId);
      else open.set(tenantId, n);
    };

    return streamSSE(c, async (stream) => {
      let closed = false;
      let wake: (() => void) | undefined;
      const stop = () => {
        closed = true;
        wake?.();
      };
      stream.onAbort(stop);
      c.req.raw.signal.addEventListener('abort', stop, { once: true });
      const sleep = (ms: number) =>
        new Promise<void>((resolve) => {
          const t = setTimeout(resolve, ms);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      // A client that stops reading: the socket's buffers fill, our write waits for drain
      // forever, and the stream holds its page. After slowReaderMs we drop the connection.
      const outgoing = (c.env as { outgoing?: { destroy(): void } } | undefined)?.outgoing;
      const write = async (w: Promise<void>) => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => {
          timer = setTimeout(() => resolve('late'), slowReaderMs);
        });
        const r = await Promise.race([w.then(() => 'ok' as const), late]).finally(() => clearTimeout(timer));
        if (r === 'late') {
          log.info({ tenant: tenantId, after_ms: slowReaderMs }, 'event stream: the client is not reading; dropping it');
          stop();
          w.catch(() => {});
          outgoing?.destroy();
          stream.abort();
        }
      };
      try {
        await run(stream, tenantId, resume, () => closed, sleep, write);
      } finally {
        release();
      }
    });
  });

  /**
   * Why the overlap: a delivery id's time prefix is taken when the statement that writes
   * it starts, but the row becomes visible when its transaction commits. A row written by
   * one statement (or process) can commit after another's row with a later id has been
   * read and sent, and a plain "id > last sent" would skip it forever. So each read
   * starts `overlapMs` before the newest id sent and the ids already sent in that window
   * are remembered (and skipped) here. A row committing later than that behind a newer
   * one is still missed; so is one that committed, behind the resume point, after a
   * previous connection had read past it (its Last-Event-ID can't say what it saw).
   */
  async function run(
    stream: SSEStreamingApi,
    tenantId: string,
    resume: string | undefined,
    closed: () => boolean,
    sleep: (ms: number) => Promise<void>,
    write: (w: Promise<void>) => Promise<void>,
  ) {
    const sent = new Map<string, number>(); // id → its time, for the overlap window
    let newest = resume ?? outboxIdPrefix(new Date(now()));
    /** never read at or before the resume point: the client has those */
    const floor = resume ?? '';
    if (!resume) {
      // "From now": whatever is already there (in the overlap window) counts as sent.
      try {
        let after = outboxIdPrefix(new Date(now() - overlapMs));
        for (;;) {
          const rows = await idPage(tenantId, after);
          for (const r of rows) sent.set(r.id, idTimeMs(r.id));
          if (rows.length < batchSize) break;
          after = rows[rows.length - 1]!.id;
        }
      } catch (err) {
        // nothing sent yet: end the stream; the client reconnects
        log.warn({ err: String(err), tenant: tenantId }, 'event stream: reading the outbox failed; closing the stream');
        return;
      }
    }
    // (a comment, so clients see the stream is live; `retry`: reconnect after 1 s)
    await write(stream.write(': ready\nretry: 1000\n\n').then(() => {}));
    let lastWrite = now();
    let failures = 0;
    while (!closed()) {
      try {
        const tenant = await deps.tenants.get(tenantId);
        if (!tenant) return; // disabled since the stream opened
        const windowStart = outboxIdPrefix(new Date(idTimeMs(newest) - overlapMs));
        let after = windowStart > floor ? windowStart : floor;
        for (;;) {
          const { rows, more } = await page(tenantId, after);
          for (const r of rows) {
            if (closed()) return;
            if (sent.has(r.id)) continue;
            const timestamp = Math.floor(now() / 1000);
            const headers = {
              'webhook-id': r.id,
              'webhook-timestamp': String(timestamp),
              'webhook-signature': signatureHeader(tenant.signingSecrets, r.id, timestamp, r.payload),
              'content-type': 'application/json',
            };
            await write(
              stream.writeSSE({
                id: r.id,
                event: r.event_type,
                data: JSON.stringify({ webhook_id: r.id, type: r.event_type, watch_id: r.watch_id, headers, body: r.payload }),
              }),
            );
            if (closed()) return;
            lastWrite = now();
            sent.set(r.id, idTimeMs(r.id));
            if (r.id > newest) newest = r.id;
          }
          if (!more || rows.length === 0) break;
          after = rows[rows.length - 1]!.id;
        }
        const forget = idTimeMs(newest) - overlapMs - 1_000;
        for (const [id, t] of sent) if (t < forget) sent.delete(id);
        failures = 0;
      } catch (err) {
        if (closed()) return;
        failures++;
        log.warn({ err: String(err), tenant: tenantId }, 'event stream: reading the outbox failed; retrying');
        await sleep(Math.min(pollMs * 2 ** failures, 10_000));
        continue;
      }
      if (now() - lastWrite >= heartbeatMs) {
        await write(stream.write(': keepalive\n\n').then(() => {}));
        lastWrite = now();
      }
      await sleep(pollMs);
    }
  }

  return app;
}
