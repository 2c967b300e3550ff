// The nemesis: carries out the planned actions at their times against the live
// cluster and records each as a fault with its real start and end. It keeps one
// invariant of its own: at least one gateway process is running at every moment (a
// kill or stop that would break it is skipped and recorded as such); faults on the
// database never overlap each other.
import { setTimeout as sleep } from 'node:timers/promises';
import type { GatewayProc, Pg } from './cluster.js';
import { CRASH_KINDS, type NemesisAction, type Plan } from './plan.js';
import type { ApiAction, Fault, Registered, Rotation } from './history.js';
import type { Api } from './workload.js';

export interface NemesisDeps {
  plan: Plan;
  procs: GatewayProc[];
  pg: Pg;
  api: Api;
  simUrl: string;
  t0: number;
  registered: Registered[];
  gatewayKey(tenant: number): string;
  upstreamKey(tenant: number): string;
  addSecret(tenant: number, secret: string, at: number): number;
  faults: Fault[];
  cancels: ApiAction[];
  redeliveries: ApiAction[];
  rotations: Rotation[];
  lostRotations: Array<{ tenant: number; sentAt: number }>;
  log(line: string): void;
}

/** rotations of one tenant closer than this could leave a process signing with a secret already dropped */
const ROTATE_SPACING_MS = 30_000;

export class Nemesis {
  private readonly pending = new Set<Promise<void>>();
  private dbBusy = false;
  private readonly lastRotation = new Map<number, number>();
  private healing = false;

  constructor(private readonly d: NemesisDeps) {}

  /** Runs the plan to its end; `heal()` then ends what is still going on. */
  async run(): Promise<void> {
    for (const a of this.d.plan.nemesis) {
      const wait = this.d.t0 + a.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      if (this.healing) break;
      const p: Promise<void> = this.act(a)
        .catch((err: unknown) => this.d.log(`nemesis ${a.kind} failed: ${String(err)}`))
        .finally(() => this.pending.delete(p));
      this.pending.add(p);
    }
  }

  /** Ends every fault now (stopped processes continued, dead ones restarted unless abandoned, upstream faults cleared) and waits for in-flight actions. */
  async heal(): Promise<void> {
    this.healing = true;
    for (const p of this.d.procs) if (p.state === 'stopped') p.cont();
    await fetch(`${this.d.simUrl}/_sim/faults`, { method: 'DELETE' }).catch(() => {});
    await Promise.all(this.pending);
  }

  private record(kind: string, start: number, detail: string, extra: Partial<Fault> = {}): Fault {
    const f: Fault = { kind, start, end: start, detail, crash: CRASH_KINDS.has(kind), takeover: CRASH_KINDS.has(kind) || kind === 'term', ...extra };
    this.d.faults.push(f);
    return f;
  }

  /** the target process, or the next running one after it; undefined if that would leave none running */
  private victim(target: number): GatewayProc | undefined {
    const procs = this.d.procs;
    const running = procs.filter((p) => p.state === 'running');
    if (running.length <= 1) return undefined;
    for (let k = 0; k < procs.length; k++) {
      const p = procs[(target + k) % procs.length]!;
      if (p.state === 'running') return p;
    }
    return undefined;
  }

  private async restart(p: GatewayProc, afterMs: number): Promise<void> {
    const wake = Date.now() + afterMs;
    while (Date.now() < wake && !this.healing) await sleep(Math.min(200, wake - Date.now()));
    await p.start();
  }

