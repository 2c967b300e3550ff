// Every committed migration is expand-only, or says why it may contract. During a
// deploy the previous release keeps running on the new schema (rolling-upgrade.ops
// test runs one beside the other), so a migration may add but not drop, rename,
// retype or tighten. The checker is support/migration-check.ts; it is tested here too.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { contractMarker, destructiveStatements } from './support/migration-check.js';

const MIGRATIONS = path.resolve(import.meta.dirname, '../migrations');
const files = readdirSync(MIGRATIONS).filter((f) => f.endsWith('.sql')).sort();

describe('committed migrations are additive (expand/contract)', () => {
  it('finds the migrations', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it.each(files)('%s', (file) => {
    const sql = readFileSync(path.join(MIGRATIONS, file), 'utf8');
    const findings = destructiveStatements(sql);
    const reason = contractMarker(sql);
    if (findings.length === 0 || reason) return;
    throw new Error(
      [
        `migrations/${file} would break the previous release, which keeps running on the new schema during a deploy:`,
        ...findings.map((f) => `  - ${f.statement}\n      ${f.why}`),
        'Migrations are expand-only: add tables, nullable or defaulted columns, indexes. A contract step (drop, rename,',
        'retype, tighten) must ship one release after the code stops using what it removes; then say so in the file:',
        '  -- contract: <why nothing running uses it any more, e.g. "watches.legacy unread since 0.4.0">',
        '(README, "Rolling upgrades")',
      ].join('\n'),
    );
  });
});

describe('the checker', () => {
  it.each([
    ['DROP TABLE "watches";', /DROP TABLE/],
    ['drop view active_watches', /DROP VIEW/],
    ['ALTER TABLE "watches" DROP COLUMN "metadata";', /DROP COLUMN/],
    ['alter table\n  public.watches\n  drop metadata', /DROP COLUMN/],
    ['ALTER TABLE "watches" RENAME COLUMN "metadata" TO "meta";', /RENAME/],
    ['ALTER TABLE "watches" RENAME TO "subscriptions";', /RENAME/],
    ['ALTER INDEX "watches_tenant_id_idx" RENAME TO "watches_tenant_idx";', /RENAME/],
    ['ALTER TYPE "state" RENAME VALUE \'done\' TO \'finished\';', /RENAME/],
    ['ALTER TABLE "watches" ALTER COLUMN "status" SET DATA TYPE varchar(16);', /TYPE/],
    ['ALTER TABLE watches ALTER status TYPE integer USING 0', /TYPE/],
    ['ALTER TABLE "deliveries" ALTER COLUMN "endpoint" SET NOT NULL;', /SET NOT NULL/],
    // a backfill fixes the rows there are, not the NULLs the previous release goes on writing
    ['UPDATE "deliveries" SET "endpoint" = \'x\' WHERE "endpoint" IS NULL;--> statement-breakpoint\nALTER TABLE "deliveries" ALTER COLUMN "endpoint" SET NOT NULL;', /SET NOT NULL/],
    ['ALTER TABLE "watches" ADD COLUMN "region" text NOT NULL;', /NOT NULL without a DEFAULT/],
    ['ALTER TABLE "watches" ALTER COLUMN "status" DROP DEFAULT;', /DROP DEFAULT/],
    ['DROP INDEX "watches_tenant_id_idx";', /DROP INDEX of watches_tenant_id_idx/],
    ['CREATE INDEX "a_idx" ON "t" ("a");--> statement-breakpoint\nDROP INDEX IF EXISTS "a_idx", "b_idx" CASCADE;', /DROP INDEX of b_idx,/],
    ['ALTER TABLE "tenants" DROP CONSTRAINT "tenants_api_key_hash_unique";', /DROP CONSTRAINT/],
    ['CREATE UNIQUE INDEX "watches_task_uq" ON "watches" USING btree ("task_id");', /UNIQUE INDEX/],
    ['ALTER TABLE "watches" ADD CONSTRAINT "status_ck" CHECK (status <> \'\');', /ADD CHECK/],
    ['ALTER TABLE "watches" ADD CONSTRAINT "w_fk" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");', /ADD FOREIGN KEY/],
    ['TRUNCATE "delivery_attempts";', /TRUNCATE/],
  ])('rejects %s', (sql, why) => {
    const findings = destructiveStatements(sql);
    expect(findings).toHaveLength(1);
    expect(findings[0]!.why).toMatch(why);
  });

  it.each([
    // like 0001: a nullable column, an index, a backfill; the words in the comment and the string are not statements
    `ALTER TABLE "deliveries" ADD COLUMN "endpoint" text;--> statement-breakpoint
CREATE INDEX "deliveries_endpoint_pending_idx" ON "deliveries" USING btree ("endpoint") WHERE status = 'pending';--> statement-breakpoint
-- backfill: rows written before the column existed; we don't DROP TABLE anything; here
UPDATE "deliveries" SET "endpoint" = 'DROP TABLE x; ALTER TABLE y DROP COLUMN z' WHERE "endpoint" IS NULL;`,
    'ALTER TABLE "watches" ADD COLUMN "priority" integer DEFAULT 0 NOT NULL;',
    'CREATE INDEX CONCURRENTLY IF NOT EXISTS "w_idx" ON "watches" ("updated_at");',
    // a new table: anything goes on it, and on its constraints and indexes
    `CREATE TABLE "regions" ("id" text PRIMARY KEY NOT NULL, "tenant_id" text NOT NULL, "name" text NOT NULL);--> statement-breakpoint
ALTER TABLE "regions" ADD CONSTRAINT "regions_tenant_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade;--> statement-breakpoint
ALTER TABLE "regions" ALTER COLUMN "name" SET DATA TYPE varchar(64);--> statement-breakpoint
CREATE UNIQUE INDEX "regions_name_uq" ON "regions" USING btree ("tenant_id","name");`,
    // new columns: a foreign key and a unique index over them tighten nothing old code writes
    `ALTER TABLE "watches" ADD COLUMN "parent_id" text;--> statement-breakpoint
ALTER TABLE "watches" ADD CONSTRAINT "watches_parent_fk" FOREIGN KEY ("parent_id") REFERENCES "watches"("id");--> statement-breakpoint
CREATE UNIQUE INDEX "watches_parent_uq" ON "watches" ("parent_id");`,
    // NOT NULL done right: backfill, and a default for the rows the previous release inserts
    `ALTER TABLE "deliveries" ALTER COLUMN "endpoint" SET DEFAULT '';--> statement-breakpoint
UPDATE "deliveries" SET "endpoint" = '' WHERE "endpoint" IS NULL;--> statement-breakpoint
ALTER TABLE "deliveries" ALTER COLUMN "endpoint" SET NOT NULL;`,
    'CREATE INDEX "tmp_idx" ON "watches" ("status");--> statement-breakpoint\nDROP INDEX "tmp_idx";',
    'ALTER TYPE "state" ADD VALUE \'paused\';',
  ])('accepts %s', (sql) => {
    expect(destructiveStatements(sql)).toEqual([]);
  });

  it('reads the contract marker, which needs a reason', () => {
    const contract = '-- contract: watches.legacy unread since 0.4.0\nALTER TABLE "watches" DROP COLUMN "legacy";';
    expect(destructiveStatements(contract)).toHaveLength(1);
    expect(contractMarker(contract)).toBe('watches.legacy unread since 0.4.0');
    expect(contractMarker('-- contract:\nALTER TABLE "watches" DROP COLUMN "legacy";')).toBeUndefined();
    expect(contractMarker('ALTER TABLE "watches" DROP COLUMN "legacy"; -- no contract: here')).toBeUndefined();
  });
});
