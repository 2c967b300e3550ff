// The typed client's types (src/api-types.ts) are generated from the gateway's zod
// schemas: stale → this fails (run `npm run types:api`); and at compile time (`tsc
// --noEmit`, part of `npm test`) each generated type must be the schema's own: an answer
// the server can send fits the client's type and vice versa, a request the client's
// type allows is one the schema's input type allows.
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { API_TYPES, API_TYPES_FILE, renderApiTypes } from '../src/api/openapi/client-types.js';
import type * as T from '../src/api-types.js';

const ROOT = path.resolve(import.meta.dirname, '..');

type Out<K extends keyof typeof API_TYPES.output> = z.output<(typeof API_TYPES.output)[K]>;
type In<K extends keyof typeof API_TYPES.input> = z.input<(typeof API_TYPES.input)[K]>;
/** mutual assignability: the same type, as far as any program can tell */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** the client's type is the schema's, or narrower where the schema's type is loose; with the same fields */
type Narrower<Client, Server> = [Client] extends [Server] ? (Same<keyof Client, keyof Server> extends true ? true : false) : false;
type Expect<V extends true> = V;

export type Checks = [
  Expect<Same<T.Problem, Out<'Problem'>>>,
  Expect<Same<T.TaskSnapshot, Out<'TaskSnapshot'>>>,
  Expect<Same<T.Watch, Out<'Watch'>>>,
  Expect<Same<T.WatchPage, Out<'WatchPage'>>>,
  Expect<Same<T.DeliveryAttempt, Out<'DeliveryAttempt'>>>,
  Expect<Same<T.TenantSettings, Out<'TenantSettings'>>>,
  Expect<Same<T.RotatedSecret, Out<'RotatedSecret'>>>,
  // zod types looseObject().extend({ status: z.literal('completed') }) with the base's
  // status union (the schema checks the literal): the generated `data.status` is the literal
  Expect<Narrower<T.TaskCompletedEvent, Out<'TaskCompletedEvent'>>>,
  Expect<Narrower<T.TaskFailedEvent, Out<'TaskFailedEvent'>>>,
  Expect<Narrower<T.TaskCancelledEvent, Out<'TaskCancelledEvent'>>>,
  Expect<Narrower<T.TaskProcessingEvent, Out<'TaskProcessingEvent'>>>,
  Expect<Same<T.WatchFailedEvent, Out<'WatchFailedEvent'>>>,
  Expect<Narrower<T.WebhookEvent, Out<'WebhookEvent'>>>,
  Expect<Same<T.RegisterWatch, In<'RegisterWatch'>>>,
  // limit is coerced from a query string (its zod input type is unknown): the client sends a number
  Expect<Narrower<T.ListWatches, Partial<In<'ListWatches'>>>>,
  Expect<Same<T.UpdateTenant, In<'UpdateTenant'>>>,
];

describe('src/api-types.ts', () => {
  it('is the one generated from the schemas (run `npm run types:api` if this fails)', () => {
    expect(readFileSync(API_TYPES_FILE, 'utf8')).toBe(renderApiTypes());
  });

  it('`npm run types:api -- --check` agrees', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/api/openapi/client-types.ts', '--check'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout).toContain('up to date');
    expect(r.status).toBe(0);
  });

  it('imports nothing: the package declares these types without zod or any server module', () => {
    const text = readFileSync(API_TYPES_FILE, 'utf8');
    expect(text).not.toMatch(/^\s*import\b/m);
    expect(text).not.toMatch(/\bfrom\s+['"]/);
    for (const name of [...Object.keys(API_TYPES.output), ...Object.keys(API_TYPES.input)]) expect(text).toMatch(new RegExp(`^export (interface|type) ${name}\\b`, 'm'));
  });
});
