// The soak's client side: calls the gateways' public API the way a careful client
// does (any live process, a timeout, retries on another one; registration is
// idempotent on (task_id, callback_url), so a retry after a lost answer is safe), and
// registers the planned watches on their schedule, creating each task upstream first.
import { setTimeout as sleep } from 'node:timers/promises';
import type { GatewayProc } from './cluster.js';
import type { Plan } from './plan.js';
import type { Registered } from './history.js';

export interface ApiAnswer {
  status: number;
  json: any;
}

export class Api {
  constructor(private readonly procs: GatewayProc[]) {}

  /** a process that is up, or undefined */
  live(): GatewayProc | undefined {
    const up = this.procs.filter((p) => p.state === 'running');
    return up[Math.floor(Math.random() * up.length)];
  }

  /** One request to one live process; status 0 = no answer (refused, reset, timed out). */
  async once(method: string, path: string, key: string, body?: unknown, timeoutMs = 5_000): Promise<ApiAnswer> {
    const p = this.live();
    if (!p) return { status: 0, json: { error: 'no live process' } };
    try {
      const res = await fetch(`${p.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = text;
      }
      return { status: res.status, json };
    } catch (err) {
      return { status: 0, json: { error: String((err as Error).cause ?? err) } };
    }
  }

  /** Retries until an answer that is not a 5xx or a 429 (or `deadlineMs` passes). */
  async call(method: string, path: string, key: string, body?: unknown, deadlineMs = 120_000): Promise<ApiAnswer> {
    const until = Date.now() + deadlineMs;
    for (let i = 0; ; i++) {
      const r = await this.once(method, path, key, body);
      if ((r.status !== 0 && r.status < 500 && r.status !== 429) || Date.now() > until) return r;
      await sleep(Math.min(2_000, 100 * 2 ** Math.min(i, 5)));
    }
  }
}

export async function createUpstreamTask(simUrl: string, key: string, script: object): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(`${simUrl}/api/v2/tasks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(script),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.status === 201) return;
      throw new Error(`sim answered ${res.status}: ${await res.text()}`);
    } catch (err) {
      if (i >= 5) throw err;
      await sleep(200);
    }
  }
}

export interface WorkloadDeps {
  plan: Plan;
  api: Api;
  simUrl: string;
  /** a key the sim accepts, for creating tasks */
  simKey: string;
  gatewayKey(tenant: number): string;
  callbackUrl(tenant: number, u: number): string;
  t0: number;
  registered: Registered[];
}

/** Registers every planned watch at its time (at most 64 registrations in flight); resolves when all have answered. */
export async function runWorkload(d: WorkloadDeps): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  const created = new Map<string, Promise<void>>();
  for (const w of d.plan.watches) {
    const wait = d.t0 + w.atMs - Date.now();
    if (wait > 0) await sleep(wait);
    while (inFlight.size >= 64) await Promise.race(inFlight);
    const rec: Registered = { plan: w, url: d.callbackUrl(w.tenant, w.url), sentAt: 0, doneAt: 0 };
    d.registered.push(rec);
    const p = (async () => {
      // the task exists upstream before the watch (unless it is one created late, or never)
      if (w.script && w.createAfterMs === undefined) {
        let c = created.get(w.taskId);
        if (!c) created.set(w.taskId, (c = createUpstreamTask(d.simUrl, d.simKey, w.script)));
        await c;
      }
      rec.sentAt = Date.now();
      const r = await d.api.call('POST', '/v1/watches', d.gatewayKey(w.tenant), {
        task_id: w.taskId,
        callback_url: rec.url,
        metadata: w.metadata,
        ...(w.events ? { events: w.events } : {}),
      });
      rec.doneAt = Date.now();
      if (r.status === 200 || r.status === 201) rec.id = r.json.id as string;
      else rec.error = `HTTP ${r.status}: ${JSON.stringify(r.json).slice(0, 300)}`;
      if (w.script && w.createAfterMs !== undefined && !created.has(w.taskId)) {
        created.set(w.taskId, Promise.resolve());
        await sleep(w.createAfterMs);
        await createUpstreamTask(d.simUrl, d.simKey, w.script);
        rec.createdAt = Date.now();
      }
    })().catch((err: unknown) => {
      rec.error = String(err);
    });
    const tracked: Promise<void> = p.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  }
  await Promise.all(inFlight);
}
