// The types of the typed client (the `taskhook` package: taskhook/client, taskhook/verify),
// generated from the zod schemas the gateway validates requests and documents answers
// with, into src/api-types.ts: plain TypeScript with no import at all, so the package's
// declarations never reach zod or any server code. Each schema goes through zod's own
// JSON Schema conversion (inputs as accepted, outputs as answered) and is printed as
// a type; schemas registered here become named types others refer to.
//
// To add one (a new route's body or answer): a line in API_TYPES, then `npm run types:api`.
// test/api-types.test.ts fails while src/api-types.ts is stale, and checks at compile time
// that each generated type is the schema's own (z.output for answers, z.input for requests).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { listWatchesQuery, registerWatchBody, submitTaskBody } from '../validation.js';
import { patchTenantBody } from '../tenant.js';
import {
  deliveryAttemptSchema,
  problemSchema,
  rotatedSecretSchema,
  submittedTaskSchema,
  taskSnapshotSchema,
  tenantViewSchema,
  watchPageSchema,
  watchSchema,
  webhookEventSchema,
  webhookEventSchemas,
} from './schemas.js';

export const API_TYPES_FILE = path.resolve(import.meta.dirname, '../../api-types.ts');

/** name → schema, in the order printed. Answers are z.output types, requests z.input ones. */
export const API_TYPES = {
  output: {
    Problem: problemSchema,
    TaskSnapshot: taskSnapshotSchema,
    Watch: watchSchema,
    WatchPage: watchPageSchema,
    SubmittedTask: submittedTaskSchema,
    DeliveryAttempt: deliveryAttemptSchema,
    TenantSettings: tenantViewSchema,
    RotatedSecret: rotatedSecretSchema,
    TaskCompletedEvent: webhookEventSchemas['task.completed'],
    TaskFailedEvent: webhookEventSchemas['task.failed'],
    TaskCancelledEvent: webhookEventSchemas['task.cancelled'],
    TaskProcessingEvent: webhookEventSchemas['task.processing'],
    WatchFailedEvent: webhookEventSchemas['watch.failed'],
    WebhookEvent: webhookEventSchema,
  },
  input: {
    RegisterWatch: registerWatchBody,
    SubmitTask: submitTaskBody,
    ListWatches: listWatchesQuery,
    UpdateTenant: patchTenantBody,
  },
} as const satisfies Record<'input' | 'output', Record<string, z.ZodType>>;

/** Aliases written after the generated types. */
const EXTRAS = ["/** The `type` of a webhook. */\nexport type WebhookEventType = WebhookEvent['type'];"];

interface Schema {
  $ref?: string;
  const?: unknown;
  enum?: unknown[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  type?: string | string[];
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  description?: string;
  format?: string;
}

const IDENT = /^[A-Za-z_$][\w$]*$/;
const doc = (text: string | undefined, pad: string) => (text ? `${pad}/** ${text.replace(/\*\//g, '*\\/')} */\n` : '');

/** A property's words: its description (or that of the non-null member of `X | null`), and what a date-time is. */
function describe(p: Schema): string | undefined {
  const members = [p, ...(p.anyOf ?? p.oneOf ?? [])];
  const text = members.map((m) => m.description).find(Boolean);
  const time = members.some((m) => m.format === 'date-time') ? 'ISO 8601 time' : undefined;
  return text && time ? `${text} (${time})` : (text ?? time);
}

function print(s: Schema, pad: string, io: 'input' | 'output'): string {
  if (s.$ref) return s.$ref;
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' | ');
  const union = s.anyOf ?? s.oneOf;
  if (union) return [...new Set(union.map((m) => print(m, pad, io)))].map((t) => (t.includes('\n') || !t.includes(' | ') ? t : `(${t})`)).join(' | ');
  if (s.allOf) return s.allOf.map((m) => print(m, pad, io)).join(' & ');
  if (Array.isArray(s.type)) return s.type.map((t) => print({ ...s, type: t }, pad, io)).join(' | ');
  switch (s.type) {
    case 'string':
      return 'string';
    case 'number':
    case 'integer':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'null':
      return 'null';
    case 'array': {
      const item = s.items ? print(s.items, pad, io) : 'unknown';
      return /^[\w.]+$/.test(item) ? `${item}[]` : `Array<${item}>`;
    }
    case 'object':
      return printObject(s, pad, io);
    default:
      return 'unknown';
  }
}

function printObject(s: Schema, pad: string, io: 'input' | 'output'): string {
  const props = Object.entries(s.properties ?? {});
  const extra = s.additionalProperties;
  const extraType = extra === undefined || extra === false ? undefined : extra === true ? 'unknown' : print(extra, `${pad}  `, io);
  if (props.length === 0) return extraType ? `Record<string, ${extraType}>` : 'Record<string, never>';
  const inner = `${pad}  `;
  const required = new Set(s.required ?? []);
  const lines = props.map(([name, p]) => {
    const optional = !required.has(name);
    // A request field may be given as undefined (JSON leaves it out): say so, for exactOptionalPropertyTypes.
    const type = print(p, inner, io) + (optional && io === 'input' ? ' | undefined' : '');
    return `${doc(describe(p), inner)}${inner}${IDENT.test(name) ? name : JSON.stringify(name)}${optional ? '?' : ''}: ${type};`;
  });
  if (extraType) lines.push(`${inner}[key: string]: ${extraType};`);
  return `{\n${lines.join('\n')}\n${pad}}`;
}

/** src/api-types.ts as it should be. */
export function renderApiTypes(): string {
  const parts = [
    '// Generated by `npm run types:api` (src/api/openapi/client-types.ts) from the zod schemas the',
    '// gateway validates requests and documents answers with. Do not edit: change the schema, then regenerate.',
    '// No imports: this is what the `taskhook` package declares (taskhook/client, taskhook/verify).',
  ];
  for (const io of ['output', 'input'] as const) {
    const registry = z.registry<{ id: string }>();
    for (const [id, schema] of Object.entries(API_TYPES[io])) registry.add(schema, { id });
    const { schemas } = z.toJSONSchema(registry, { io, uri: (id) => id, unrepresentable: 'any' }) as unknown as { schemas: Record<string, Schema> };
    for (const name of Object.keys(API_TYPES[io])) {
      const s = schemas[name]!;
      const body = print(s, '', io);
      parts.push('');
      if (s.description) parts.push(doc(s.description, '').trimEnd());
      parts.push(s.type === 'object' && body.startsWith('{') ? `export interface ${name} ${body}` : `export type ${name} = ${body};`);
    }
  }
  parts.push('', ...EXTRAS);
  return `${parts.join('\n')}\n`;
}

// `tsx src/api/openapi/client-types.ts [--check]`: rewrite src/api-types.ts (or exit 1 if it is stale).
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const next = renderApiTypes();
  const current = await readFile(API_TYPES_FILE, 'utf8').catch(() => '');
  if (process.argv.includes('--check')) {
    process.stdout.write(current === next ? 'src/api-types.ts is up to date\n' : 'src/api-types.ts is stale: run npm run types:api\n');
    process.exitCode = current === next ? 0 : 1;
  } else {
    if (current !== next) await writeFile(API_TYPES_FILE, next);
    process.stdout.write(current !== next ? 'src/api-types.ts rewritten\n' : 'src/api-types.ts already up to date\n');
  }
}
