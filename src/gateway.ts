// Composes a running gateway from a Config: database, migrations, default tenant,
// the HTTP API and/or the poller and deliverer engines. main.ts and the tests both
// start gateways through here, so what is tested is what runs.
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { Config } from './config.js';
import { openDatabase, type Database } from './db/client.js';
import { runMigrations } from './db/migrate.js';
import type { Logger } from './log.js';
import { AddressPolicy, type LookupAll } from './net/address-policy.js';
import { createCallbackDispatcher } from './net/callback-proxy.js';
import { bootstrapDefaultTenant, defaultTenantHasUpstreamKey, loadSecretBox } from './tenancy/bootstrap.js';
import { TenantDirectory } from './tenancy/directory.js';
import { TenantStore } from './tenancy/store.js';
import { WatchStore } from './watches/store.js';
import { createApp } from './api/app.js';
import { AuthThrottle } from './api/auth-throttle.js';
import type { EventStreamOptions } from './api/events.js';
import { UpstreamClient, type UpstreamAddressRules } from './upstream/client.js';
import { createPoller } from './poller/poller.js';
import { createDeliverer } from './delivery/worker.js';
import { createSender } from './delivery/send.js';
import { createRetention, type Retention } from './retention.js';
import { VERSION } from './version.js';
import { createMetrics } from './metrics.js';
import { DurationCache } from './durations/cache.js';
import { createLearner, type Learner } from './durations/learner.js';
import { learningTimes, tuningFor } from './durations/tuning.js';
import { Submitter } from './submit/submitter.js';

/**
 * A lease must outlive the whole request it covers (deadline, quick retries, the
 * commit after), or a slow-but-alive worker would be doubled by another. Twice the
 * deadline plus 5 s; an expired lease is how work of a killed process comes back.
 */
export const leaseFor = (deadlineMs: number) => 2 * deadlineMs + 5_000;

export interface Gateway {
  /** http://host:port of this process's listener (the API unless role is worker) */
  url: string | undefined;
  database: Database;
  /** secrets generated at first boot (to print once); empty on later boots */
  generated: { apiKey?: string; signingSecret?: string };
  /** what the operator should fix, one line each (printed at start by `serve`) */
  warnings: string[];
  stop(): Promise<void>;
}

/** Start-up failed for a reason the operator can fix; the message is the one line to print. */
export class StartupError extends Error {}

/** The listener's failure as one line naming the setting to change. */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  switch (err.code) {
    case 'EADDRINUSE':
      return new StartupError(`port ${port} is already in use on ${host}: stop what listens there, or set PORT to another port`);
    case 'EACCES':
      return new StartupError(`not allowed to listen on port ${port} (ports below 1024 need privileges): set PORT to another port`);
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartupError(`cannot listen on HOST ${host}: it is not an address of this machine`);
    default:
      return err;
  }
}

export interface GatewayOverrides {
  lookupAll?: LookupAll;
  idleMs?: number;
  eventStream?: EventStreamOptions;
  /** how often the duration learner folds (tests: sooner than its 5 s) */
  learnEveryMs?: number;
}

type Fetch = (req: Request, env: unknown) => Response | Promise<Response>;

/**
 * Listens first: a port already in use fails at once, before a database is started, a
 * migration applied or a secret generated (and then shown to no one). Until the app is
 * built every request is answered 503.
 */
