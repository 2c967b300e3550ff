// A gateway in this process (for API and flow tests) with its upstream and receiver.
import { loadConfig } from '../../src/config.js';
import { startGateway, type Gateway, type GatewayOverrides } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { startSimUpstream, type SimUpstream } from '../../src/sim/server.js';
import { createTestDb, type TestDb } from './db.js';
import { startReceiver, type Receiver } from './receiver.js';
import { TEST_API_KEY, TEST_SIGNING_SECRET, testEnv } from './env.js';

export interface Stack {
  db: TestDb;
  upstream: SimUpstream;
  receiver: Receiver;
  gateway: Gateway;
  api(path: string, init?: { method?: string; body?: unknown; headers?: Record<string, string> }): Promise<{ status: number; headers: Headers; json: any; text: string }>;
  close(): Promise<void>;
}

export async function startStack(env: Record<string, string> = {}, overrides: GatewayOverrides = {}): Promise<Stack> {
  const db = await createTestDb();
  const upstream = await startSimUpstream({ apiKeys: ['sk_test'] });
  const receiver = await startReceiver([TEST_SIGNING_SECRET]);
  const cfg = loadConfig(testEnv(db.url, upstream.url, env));
  const gateway = await startGateway(cfg, createLogger(cfg.logLevel), { idleMs: 50, ...overrides });
  return {
    db,
    upstream,
    receiver,
    gateway,
    async api(path, init = {}) {
      const headers: Record<string, string> = { authorization: `Bearer ${TEST_API_KEY}`, ...init.headers };
      let body: string | undefined;
      if (init.body !== undefined) {
        body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(`${gateway.url}${path}`, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body });
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.status, headers: res.headers, json, text };
    },
    async close() {
      await gateway.stop();
      await Promise.all([upstream.close(), receiver.close()]);
      await db.drop();
    },
  };
}
