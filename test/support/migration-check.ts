// Is a migration expand-only? During a deploy the previous release keeps running on
// the new schema (README "Rolling upgrades"), so a migration may add tables, nullable
// or defaulted columns and indexes, but must not take away or tighten anything the
// previous release reads or writes. Those "contract" steps ship one release after the
// code stops using what they remove, marked in the file with `-- contract: <reason>`.
//
// This is a reader of what drizzle-kit generates (and what one hand-writes next to
// it), not a SQL parser: statements are split on `;` after string literals and
// comments are blanked, then each is matched against the rules below. What a table,
// column or index created in the same file does is never a finding: nothing old uses it.

export interface Finding {
  statement: string;
  why: string;
}

const ID = String.raw`(?:"(?:[^"]|"")+"|[a-z_][\w$]*)`;
const QID = String.raw`${ID}(?:\s*\.\s*${ID})?`;

/** The unqualified, unquoted name ("public"."Watches" → Watches; Watches → watches). */
function name(q: string): string {
  const last = q.match(new RegExp(`${ID}$`, 'i'))![0];
  return last.startsWith('"') ? last.slice(1, -1).replace(/""/g, '"') : last.toLowerCase();
}

/** Splits on commas outside parentheses: an ALTER TABLE's actions, a column list. */
function topLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) parts.push(cur.trim());
  return parts;
}

/** The text inside the first balanced parentheses at or after `from`. */
function parens(s: string, from = 0): string | undefined {
  const start = s.indexOf('(', from);
  if (start < 0) return undefined;
  let depth = 0;
  for (let i = start; i < s.length; i++) {
    if (s[i] === '(') depth++;
    if (s[i] === ')' && --depth === 0) return s.slice(start + 1, i);
  }
  return undefined;
}

/** Plain column names of a list like `("a", "b")`; an expression counts as an old column. */
function columnsOf(list: string | undefined): string[] {
  return topLevel(list ?? '?').map((c) => (new RegExp(`^${ID}(\\s+(asc|desc))?$`, 'i').test(c) ? name(c.split(/\s+/)[0]!) : '(expression)'));
}

/** Statements with string literals, dollar-quoted bodies and comments blanked, whitespace collapsed. */
export function statements(sql: string): string[] {
  const blanked = sql.replace(/'(?:[^']|'')*'|\$(\w*)\$[\s\S]*?\$\1\$|--[^\n]*|\/\*[\s\S]*?\*\//g, (m) =>
    m.startsWith("'") ? "''" : m.startsWith('$') ? '$$' : ' ',
  );
  return blanked
    .split(';')
    .map((s) => s.replace(/\s+/g, ' ').trim())
    .filter(Boolean);
}

/** `-- contract: <reason>` in the file: its reason, or undefined. */
export function contractMarker(sql: string): string | undefined {
  return /^\s*--\s*contract:[ \t]*(\S.*)$/im.exec(sql)?.[1]?.trim();
}

