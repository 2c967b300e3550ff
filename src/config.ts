// The environment, parsed once at boot into a typed Config. Nothing else in the
// codebase reads process.env: everything that varies by deployment is here.
import path from 'node:path';
import { z } from 'zod';
import { parseAllowPrivate, type PrivateAllowance } from './net/address-policy.js';
import { parseFaults, type Fault } from './faults.js';
import { DEFAULT_SUBMIT_PATHS, parseSubmitPaths } from './submit/path.js';
import { parseDuration } from './duration.js';
import { DEFAULT_LAG_S } from './durations/tuning.js';
import { DEFAULT_AUTH_THROTTLE, parseAuthThrottle, parseTrustedProxies, type AuthThrottleSettings } from './api/auth-throttle.js';

export { parseDuration } from './duration.js';

const httpUrl = z
  .string()
  .url({ message: 'expected an http(s) URL' })
  .refine((v) => /^https?:\/\//i.test(v), { message: 'expected an http(s) URL' })
  .transform((v) => v.replace(/\/+$/, ''));

// A forward proxy: http(s)://[user:pass@]host:port. May carry credentials, so never echoed.
const proxyUrl = z.string().refine(
  (v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
    } catch {
      return false;
    }
  },
  { message: 'expected a proxy URL like http://proxy.internal:3128' },
);

const positiveInt = (what: string) =>
  z.coerce.number({ message: `expected ${what}` }).int({ message: `expected ${what}` }).positive({ message: `expected ${what}` });
/** An integer in [min, max]; every way of missing it says `expected ${what}`. */
const intBetween = (min: number, max: number, what: string) =>
  z.coerce.number({ message: `expected ${what}` }).int({ message: `expected ${what}` }).min(min, { message: `expected ${what}` }).max(max, { message: `expected ${what}` });