  private async act(a: NemesisAction): Promise<void> {
    const start = Date.now();
    switch (a.kind) {
      case 'kill': {
        const p = this.victim(a.target);
        if (!p) return void this.record('kill', start, `process ${a.target}`, { skipped: 'it would leave no process running' });
        // "or not": stays down, unless that would leave fewer than one process that will come back
        // (keeping two that come back when there are three or more, so later faults still have a victim)
        const stayDown = a.ms < 0 && this.d.procs.filter((q) => !q.abandoned && q !== p).length >= Math.min(2, this.d.procs.length - 1);
        await p.kill();
        const f = this.record('kill', start, `SIGKILL process ${p.index}${stayDown ? ', not restarted' : `, restart after ${Math.round(a.ms)} ms`}`);
        if (stayDown) {
          p.abandoned = true;
          return;
        }
        await this.restart(p, Math.max(0, a.ms));
        f.end = Date.now();
        return;
      }
      case 'stop': {
        const p = this.victim(a.target);
        if (!p) return void this.record('stop', start, `process ${a.target}`, { skipped: 'it would leave no process running' });
        p.stop();
        const f = this.record('stop', start, `SIGSTOP process ${p.index} for ${Math.round(a.ms)} ms`);
        const until = start + a.ms;
        while (Date.now() < until && !this.healing) await sleep(Math.min(200, until - Date.now()));
        p.cont();
        f.end = Date.now();
        return;
      }
      case 'term': {
        const p = this.victim(a.target);
        if (!p) return void this.record('term', start, `process ${a.target}`, { skipped: 'it would leave no process running' });
        const code = await p.term();
        const f = this.record('term', start, `SIGTERM process ${p.index} (exit ${code}), restart after ${Math.round(a.ms)} ms`);
        if (code !== 0) f.detail += ' — graceful stop did not exit 0';
        // its deadline passed with work in flight (a starved box): what it handed back unfinished may be sent twice
        if (p.stopAbandonedWork) Object.assign(f, { crash: true, detail: `${f.detail} — its shutdown deadline passed with work in flight` });
        await this.restart(p, a.ms);
        f.end = Date.now();
        return;
      }
      case 'pg-restart': {
        if (this.dbBusy) return void this.record('pg-restart', start, '', { skipped: 'another database fault is running' });
        if (!this.d.pg.canRestart) return void this.record('pg-restart', start, '', { skipped: this.d.pg.restartNote });
        this.dbBusy = true;
        const f = this.record('pg-restart', start, `Postgres down ~${Math.round(a.ms)} ms (${this.d.pg.restartNote})`);
        try {
          await this.d.pg.restart(a.ms);
        } finally {
          this.dbBusy = false;
          f.end = Date.now();
        }
        return;
      }
      case 'pg-terminate': {
        if (this.dbBusy) return void this.record('pg-terminate', start, '', { skipped: 'another database fault is running' });
        this.dbBusy = true;
        let n = 0;
        try {
          for (let i = 0; i < a.ms; i++) {
            n += await this.d.pg.terminateBackends();
            if (i + 1 < a.ms) await sleep(300);
          }
        } finally {
          this.dbBusy = false;
        }
        const f = this.record('pg-terminate', start, `pg_terminate_backend × ${a.ms} rounds: ${n} connections`);
        f.end = Date.now();
        return;
      }
      case 'upstream': {
        const key = a.target >= 0 ? this.d.upstreamKey(a.target) : undefined;
        const res = await fetch(`${this.d.simUrl}/_sim/faults`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ mode: a.mode, ms: Math.round(a.ms), ...(key ? { key } : {}), retry_after_s: 1 }),
        });
        if (res.status !== 201) throw new Error(`sim refused the fault: ${res.status} ${await res.text()}`);
        const f = this.record(`upstream-${a.mode}`, start, `upstream answers ${a.mode} for ${Math.round(a.ms)} ms to ${a.target >= 0 ? `tenant ${a.target}` : 'every tenant'}`);
        f.end = start + a.ms;
        return;
      }
      case 'cancel':
      case 'redeliver': {
        const reg = this.d.registered.filter((r) => r.id);
        if (reg.length === 0) return;
        const targets = [...new Set(a.picks!.map((x) => reg[Math.floor(x * reg.length * (a.kind === 'redeliver' ? 0.8 : 1))]!))];
        await Promise.all(
          targets.map(async (r) => {
            const at = Date.now();
            const ans =
              a.kind === 'cancel'
                ? await this.d.api.once('DELETE', `/v1/watches/${r.id}`, this.d.gatewayKey(r.plan.tenant))
                : await this.d.api.once('POST', `/v1/watches/${r.id}/redeliver`, this.d.gatewayKey(r.plan.tenant));
            const action: ApiAction = { watchId: r.id!, at, doneAt: Date.now(), http: ans.status, status: ans.json?.status };
            (a.kind === 'cancel' ? this.d.cancels : this.d.redeliveries).push(action);
          }),
        );
        const f = this.record(a.kind, start, `${a.kind} ${targets.length} watch(es)`);
        f.end = Date.now();
        return;
      }
      case 'rotate': {
        const last = this.lastRotation.get(a.target) ?? -Infinity;
        if (start - last < ROTATE_SPACING_MS) return void this.record('rotate', start, `tenant ${a.target}`, { skipped: 'rotated less than 30 s ago' });
        this.lastRotation.set(a.target, start);
        const ans = await this.d.api.once('POST', '/v1/tenant/signing-secret/rotate', this.d.gatewayKey(a.target));
        const doneAt = Date.now();
        if (ans.status !== 200 || typeof ans.json?.signing_secret !== 'string') {
          // No answer: the rotation may or may not have happened, and we can't know the new secret.
          // The next webhooks would be unverifiable, so this is reported as a failure of the run.
          this.d.lostRotations.push({ tenant: a.target, sentAt: start });
          this.record('rotate', start, `tenant ${a.target}: HTTP ${ans.status} ${JSON.stringify(ans.json).slice(0, 200)}`, { skipped: 'no answer' });
          return;
        }
        const secret = this.d.addSecret(a.target, ans.json.signing_secret as string, start);
        this.d.rotations.push({ tenant: a.target, sentAt: start, doneAt, secret });
        const f = this.record('rotate', start, `rotate tenant ${a.target}'s signing secret`);
        f.end = doneAt;
        return;
      }
    }
  }
}
