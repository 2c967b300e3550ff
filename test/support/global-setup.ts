// Once per test run: a Postgres server (DATABASE_URL's, or an embedded one in a
// temp dir) and a migrated template database each test clones in milliseconds; and the
// one line saying the browser tests are skipped, when they are (support/browser.ts).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { startEmbedded } from '../../src/db/embedded.js';
import { runMigrations } from '../../src/db/migrate.js';
import { browserSkipNotice } from './browser.js';

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
    templateDb: string;
  }
}

export default async function setup(project: TestProject) {
  const notice = browserSkipNotice();
  if (notice) process.stdout.write(notice);
  let adminUrl: string;
  let stopEmbedded: (() => Promise<void>) | undefined;
  let tmp: string | undefined;
  if (process.env.DATABASE_URL) {
    adminUrl = process.env.DATABASE_URL;
  } else {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'taskhook-test-'));
    const embedded = await startEmbedded(tmp, () => {});
    adminUrl = embedded.url;
    stopEmbedded = embedded.stop;
  }
  const templateDb = `taskhook_tpl_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${templateDb}`);
  await admin.unsafe(`create database ${templateDb}`);
  await runMigrations(withDatabase(adminUrl, templateDb));
  await admin.end();
  project.provide('adminUrl', adminUrl);
  project.provide('templateDb', templateDb);

  return async () => {
    const a = postgres(adminUrl, { max: 1, onnotice: () => {} });
    const dbs = await a<{ datname: string }[]>`select datname from pg_database where datname like ${`taskhook_t%_${process.pid}%`} or datname = ${templateDb}`;
    for (const { datname } of dbs) await a.unsafe(`drop database if exists ${datname} with (force)`).catch(() => {});
    await a.end();
    await stopEmbedded?.();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  };
}

export function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}
