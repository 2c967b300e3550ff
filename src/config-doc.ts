// The configuration reference's table (docs/configuration.md), rendered from the zod schema in config.ts so the
// two cannot drift: a variable's `.describe()` is its meaning, its `.default()` (or,
// where it has none, `.meta({ unset })`) its default, and `.meta({ sameAs })` folds a
// second spelling (https_proxy) into the row of the first.
//
// `npm run docs:config` rewrites the table between the markers of docs/configuration.md;
// test/config-doc.ops.test.ts fails while it is stale.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { envSchema } from './config.js';

export const START_MARKER = '<!-- config:start -->';
export const END_MARKER = '<!-- config:end -->';
export const CONFIG_DOC = path.resolve(import.meta.dirname, '../docs/configuration.md');

export interface ConfigVar {
  names: string[];
  /** markdown: `value` for a real default, plain text for what happens when unset */
  default: string;
  meaning: string;
}

function defaultOf(t: z.ZodType): { value: unknown } | undefined {
  if (t instanceof z.ZodDefault) return { value: t.def.defaultValue };
  if (t instanceof z.ZodPipe) return defaultOf(t.def.in as z.ZodType);
  return undefined;
}

/** Every variable of the schema, in schema order; throws if one is undocumented. */
export function configVars(schema: z.ZodObject = envSchema): ConfigVar[] {
  const vars: ConfigVar[] = [];
  const byName = new Map<string, ConfigVar>();
  for (const [name, field] of Object.entries(schema.shape) as [string, z.ZodType][]) {
    const meta = z.globalRegistry.get(field) ?? {};
    if (typeof meta.sameAs === 'string') {
      const main = byName.get(meta.sameAs);
      if (!main) throw new Error(`${name}: sameAs ${meta.sameAs}, which is not declared before it`);
      main.names.push(name);
      continue;
    }
    if (!meta.description) throw new Error(`${name}: no .describe() in src/config.ts`);
    const d = defaultOf(field);
    let shown: string;
    if (typeof meta.unset === 'string') shown = meta.unset;
    else if (d && d.value !== '') shown = `\`${String(d.value)}\``;
    else throw new Error(`${name}: no default; say what unset means with .meta({ unset })`);
    const v: ConfigVar = { names: [name], default: shown, meaning: meta.description };
    vars.push(v);
    byName.set(name, v);
  }
  return vars;
}

const cell = (s: string) => s.replace(/\|/g, '\\|');

export function renderConfigTable(vars: ConfigVar[] = configVars()): string {
  const rows = vars.map((v) => `| ${cell(v.names.map((n) => `\`${n}\``).join(' / '))} | ${cell(v.default)} | ${cell(v.meaning)} |`);
  return ['| env | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

/** What the document holds between the markers (trimmed). */
export function tableIn(doc: string): string {
  const start = doc.indexOf(START_MARKER);
  const end = doc.indexOf(END_MARKER);
  if (start < 0 || end < start) throw new Error(`docs/configuration.md: ${START_MARKER} … ${END_MARKER} not found`);
  return doc.slice(start + START_MARKER.length, end).trim();
}

export function withTable(doc: string, table: string): string {
  tableIn(doc); // the markers must be there
  const start = doc.indexOf(START_MARKER) + START_MARKER.length;
  return `${doc.slice(0, start)}\n${table}\n${doc.slice(doc.indexOf(END_MARKER))}`;
}

// `tsx src/config-doc.ts [--check]`: rewrite the table of docs/configuration.md (or exit 1 if it is stale).
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const doc = await readFile(CONFIG_DOC, 'utf8');
  const table = renderConfigTable();
  if (process.argv.includes('--check')) {
    const stale = tableIn(doc) !== table;
    process.stdout.write(stale ? 'docs/configuration.md table is stale: run npm run docs:config\n' : 'docs/configuration.md table is up to date\n');
    process.exitCode = stale ? 1 : 0;
  } else {
    const next = withTable(doc, table);
    if (next !== doc) await writeFile(CONFIG_DOC, next);
    process.stdout.write(next !== doc ? 'docs/configuration.md table rewritten\n' : 'docs/configuration.md table already up to date\n');
  }
}
