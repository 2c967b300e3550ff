// Opens the database the config names (or the embedded one) and hands out one
// postgres.js pool. The hot paths are hand-written SQL (claims, guarded writes);
// drizzle owns the schema and the migrations. We don't wrap this pool in drizzle:
// drizzle replaces postgres.js's timestamp parsers on the client it wraps.
import postgres from 'postgres';
import { startEmbedded } from './embedded.js';

export type Sql = postgres.Sql;

export interface Database {
  sql: Sql;
  url: string;
  close(): Promise<void>;
}

/**
 * Errors meaning the connection under a query went away (server restart, a killed
 * backend, a reset socket), as opposed to an error the server answered with.
 */
const CONNECTION_LOST = new Set(['CONNECTION_CLOSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02', '57P03']);
const errorCode = (err: unknown): string => (typeof err === 'object' && err !== null ? String((err as { code?: unknown }).code) : '');
export const isConnectionLost = (err: unknown): boolean => CONNECTION_LOST.has(errorCode(err));
/** Any failure to reach or keep a database connection (including our own pool teardown). */
export const isConnectionError = (err: unknown): boolean =>
  isConnectionLost(err) || ['CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'ECONNREFUSED'].includes(errorCode(err));

/**
 * One postgres.js pool behind a stable `sql`, replaced when a transaction loses its
 * connection. postgres.js 3.4.x leaves such a connection object poisoned: begin()'s
 * automatic ROLLBACK is written to the closed connection, which (a) throws from a
 * setImmediate (handled in main.ts) and (b) leaves a stale pending write behind, so
 * every later reconnect of that pool slot stalls until connect_timeout. A fresh pool
 * is the only way to get rid of those slots; the old one is ended in the background.
 */
export function connect(url: string, opts: { max?: number } = {}, onReplace?: (msg: string) => void): Database {
  const make = () =>
    postgres(url, {
      max: opts.max ?? 10,
      onnotice: () => {},
      // Connections are re-made after a server restart; idle ones are recycled.
      idle_timeout: 60,
      connect_timeout: 10,
      // Reconnect attempts: postgres.js's default backoff grows to ~20 s shared by the
      // whole pool, so a query during an outage waited that long to fail (/readyz hung
      // instead of answering 503) and recovery after a restart lagged as much.
      backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
      connection: { application_name: 'taskhook' },
    });
  let current = make();
  let closing: Promise<void> | undefined;
  const retiring = new Set<Promise<void>>();

  function retire(pool: Sql, err: unknown) {
    if (pool !== current || closing) return;
    current = make();
    onReplace?.(`database connection lost inside a transaction (${String((err as { code?: unknown }).code)}); replacing the connection pool`);
    const ended: Promise<void> = pool
      .end({ timeout: 2 })
      .catch(() => {})
      .finally(() => retiring.delete(ended));
    retiring.add(ended);
  }

  const begin = async (...args: unknown[]) => {
    const pool = current;
    try {
      return await (pool.begin as (...a: unknown[]) => Promise<unknown>)(...args);
    } catch (err) {
      if (isConnectionLost(err)) retire(pool, err);
      throw err;
    }
  };
  const close = () =>
    (closing ??= (async () => {
      await Promise.all([current.end({ timeout: 5 }), ...retiring]);
    })());

  const sql = new Proxy((() => {}) as unknown as Sql, {
    apply: (_target, _this, args: unknown[]) => (current as unknown as (...a: unknown[]) => unknown)(...args),
    get: (_target, prop) => {
      if (prop === 'begin') return begin;
      if (prop === 'end') return close;
      return Reflect.get(current, prop);
    },
  });
  return { sql, url, close };
}

/** DATABASE_URL if given, else the embedded server under dataDir (started if need be). */
export async function openDatabase(
  cfg: { databaseUrl: string | undefined; dataDir: string },
  log: (msg: string) => void,
  opts: { max?: number } = {},
): Promise<Database> {
  if (cfg.databaseUrl) return connect(cfg.databaseUrl, opts, log);
  const embedded = await startEmbedded(cfg.dataDir, log);
  const database = connect(embedded.url, opts, log);
  return {
    ...database,
    close: async () => {
      await database.close();
      await embedded.stop();
    },
  };
}
