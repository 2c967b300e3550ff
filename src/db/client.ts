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

export function connect(url: string, opts: { max?: number } = {}): Database {
  const sql = postgres(url, {
    max: opts.max ?? 10,
    onnotice: () => {},
    // Connections are re-made after a server restart; idle ones are recycled.
    idle_timeout: 60,
    connect_timeout: 10,
    connection: { application_name: 'taskhook' },
  });
  return { sql, url, close: () => sql.end({ timeout: 5 }) };
}

/** DATABASE_URL if given, else the embedded server under dataDir (started if need be). */
export async function openDatabase(
  cfg: { databaseUrl: string | undefined; dataDir: string },
  log: (msg: string) => void,
  opts: { max?: number } = {},
): Promise<Database> {
  if (cfg.databaseUrl) return connect(cfg.databaseUrl, opts);
  const embedded = await startEmbedded(cfg.dataDir, log);
  const database = connect(embedded.url, opts);
  return {
    ...database,
    close: async () => {
      await database.close();
      await embedded.stop();
    },
  };
}