export async function startGateway(cfg: Config, log: Logger, over: GatewayOverrides = {}): Promise<Gateway> {
  let fetch: Fetch = () => new Response('{"status":"starting"}', { status: 503, headers: { 'content-type': 'application/json' } });
  let server: ServerType;
  try {
    server = await new Promise<ServerType>((resolve, reject) => {
      const s = serve({ fetch: (req, env) => fetch(req, env), port: cfg.port, hostname: cfg.host }, () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
  } catch (err) {
    throw listenError(err as NodeJS.ErrnoException, cfg.host, cfg.port);
  }
  try {
    return await compose(cfg, log, over, server, (app) => (fetch = app));
  } catch (err) {
    await new Promise<void>((r) => server.close(() => r()));
    throw err;
  }
}

async function compose(cfg: Config, log: Logger, over: GatewayOverrides, server: ServerType, serveApp: (app: Fetch) => void): Promise<Gateway> {
  // 10 connections: claims and completions are batched, so a few carry the load; keeping
  // it small lets many processes share one server (100 connections by default).
  const database = await openDatabase(cfg, (msg) => log.info(msg), { max: 10 });
  const { sql } = database;
  await runMigrations(database.url);
  const box = await loadSecretBox(cfg.encryptionKey, cfg.dataDir);
  const generated = await bootstrapDefaultTenant(sql, box, {
    apiKey: cfg.apiKey,
    signingSecret: cfg.signingSecret,
    upstreamApiKey: cfg.upstreamApiKey,
    warn: (msg) => log.warn(msg),
  });
  const warnings: string[] = [];
  if (!cfg.upstreamApiKey && !(await defaultTenantHasUpstreamKey(sql))) {
    warnings.push(
      'UPSTREAM_API_KEY is not set: the default tenant polls upstream without a key, so its watches will end watch.failed (upstream_unauthorized); set UPSTREAM_API_KEY=sk_…',
    );
  }
  const tenants = new TenantDirectory(sql, box, { upstreamBaseUrl: cfg.upstreamBaseUrl });
  const policy = new AddressPolicy(cfg.allowPrivateCallbacks);
  const upstreamRules: UpstreamAddressRules = {
    policy: new AddressPolicy(cfg.allowPrivateUpstreams),
    trustedBaseUrls: [cfg.upstreamBaseUrl],
    lookupAll: over.lookupAll,
  };
  const runWorkers = cfg.role === 'worker' || cfg.role === 'all';
  // What was learned about task durations: every role reads it (the watch's ETA); the
  // worker's poller schedules from it unless TASKHOOK_POLL_STRATEGY=fixed.
  const learning = learningTimes(cfg.pollScale);
  const durations = new DurationCache({
    sql,
    log: log.child({ engine: 'durations' }),
    tuning: cfg.pollStrategy === 'adaptive' ? tuningFor(cfg.pollLagS) : undefined,
    refreshMs: learning.refreshMs,
    decay: learning.decay,
  });
  await durations.refresh().catch((err: unknown) => log.warn({ err }, 'duration cache: first read failed; polling on the fixed cadence until it succeeds'));
  durations.start();
  const metrics = createMetrics({ sql, durations });

  // One client for polls and submits (POST /v1/tasks): one pool, one proxy and address policy.
  const upstream = new UpstreamClient({ timeoutMs: cfg.upstreamTimeoutMs, proxy: cfg.upstreamProxy, addresses: upstreamRules });
  let poller: ReturnType<typeof createPoller> | undefined;
  let deliverer: ReturnType<typeof createDeliverer> | undefined;
  let callbackAgent: ReturnType<typeof createCallbackDispatcher> | undefined;
  let retention: Retention | undefined;
  let learner: Learner | undefined;
  if (runWorkers) {
    callbackAgent = createCallbackDispatcher({
      proxyUrl: cfg.callbackProxy,
      policy,
      lookupAll: over.lookupAll,
      connectTimeoutMs: Math.min(cfg.deliveryTimeoutMs, 10_000),
    });
    deliverer = createDeliverer({
      sql,
      tenants,
      log: log.child({ engine: 'deliverer' }),
      sender: createSender({ dispatcher: callbackAgent, timeoutMs: cfg.deliveryTimeoutMs, userAgent: `taskhook/${VERSION}` }),
      retryScheduleMs: cfg.retryScheduleMs,
      leaseMs: leaseFor(cfg.deliveryTimeoutMs),
      deliveryTimeoutMs: cfg.deliveryTimeoutMs,
      fault: cfg.faults,
      idleMs: over.idleMs,
      metrics,
      worker: () => poller?.aliveWorkerId ?? null,
    });
    const d = deliverer;
    poller = createPoller({
      sql,
      tenants,
      upstream,
      log: log.child({ engine: 'poller' }),
      notFoundGraceMs: cfg.notFoundGraceMs,
      maxWatchAgeMs: cfg.maxWatchAgeMs,
      pollScale: cfg.pollScale,
      workerTimeoutMs: cfg.workerTimeoutMs,
      requestTimeoutMs: cfg.upstreamTimeoutMs,
      fault: cfg.faults,
      onEnqueued: () => d.wake(),
      idleMs: over.idleMs,
      metrics,
      durations,
    });
    poller.start();
    learner = createLearner({
      sql,
      log: log.child({ engine: 'learner' }),
      pollScale: cfg.pollScale,
      intervalMs: over.learnEveryMs ?? learning.learnEveryMs,
      settleMs: learning.settleMs,
      decay: learning.decay,
      onFolded: (tenant, kind, polls) => metrics.taskFinished(kind, polls),
      onChanged: () => durations.poke(),
    });
    learner.start();
    deliverer.start();
    retention = createRetention({ sql, log: log.child({ engine: 'retention' }), retentionMs: cfg.retentionMs });
    retention.start();
  }

  let url: string | undefined;
  {
    // Every role listens: workers answer /healthz and /readyz for orchestrators; only api/all serve /v1.
    const watches = new WatchStore(sql, cfg.pollScale, (tenantId, task) => durations.eta(tenantId, task));
    const app = createApp({
      serveApi: cfg.role !== 'worker',
      sql,
      log,
      tenants,
      watches,
      durations,
      submitter:
        cfg.role === 'worker'
          ? undefined
          : new Submitter({
              sql,
              watches,
              upstream,
              log: log.child({ component: 'submit' }),
              allowedPaths: cfg.submitPaths,
              timeoutMs: cfg.submitTimeoutMs,
              userAgent: `taskhook/${VERSION}`,
              metrics,
              fault: cfg.faults,
            }),
      policy,
      upstreamRules,
      lookupAll: over.lookupAll,
      onEnqueued: () => deliverer?.wake(),
      ready: () => (poller ? poller.healthy && deliverer!.healthy : true),
      tenantStore: new TenantStore(sql, box, tenants, { upstreamBaseUrl: cfg.upstreamBaseUrl }),
      sessionBox: box,
      adminToken: cfg.adminToken,
      metrics: metrics.registry,
      metricsToken: cfg.metricsToken,
      eventStream: over.eventStream,
      authThrottle: cfg.authThrottle ? new AuthThrottle({ ...cfg.authThrottle, trustedProxies: cfg.trustedProxies }) : undefined,
    });
    serveApp(app.fetch);
    const addr = server.address() as AddressInfo;
    url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  }

  return {
    url,
    database,
    generated,
    warnings,
    async stop() {
      const deadline = cfg.shutdownTimeoutMs;
      const closing = new Promise<void>((r) => server.close(() => r()));
      const drained = await Promise.all([poller?.stop(deadline), deliverer?.stop(deadline), retention?.stop(), learner?.stop(), durations.stop()]);
      const clean = drained.every((d) => d !== false);
      if (!clean) log.warn('shutdown deadline passed with work in flight; its leases were handed back for another process');
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      await closing;
      // close() would wait for the requests still hanging; past the deadline we cut them.
      await Promise.all(clean ? [upstream.close(), callbackAgent?.close()] : [upstream.destroy(), callbackAgent?.destroy()]);
      await database.close();
    },
  };
}
