// "The previous release" for the rolling-upgrade test: the source tree as it was
// just before the newest migration was committed (the parent of the last commit
// that changed the migration journal), extracted with `git archive` into a temp
// dir and run with this checkout's node_modules (bin/taskhook.js runs the sources
// through tsx: no build step). Also a few schema helpers the test compares with.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';

const ROOT = path.resolve(import.meta.dirname, '../..');
const JOURNAL = 'migrations/meta/_journal.json';

export interface OldRelease {
  /** the extracted tree: run `node <dir>/bin/taskhook.js` */
  dir: string;
  /** `<sha>^` and what it resolved to */
  rev: string;
  commit: string;
  /** its migrations (journal tags) and this checkout's; theirs is a strict prefix of ours */
  migrations: string[];
  current: string[];
  remove(): Promise<void>;
}

/** Journal tags of the tree at `root` (e.g. ['0000_init', …]). */
export function journalTags(root: string): string[] {
  const journal = JSON.parse(readFileSync(path.join(root, JOURNAL), 'utf8')) as { entries: { tag: string }[] };
  return journal.entries.map((e) => e.tag);
}

function git(...args: string[]): string {
  try {
    return execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`git ${args.join(' ')} failed: ${(e.stderr || e.message).trim()}`);
  }
}

/** Why the test cannot run here (no git checkout), or undefined. Anything else is a failure, not a skip. */
export function whyNoPreviousRelease(): string | undefined {
  if (!existsSync(path.join(ROOT, '.git'))) return `${ROOT} is not a git checkout (no .git): the previous release cannot be extracted`;
  return undefined;
}

/** Extracts the previous release; throws, saying why, on anything unexpected. */
export async function extractPreviousRelease(): Promise<OldRelease> {
  const last = git('log', '-1', '--format=%H', '--', JOURNAL);
  if (!last) throw new Error(`no commit in this history changed ${JOURNAL} (a shallow clone? CI needs the full history)`);
  const rev = `${last}^`;
  let commit: string;
  try {
    commit = git('rev-parse', '--verify', `${rev}^{commit}`);
  } catch (err) {
    const shallow = git('rev-parse', '--is-shallow-repository') === 'true';
    throw new Error(`${rev} (parent of the last migration commit) is not available${shallow ? ': this is a shallow clone, fetch the full history' : ''}\n${(err as Error).message}`);
  }
  const nodeModules = path.join(ROOT, 'node_modules');
  if (!existsSync(nodeModules)) throw new Error(`${nodeModules} is missing: install the dependencies first (npm ci)`);

  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'taskhook-prev-release-'));
  const remove = () => fs.rm(dir, { recursive: true, force: true }); // removes the node_modules link, not its target
  try {
    const tar = path.join(dir, '.release.tar');
    git('archive', '--format=tar', '-o', tar, commit);
    execFileSync('tar', ['-x', '-f', tar, '-C', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    await fs.rm(tar);
    await fs.symlink(nodeModules, path.join(dir, 'node_modules'), 'dir');
    if (!existsSync(path.join(dir, 'bin/taskhook.js'))) throw new Error(`${rev} has no bin/taskhook.js`);

    const migrations = journalTags(dir);
    const current = journalTags(ROOT);
    const prefix = migrations.every((t, i) => current[i] === t);
    if (!prefix || migrations.length >= current.length) {
      throw new Error(
        `expected ${rev}'s migrations to be a strict prefix of this checkout's:\n  ${rev}: ${migrations.join(', ')}\n  now: ${current.join(', ')}\n` +
          'committed migrations must never be edited, renumbered or removed',
      );
    }
    return { dir, rev, commit, migrations, current, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** Applied migrations, oldest first (empty before the first migration). */
export async function appliedMigrations(sql: postgres.Sql): Promise<string[]> {
  const [t] = await sql<{ n: number }[]>`
    select count(*)::int as n from information_schema.tables where table_schema = 'drizzle' and table_name = '__drizzle_migrations'`;
  if (!t?.n) return [];
  const rows = await sql<{ hash: string; created_at: string }[]>`select hash, created_at::text from drizzle.__drizzle_migrations order by created_at`;
  return rows.map((r) => `${r.created_at} ${r.hash}`);
}

/**
 * The schema as sorted lines (columns with type, nullability and default; indexes;
 * constraints; enum labels), to compare two databases or one database over time.
 */
export async function schemaOf(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql<{ line: string }[]>`
    select format('column %s.%s %s null=%s default=%s', table_name, column_name, data_type, is_nullable, coalesce(column_default, '-')) as line
      from information_schema.columns where table_schema = 'public'
    union all
    select format('index %s', indexdef) from pg_indexes where schemaname = 'public'
    union all
    select format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
      from pg_constraint where connamespace = 'public'::regnamespace
    union all
    select format('enum %s %s', t.typname, string_agg(e.enumlabel, ',' order by e.enumsortorder))
      from pg_type t join pg_enum e on e.enumtypid = t.oid where t.typnamespace = 'public'::regnamespace group by t.typname
    order by 1`;
  return rows.map((r) => r.line);
}