/** TASKHOOK_ALLOW_PRIVATE_CALLBACKS / _UPSTREAMS: one syntax (src/net/address-policy.ts). */
const allowPrivate = () =>
  z
    .string()
    .default('false')
    .transform((v, ctx): PrivateAllowance => {
      try {
        return parseAllowPrivate(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    });

const schema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, { message: 'expected a postgres:// connection string' })
    .optional()
    .describe('Postgres connection string')
    .meta({ unset: 'unset → embedded' }),
  TASKHOOK_DATA_DIR: z.string().min(1).default('./.taskhook').describe('embedded database and generated secrets'),
  PORT: intBetween(0, 65535, 'a port number 0-65535')
    .default(8080)
    .describe('HTTP listener port'),
  HOST: z.string().min(1).default('0.0.0.0').describe('HTTP listener address'),
  TASKHOOK_ROLE: z.enum(['api', 'worker', 'all'], { message: 'expected api, worker or all' }).default('all')
    .describe('`api`, `worker` (poller + deliverer) or `all`; `serve --role` overrides it'),
  UPSTREAM_BASE_URL: httpUrl.default('https://api.aiclonevoicefree.com').describe('default upstream'),
  UPSTREAM_API_KEY: z.string().min(1).optional()
    .describe('upstream key of the default tenant (stored encrypted)')
    .meta({ unset: '—' }),
  TASKHOOK_API_KEY: z
    .string()
    .min(16, { message: 'expected at least 16 characters' })
    .regex(/^[\x21-\x7e]+$/, { message: 'expected printable ASCII without spaces' })
    .optional()
    .describe('gateway key of the default tenant (stored as SHA-256)')
    .meta({ unset: 'generated, printed once' }),
  TASKHOOK_SIGNING_SECRET: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, { message: 'expected whsec_ followed by base64' })
    .refine((v) => Buffer.from(v.slice(6), 'base64').length >= 24, { message: 'expected at least 24 bytes of key after whsec_' })
    .optional()
    .describe('`whsec_…` of the default tenant')
    .meta({ unset: 'generated, printed once' }),
  // Operator-chosen, and it opens every tenant: long enough that guessing (throttled to
  // TASKHOOK_AUTH_THROTTLE per address) is hopeless even if it isn't random.
  TASKHOOK_ADMIN_TOKEN: z
    .string()
    .min(32, { message: 'expected at least 32 characters (generate one: openssl rand -hex 32)' })
    .optional()
    .describe('bearer token for `/v1/admin/*`; at least 32 characters (`openssl rand -hex 32`)')
    .meta({ unset: 'unset = admin API off' }),
  TASKHOOK_METRICS_TOKEN: z.string().min(16, { message: 'expected at least 16 characters' }).optional()
    .describe('when set, `GET /metrics` requires `Authorization: Bearer <token>`')
    .meta({ unset: 'unset = `/metrics` open' }),
  TASKHOOK_ENCRYPTION_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, { message: 'expected 32 bytes, base64-encoded' })
    .optional()
    .describe('32 bytes, base64; encrypts upstream keys at rest (comma list: first encrypts, all decrypt)')
    .meta({ unset: 'generated into the data dir' }),
  TASKHOOK_ALLOW_PRIVATE_CALLBACKS: allowPrivate().describe('`true`, or a comma list of CIDRs/hostnames allowed although private'),
  TASKHOOK_ALLOW_PRIVATE_UPSTREAMS: allowPrivate().describe(
    'the same for tenants\' `upstream_base_url` (self-hosters whose upstream is internal); the origin of `UPSTREAM_BASE_URL` is always allowed',
  ),
  TASKHOOK_AUTH_THROTTLE: z
    .string()
    .default(DEFAULT_AUTH_THROTTLE)
    .transform((v, ctx): AuthThrottleSettings | undefined => {
      try {
        return parseAuthThrottle(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .describe(
      'failed authentications (admin token, gateway keys, dashboard sign-in, metrics token) allowed per client address: `<n>/<duration>` (a burst of n, refilled evenly over the duration), or `off`; past it → 429 with Retry-After',
    ),
  TASKHOOK_TRUSTED_PROXIES: z
    .string()
    .default('')
    .transform((v, ctx) => {
      try {
        return parseTrustedProxies(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .describe('comma list of IPs/CIDRs of your reverse proxies: their `X-Forwarded-For` names the client address the throttle counts')
    .meta({ unset: 'none: the socket peer' }),
  TASKHOOK_NOT_FOUND_GRACE_S: z.coerce.number({ message: 'expected seconds' }).min(0, { message: 'expected seconds ≥ 0' }).default(60)
    .describe('how long a 404 from upstream is tolerated after registration'),
  TASKHOOK_POLL_STRATEGY: z.enum(['adaptive', 'fixed'], { message: 'expected adaptive or fixed' }).default('adaptive')
    .describe('`adaptive` (learned per kind of task: polls where tasks end) or `fixed` (2 s, then every 3–6 s)'),
  // The one knob of `adaptive` (src/durations/tuning.ts): bench/README.md has its measured effect.
  TASKHOOK_POLL_LAG_S: z.coerce
    .number({ message: 'expected seconds (3-60)' })
    .min(3, { message: 'expected seconds (3-60)' })
    .max(60, { message: 'expected seconds (3-60)' })
    .default(DEFAULT_LAG_S)
    .describe('`adaptive`: the longest gap between polls while a task may be ending — lower: webhooks sooner, more upstream requests'),
  TASKHOOK_MAX_WATCH_AGE_S: positiveInt('a positive number of seconds').default(86_400)
    .describe('give up polling after this'),
  TASKHOOK_RETRY_SCHEDULE: z
    .string()
    .default('5s,30s,2m,10m,30m,1h,3h,6h,12h')
    .transform((v, ctx) => {
      const parts = v.split(',').map((p) => parseDuration(p));
      if (parts.length === 0 || parts.some((p) => p === undefined || p <= 0)) {
        ctx.addIssue({ code: 'custom', message: 'expected a comma list of durations like 5s,30s,2m,1h' });
        return z.NEVER;
      }
      return parts as number[];
    })
    .describe('waits between delivery attempts'),
  TASKHOOK_DELIVERY_TIMEOUT_S: z.coerce
    .number({ message: 'expected seconds (0.1-300)' })
    .min(0.1, { message: 'expected seconds (0.1-300)' })
    .max(300, { message: 'expected seconds (0.1-300)' })
    .default(15)
    .describe('per attempt, connect to last byte'),
  TASKHOOK_UPSTREAM_TIMEOUT_S: z.coerce
    .number({ message: 'expected seconds (0.1-120)' })
    .min(0.1, { message: 'expected seconds (0.1-120)' })
    .max(120, { message: 'expected seconds (0.1-120)' })
    .default(10)
    .describe('per upstream poll'),
  TASKHOOK_WORKER_TIMEOUT_S: z.coerce
    .number({ message: 'expected seconds (2-60)' })
    .min(2, { message: 'expected seconds (2-60)' })
    .max(60, { message: 'expected seconds (2-60)' })
    .default(8)
    .describe('a worker whose heartbeat is older than this is dead: the others take over its tasks (src/poller/tuning.ts)'),
  TASKHOOK_SUBMIT_PATHS: z
    .string()
    .default(DEFAULT_SUBMIT_PATHS.join(','))
    .transform((v, ctx) => {
      try {
        return parseSubmitPaths(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .describe('comma list of upstream path prefixes `POST /v1/tasks` may submit to (each `/…/`)'),
  TASKHOOK_SUBMIT_TIMEOUT_S: z.coerce
    .number({ message: 'expected seconds (0.1-300)' })
    .min(0.1, { message: 'expected seconds (0.1-300)' })
    .max(300, { message: 'expected seconds (0.1-300)' })
    .default(30)
    .describe('per upstream submit (`POST /v1/tasks`), connect to last byte; past it the outcome is `unknown`'),
  TASKHOOK_SHUTDOWN_TIMEOUT_S: z.coerce.number({ message: 'expected seconds' }).min(0).max(600).default(10)
    .describe('SIGTERM: how long in-flight work may finish'),
  TASKHOOK_HEAP_GROWING_PERCENT: intBetween(0, 300, 'a percentage 0-300 (0 = V8 decides)')
    .default(50)
    .describe('memory for CPU: the old generation grows at most this much past what survived a full GC before V8 collects it (V8 `--heap-growing-percent`); with little promoted per poll, 50 costs next to nothing and holds 1,000,000 waiting watches under 200 MB (bench/README "round 4"); `0` = V8 decides (up to 4× when GC looks cheap)'),
  TASKHOOK_RETENTION_DAYS: z.coerce
    .number({ message: 'expected a number of days ≥ 0 (0 = keep forever)' })
    .min(0, { message: 'expected a number of days ≥ 0 (0 = keep forever)' })
    .default(30)
    .describe('days finished watches (delivered, undeliverable, cancelled) are kept, with their deliveries and attempts; `0` = forever'),
  // Multiplies every polling delay: tests and demos run the same schedule faster.
  TASKHOOK_POLL_SCALE: z.coerce
    .number({ message: 'expected a number between 0.001 and 100' })
    .min(0.001, { message: 'expected a number between 0.001 and 100' })
    .max(100, { message: 'expected a number between 0.001 and 100' })
    .default(1)
    .describe('multiplies every poll delay (tests and demos use `0.05`)'),
  // Test-only: crash or freeze this process at a named point (see src/faults.ts).
  TASKHOOK_FAULTS: z
    .string()
    .default('')
    .transform((v, ctx): Fault => {
      try {
        return parseFaults(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .describe('tests only: crash or freeze the process at a named point (`src/faults.ts`)')
    .meta({ unset: 'none' }),
  // Standard proxy variables (either case; lowercase wins, as with curl): upstream polls only.
  HTTPS_PROXY: proxyUrl.optional()
    .describe('forward proxy for upstream polls of `https://` upstreams (the lowercase name wins)')
    .meta({ unset: 'unset = direct' }),
  https_proxy: proxyUrl.optional().meta({ sameAs: 'HTTPS_PROXY' }),
  HTTP_PROXY: proxyUrl.optional()
    .describe('forward proxy for upstream polls of `http://` upstreams, and of `https://` ones when HTTPS_PROXY is unset (the lowercase name wins)')
    .meta({ unset: 'unset = direct' }),
  http_proxy: proxyUrl.optional().meta({ sameAs: 'HTTP_PROXY' }),
  NO_PROXY: z.string().optional()
    .describe('upstream hosts reached directly: comma list of names, `.suffix`es, `host:port`, or `*`')
    .meta({ unset: '—' }),
  no_proxy: z.string().optional().meta({ sameAs: 'NO_PROXY' }),
  // Webhook deliveries through this forward proxy (CONNECT); the SSRF policy still applies.
  TASKHOOK_CALLBACK_PROXY: proxyUrl.optional()
    .describe('`http(s)://[user:pass@]host:port`: webhooks go through this proxy (`CONNECT`), callback policy still enforced')
    .meta({ unset: 'unset = direct' }),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info')
    .describe('pino level (`silent` … `trace`)'),
});

export type Env = z.input<typeof schema>;
/** The schema itself: src/config-doc.ts renders the table of docs/configuration.md from it. */
export const envSchema = schema;

export interface Config {
  databaseUrl: string | undefined;
  dataDir: string;
  port: number;
  host: string;
  role: 'api' | 'worker' | 'all';
  upstreamBaseUrl: string;
  upstreamApiKey: string | undefined;
  apiKey: string | undefined;
  signingSecret: string | undefined;
  adminToken: string | undefined;
  /** TASKHOOK_METRICS_TOKEN: unset → /metrics answers anyone */
  metricsToken: string | undefined;
  encryptionKey: string | undefined;
  allowPrivateCallbacks: PrivateAllowance;
  /** TASKHOOK_ALLOW_PRIVATE_UPSTREAMS: non-public addresses tenants' upstreams may have */
  allowPrivateUpstreams: PrivateAllowance;
  /** TASKHOOK_AUTH_THROTTLE; undefined = off */
  authThrottle: AuthThrottleSettings | undefined;
  /** TASKHOOK_TRUSTED_PROXIES, parsed */
  trustedProxies: ReturnType<typeof parseTrustedProxies>;
  notFoundGraceMs: number;
  maxWatchAgeMs: number;
  retryScheduleMs: number[];
  deliveryTimeoutMs: number;
  upstreamTimeoutMs: number;
  /** a heartbeat older than this and a worker is dead (TASKHOOK_WORKER_TIMEOUT_S) */
  workerTimeoutMs: number;
  /** TASKHOOK_HEAP_GROWING_PERCENT (default 50); 0 = V8's own */
  heapGrowingPercent: number;
  /** POST /v1/tasks: the upstream path prefixes allowed, and the upstream call's deadline */
  submitPaths: string[];
  submitTimeoutMs: number;
  shutdownTimeoutMs: number;
  /** finished watches are purged this long after their last change; 0 = kept forever */
  retentionMs: number;
  pollScale: number;
  /** TASKHOOK_POLL_STRATEGY */
  pollStrategy: 'adaptive' | 'fixed';
  /** TASKHOOK_POLL_LAG_S: the adaptive strategy's lag ceiling (s) */
  pollLagS: number;
  faults: Fault;
  logLevel: string;
  /** upstream polls: forward proxies and their exclusions (HTTPS_PROXY / HTTP_PROXY / NO_PROXY) */
  upstreamProxy: { httpsProxy: string | undefined; httpProxy: string | undefined; noProxy: string | undefined };
  /** webhook deliveries through this proxy (TASKHOOK_CALLBACK_PROXY) */
  callbackProxy: string | undefined;
}

export class ConfigError extends Error {}

const SECRET_VARS = new Set([
  'DATABASE_URL',
  'UPSTREAM_API_KEY',
  'TASKHOOK_API_KEY',
  'TASKHOOK_SIGNING_SECRET',
  'TASKHOOK_ADMIN_TOKEN',
  'TASKHOOK_METRICS_TOKEN',
  'TASKHOOK_ENCRYPTION_KEY',
  // proxy URLs may carry user:password
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'TASKHOOK_CALLBACK_PROXY',
]);

/** Parse the environment; a bad value throws ConfigError whose message is one line naming the variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // An empty variable means "unset", the way shells and compose files write it.
  // Whitespace-only counts as empty too (Number(' ') would otherwise be port 0).
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    // Never echo a secret (even a malformed one) into logs.
    const got = SECRET_VARS.has(name) ? '' : ` (got ${JSON.stringify(String(cleaned[name] ?? ''))})`;
    throw new ConfigError(`invalid ${name}: ${issue.message}${got}`);
  }
  const e = parsed.data;
  return {
    databaseUrl: e.DATABASE_URL,
    dataDir: path.resolve(e.TASKHOOK_DATA_DIR),
    port: e.PORT,
    host: e.HOST,
    role: e.TASKHOOK_ROLE,
    upstreamBaseUrl: e.UPSTREAM_BASE_URL,
    upstreamApiKey: e.UPSTREAM_API_KEY,
    apiKey: e.TASKHOOK_API_KEY,
    signingSecret: e.TASKHOOK_SIGNING_SECRET,
    adminToken: e.TASKHOOK_ADMIN_TOKEN,
    metricsToken: e.TASKHOOK_METRICS_TOKEN,
    encryptionKey: e.TASKHOOK_ENCRYPTION_KEY,
    allowPrivateCallbacks: e.TASKHOOK_ALLOW_PRIVATE_CALLBACKS,
    allowPrivateUpstreams: e.TASKHOOK_ALLOW_PRIVATE_UPSTREAMS,
    authThrottle: e.TASKHOOK_AUTH_THROTTLE,
    trustedProxies: e.TASKHOOK_TRUSTED_PROXIES,
    notFoundGraceMs: e.TASKHOOK_NOT_FOUND_GRACE_S * 1000,
    maxWatchAgeMs: e.TASKHOOK_MAX_WATCH_AGE_S * 1000,
    retryScheduleMs: e.TASKHOOK_RETRY_SCHEDULE,
    deliveryTimeoutMs: Math.round(e.TASKHOOK_DELIVERY_TIMEOUT_S * 1000),
    upstreamTimeoutMs: Math.round(e.TASKHOOK_UPSTREAM_TIMEOUT_S * 1000),
    workerTimeoutMs: Math.round(e.TASKHOOK_WORKER_TIMEOUT_S * 1000),
    submitPaths: e.TASKHOOK_SUBMIT_PATHS,
    submitTimeoutMs: Math.round(e.TASKHOOK_SUBMIT_TIMEOUT_S * 1000),
    shutdownTimeoutMs: e.TASKHOOK_SHUTDOWN_TIMEOUT_S * 1000,
    heapGrowingPercent: e.TASKHOOK_HEAP_GROWING_PERCENT,
    retentionMs: e.TASKHOOK_RETENTION_DAYS * 86_400_000,
    pollScale: e.TASKHOOK_POLL_SCALE,
    pollStrategy: e.TASKHOOK_POLL_STRATEGY,
    pollLagS: e.TASKHOOK_POLL_LAG_S,
    faults: e.TASKHOOK_FAULTS,
    logLevel: e.LOG_LEVEL,
    upstreamProxy: {
      httpsProxy: e.https_proxy ?? e.HTTPS_PROXY,
      httpProxy: e.http_proxy ?? e.HTTP_PROXY,
      noProxy: e.no_proxy ?? e.NO_PROXY,
    },
    callbackProxy: e.TASKHOOK_CALLBACK_PROXY,
  };
}
