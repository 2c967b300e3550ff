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
import { bootstrapDefaultTenant, loadSecretBox } from './tenancy/bootstrap.js';
import { TenantDirectory } from './tenancy/directory.js';
import { TenantStore } from './tenancy/store.js';
import { WatchStore } from './watches/store.js';
import { createApp } from './api/app.js';
import { UpstreamClient } from './upstream/client.js';
import { createPoller } from './poller/poller.js';
import { createDeliverer } from './delivery/worker.js';
import { createSender } from './delivery/send.js';
import { createRetention, type Retention } from './retention.js';
import { VERSION } from './version.js';
import { createMetrics } from './metrics.js';

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
  stop(): Promise<void>;
}

export interface GatewayOverrides {
  lookupAll?: LookupAll;
  idleMs?: number;
}

export async function startGateway(cfg: Config, log: Logger, over: GatewayOverrides = {}): Promise<Gateway> {
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
  const tenants = new TenantDirectory(sql, box, { upstreamBaseUrl: cfg.upstreamBaseUrl });
  const policy = new AddressPolicy(cfg.allowPrivateCallbacks);
  const runWorkers = cfg.role === 'worker' || cfg.role === 'all';
  const metrics = createMetrics({ sql });

  let upstream: UpstreamClient | undefined;
  let poller: ReturnType<typeof createPoller> | undefined;
  let deliverer: ReturnType<typeof createDeliverer> | undefined;
  let callbackAgent: ReturnType<typeof createCallbackDispatcher> | undefined;
  let retention: Retention | undefined;
  if (runWorkers) {
    upstream = new UpstreamClient({ timeoutMs: cfg.upstreamTimeoutMs, proxy: cfg.upstreamProxy });
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
      leaseMs: leaseFor(cfg.upstreamTimeoutMs),
      requestTimeoutMs: cfg.upstreamTimeoutMs,
      fault: cfg.faults,
      onEnqueued: () => d.wake(),
      idleMs: over.idleMs,
      metrics,
    });
    poller.start();
    deliverer.start();
    retention = createRetention({ sql, log: log.child({ engine: 'retention' }), retentionMs: cfg.retentionMs });
    retention.start();
  }

  let server: ServerType | undefined;
  let url: string | undefined;
  {
    // Every role listens: workers answer /healthz and /readyz for orchestrators; only api/all serve /v1.
    const app = createApp({
      serveApi: cfg.role !== 'worker',
      sql,
      log,
      tenants,
      watches: new WatchStore(sql, cfg.pollScale),
      policy,
      lookupAll: over.lookupAll,
      onEnqueued: () => deliverer?.wake(),
      ready: () => (poller ? poller.healthy && deliverer!.healthy : true),
      tenantStore: new TenantStore(sql, box, tenants, { upstreamBaseUrl: cfg.upstreamBaseUrl }),
      sessionBox: box,
      adminToken: cfg.adminToken,
      metrics: metrics.registry,
      metricsToken: cfg.metricsToken,
    });
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, port: cfg.port, hostname: cfg.host }, () => resolve(s));
    });
    const addr = server.address() as AddressInfo;
    url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  }

  return {
    url,
    database,
    generated,
    async stop() {
      const deadline = cfg.shutdownTimeoutMs;
      const closing = server ? new Promise<void>((r) => server!.close(() => r())) : Promise.resolve();
      const drained = await Promise.all([poller?.stop(deadline), deliverer?.stop(deadline), retention?.stop()]);
      const clean = drained.every((d) => d !== false);
      if (!clean) log.warn('shutdown deadline passed with work in flight; its leases were handed back for another process');
      (server as { closeAllConnections?: () => void } | undefined)?.closeAllConnections?.();
      await closing;
      // close() would wait for the requests still hanging; past the deadline we cut them.
      await Promise.all(clean ? [upstream?.close(), callbackAgent?.close()] : [upstream?.destroy(), callbackAgent?.destroy()]);
      await database.close();
    },
  };
}
