// A fresh database per test, cloned from the migrated template.
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { withDatabase } from './global-setup.js';

export interface TestDb {
  url: string;
  sql: postgres.Sql;
  drop(): Promise<void>;
}

/**
 * `empty`: no migrations at all (the rolling-upgrade test lets an old release migrate it).
 * Either way it is named so the global teardown drops it.
 */
export async function createTestDb(opts: { empty?: boolean } = {}): Promise<TestDb> {
  const adminUrl = inject('adminUrl');
  const template = inject('templateDb');
  const name = `${template.replace('_tpl_', '_t_')}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  // CREATE DATABASE … TEMPLATE fails if another session is connected to the template; retry briefly.
  for (let i = 0; ; i++) {
    if (opts.empty) {
      await admin.unsafe(`create database ${name}`);
      break;
    }
    try {
      await admin.unsafe(`create database ${name} template ${template}`);
      break;
    } catch (err) {
      if (i > 20 || !/being accessed by other users/.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const url = withDatabase(adminUrl, name);
  const sql = postgres(url, { max: 3, onnotice: () => {} });
  return {
    url,
    sql,
    async drop() {
      await sql.end({ timeout: 2 });
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}