/** The statements of one migration file that an old process could not run beside. */
export function destructiveStatements(sql: string): Finding[] {
  const stmts = statements(sql);
  const re = (src: string) => new RegExp(src, 'i');

  // What this file creates: nothing released uses it yet.
  const tables = new Set<string>();
  const indexes = new Set<string>();
  const columns = new Set<string>(); // table.column added here
  const defaulted = new Set<string>(); // table.column given a DEFAULT here
  const backfilled = new Set<string>(); // table.column set by an UPDATE here
  for (const s of stmts) {
    let m: RegExpExecArray | null;
    if ((m = re(`^create (?:unlogged |temp(?:orary)? )?table (?:if not exists )?(${QID})`).exec(s))) tables.add(name(m[1]!));
    if ((m = re(`^create (?:unique )?index (?:concurrently )?(?:if not exists )?(${QID}) on `).exec(s))) indexes.add(name(m[1]!));
    if ((m = re(`^alter table (?:if exists )?(?:only )?(${QID}) (.*)$`).exec(s))) {
      const table = name(m[1]!);
      for (const action of topLevel(m[2]!)) {
        const add = re(`^add (?:column )?(?:if not exists )?(${ID}) (.*)$`).exec(action);
        if (add && !/^(constraint|unique|primary|check|foreign|exclude)$/i.test(add[1]!)) {
          columns.add(`${table}.${name(add[1]!)}`);
          if (/\bdefault\b/i.test(add[2]!)) defaulted.add(`${table}.${name(add[1]!)}`);
        }
        const def = re(`^alter (?:column )?(${ID}) set default\\b`).exec(action);
        if (def) defaulted.add(`${table}.${name(def[1]!)}`);
      }
    }
    if ((m = re(`^update (?:only )?(${QID}) (?:(?:as )?${ID} )?set (.*?)(?: from | where |$)`).exec(s))) {
      for (const a of topLevel(m[2]!)) {
        const col = re(`^(${ID}) ?=`).exec(a);
        if (col) backfilled.add(`${name(m[1]!)}.${name(col[1]!)}`);
      }
    }
  }

  const findings: Finding[] = [];
  const flag = (statement: string, why: string) => findings.push({ statement, why });
  for (const s of stmts) {
    let m: RegExpExecArray | null;
    if ((m = re(`^drop index (?:concurrently )?(?:if exists )?(.*?)(?: cascade| restrict)?$`).exec(s))) {
      const old = topLevel(m[1]!).map(name).filter((i) => !indexes.has(i));
      if (old.length) flag(s, `DROP INDEX of ${old.join(', ')}, which the previous release may rely on (ON CONFLICT needs its unique indexes; its queries need theirs to stay fast)`);
    } else if ((m = re(`^drop (table|view|materialized view|sequence|type|domain|schema|function|procedure|trigger|extension)\\b`).exec(s))) {
      flag(s, `DROP ${m[1]!.toUpperCase()}: the previous release still uses it`);
    } else if (re(`^truncate\\b`).test(s)) {
      flag(s, 'TRUNCATE deletes rows the previous release is still working on');
    } else if (re(`^alter (?!table\\b)\\w+(?: \\w+)? ${QID} rename\\b`).test(s)) {
      flag(s, 'RENAME: the previous release still uses the old name');
    } else if ((m = re(`^alter table (?:if exists )?(?:only )?(${QID}) (.*)$`).exec(s))) {
      const table = name(m[1]!);
      if (tables.has(table)) continue;
      for (const action of topLevel(m[2]!)) {
        let a: RegExpExecArray | null;
        const col = (c: string) => `${table}.${name(c)}`;
        if (re(`^rename\\b`).test(action)) flag(s, 'RENAME: the previous release still uses the old name');
        else if (re(`^drop constraint\\b`).test(action)) flag(s, 'DROP CONSTRAINT: the previous release may rely on it (ON CONFLICT, or the data it guarantees)');
        else if ((a = re(`^drop (?:column )?(?:if exists )?(${ID})`).exec(action)) && !columns.has(col(a[1]!)))
          flag(s, 'DROP COLUMN: the previous release still reads or writes it');
        else if ((a = re(`^alter (?:column )?(${ID}) (?:set data )?type\\b`).exec(action)) && !columns.has(col(a[1]!)))
          flag(s, 'ALTER COLUMN … TYPE: the previous release reads and writes the old type (and the rewrite locks the table)');
        else if ((a = re(`^alter (?:column )?(${ID}) drop default\\b`).exec(action)) && !columns.has(col(a[1]!)))
          flag(s, 'DROP DEFAULT: the previous release may insert rows relying on it');
        else if ((a = re(`^alter (?:column )?(${ID}) set not null\\b`).exec(action))) {
          const c = col(a[1]!);
          // Safe only if no row is left NULL (a new column with a default, or a backfill)
          // and the previous release's inserts, which omit the column, get a default.
          if (!(defaulted.has(c) && (columns.has(c) || backfilled.has(c))))
            flag(s, 'SET NOT NULL without a backfill and a DEFAULT in this migration: the previous release may leave the column NULL');
        } else if ((a = re(`^add (?:column )?(?:if not exists )?(${ID}) (.*)$`).exec(action)) && !/^(constraint|unique|primary|check|foreign|exclude)$/i.test(a[1]!)) {
          if (/\bnot null\b/i.test(a[2]!) && !/\b(default|generated)\b/i.test(a[2]!))
            flag(s, 'ADD COLUMN … NOT NULL without a DEFAULT: the previous release inserts rows without it (and it fails on a table with rows)');
        } else if ((a = re(`^add (?:constraint ${ID} )?(unique|primary key|foreign key|check|exclude)\\b`).exec(action))) {
          const kind = a[1]!.toLowerCase();
          const cols = kind === 'check' || kind === 'exclude' ? ['(expression)'] : columnsOf(parens(action));
          if (!cols.every((c) => columns.has(`${table}.${c}`)))
            flag(s, `ADD ${kind.toUpperCase()} over existing columns: rows the previous release writes may violate it`);
        }
      }
    } else if ((m = re(`^create unique index (?:concurrently )?(?:if not exists )?(?:${QID} )?on (?:only )?(${QID})`).exec(s))) {
      const table = name(m[1]!);
      const cols = columnsOf(parens(s, m.index + m[0].length));
      if (!tables.has(table) && !cols.every((c) => columns.has(`${table}.${c}`)))
        flag(s, 'CREATE UNIQUE INDEX over existing columns: inserts of the previous release may now conflict');
    }
  }
  return findings;
}
