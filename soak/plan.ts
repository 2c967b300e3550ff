// The whole run decided up front from one seed: the watches (when, which tenant,
// task script, callback URL, events, metadata), every flapping receiver's good and bad
// periods, and the nemesis's actions. Pure: `makePlan(options)` twice gives the same
// plan, so `--seed` replays the run's choices (what they then hit depends on timing:
// "stop process 2" finds whatever process 2 is doing at that moment).
import { Rng } from './rng.js';

export const NEMESIS_KINDS = ['kill', 'stop', 'term', 'pg-restart', 'pg-terminate', 'upstream', 'cancel', 'redeliver', 'rotate'] as const;
export type NemesisKind = (typeof NEMESIS_KINDS)[number];
/** Faults that may leave work half-done in a process or the database: the only allowed source of duplicates. */
export const CRASH_KINDS: ReadonlySet<string> = new Set(['kill', 'stop', 'pg-restart', 'pg-terminate']);

export const UPSTREAM_MODES = ['500', '429', 'garbage', 'hang'] as const;
export const RECEIVER_MODES = ['500', 'hang', '429', 'close', '410'] as const;
export type ReceiverMode = (typeof RECEIVER_MODES)[number];

export type TaskKind = 'completed' | 'failed' | 'cancelled' | 'unknown' | 'late' | 'never' | 'unauthorized';

export interface SoakOptions {
  seed: number;
  watches: number;
  /** the fault phase: registrations and faults all happen inside it */
  durationMs: number;
  processes: number;
  /** tenants created through the admin API besides the default one */
  tenants: number;
  /** TASKHOOK_POLL_SCALE of the gateways */
  scale: number;
  /** mean time between nemesis actions */
  faultEveryMs: number;
  kinds: readonly NemesisKind[];
  maxWatchAgeS: number;
  deliveryTimeoutS: number;
  upstreamTimeoutS: number;
}

export interface PlannedWatch {
  i: number;
  atMs: number;
  /** 0 = the default tenant, 1..tenants = created ones, tenants+1 = the tenant with a wrong upstream key */
  tenant: number;
  taskId: string;
  kind: TaskKind;
  /** the sim script, or undefined for a task that never exists upstream */
  script?: { task_id: string; capability: string; outcome: string; durationMs: number; processingAfterMs: number; extra?: Record<string, unknown> };
  /** create the task upstream this long after registering (a task the first poll does not find yet) */
  createAfterMs?: number;
  /** index into the tenant's callback URLs */
  url: number;
  events?: string[];
  metadata: Record<string, unknown>;
  /** a second watch on the task of watch `twinOf` (same tenant, other URL) */
  twinOf?: number;
}

export interface FlapPeriod {
  fromMs: number;
  toMs: number;
  mode: ReceiverMode;
}

export interface PlannedUrl {
  origin: number;
  path: string;
  healthy: boolean;
  /** healthy URLs answer 2xx after 0..delayMaxMs */
  delayMaxMs: number;
  flaps: FlapPeriod[];
}

export interface NemesisAction {
  atMs: number;
  kind: NemesisKind;
  /** process index for kill/stop/term; tenant index for rotate/upstream (-1 = every tenant) */
  target: number;
  /** how long the fault lasts (down time, stop time, storm length); restart delay for kill (-1 = stays down) and term */
  ms: number;
  mode?: string;
  /** fractions into the registered watches, for cancel/redeliver */
  picks?: number[];
}

export interface Plan {
  options: SoakOptions;
  /** origins: 0-1 healthy only, 2-3 flapping only, 4 shared by healthy and flapping URLs */
  origins: number;
  /** per tenant (incl. the bad-key one), its callback URLs */
  urls: PlannedUrl[][];
  watches: PlannedWatch[];
  nemesis: NemesisAction[];
  /** the first part of the run has no crash faults, so duplicates there must be zero */
  calmUntilMs: number;
}

const ORIGINS = 5;
/** per tenant: [origin, healthy, weight] */
const URL_LAYOUT: Array<[number, boolean, number]> = [
  [0, true, 3],
  [1, true, 3],
  [2, false, 2],
  [3, false, 2],
  [4, true, 2],
  [4, false, 1],
];

/** A lease outlives its request by this much (src/gateway.ts leaseFor); a stop past it lets another process take over. */
export const leaseMs = (deadlineS: number) => 2 * deadlineS * 1000 + 5_000;

function flapSchedule(rng: Rng, durationMs: number): FlapPeriod[] {
  const out: FlapPeriod[] = [];
  let t = rng.range(1_000, 8_000);
  while (t < durationMs) {
    const len = rng.range(800, 5_000);
    const mode = rng.weighted<ReceiverMode>({ '500': 3, hang: 2, '429': 2, close: 2, '410': 1 });
    out.push({ fromMs: t, toMs: Math.min(durationMs, t + len), mode });
    t += len + rng.range(3_000, 15_000);
  }
  return out;
}

export function makePlan(o: SoakOptions): Plan {
  const root = new Rng(o.seed);
  const tenantCount = o.tenants + 2; // default + created + the bad-key one
  const urls: PlannedUrl[][] = [];
  for (let t = 0; t < tenantCount; t++) {
    urls.push(
      URL_LAYOUT.map(([origin, healthy], u) => {
        const rng = root.fork(`url:${t}:${u}`);
        return { origin, path: `/t${t}/u${u}`, healthy, delayMaxMs: healthy ? rng.int(0, 40) : 0, flaps: healthy ? [] : flapSchedule(rng, o.durationMs) };
      }),
    );
  }
  const urlWeights = Object.fromEntries(URL_LAYOUT.map(([, , w], u) => [String(u), w])) as Record<string, number>;

  const wr = root.fork('workload');
  const span = o.durationMs * 0.9;
  const neverUntil = o.durationMs - o.maxWatchAgeS * 1000 - 5_000;
  const watches: PlannedWatch[] = [];
  const unicode = ['plain', 'ünïcödé', '€ 5', '😀', 'tab\tquote"back\\slash', '日本語'];
  for (let i = 0; watches.length < o.watches; i++) {
    const atMs = Math.min(span, (i + wr.next()) * (span / o.watches));
    const bad = wr.chance(0.01);
    const tenant = bad ? tenantCount - 1 : wr.int(0, tenantCount - 2);
    let kind: TaskKind = bad
      ? 'unauthorized'
      : wr.weighted<TaskKind>({ completed: 70, failed: 12, cancelled: 7, unknown: 4, late: 3, never: 2, unauthorized: 0 });
    if (kind === 'never' && atMs > neverUntil) kind = 'completed';
    const taskId = `soak_${o.seed}-${i}.t`;
    const durationMs = kind === 'never' ? 1e9 : wr.range(0, 6_000);
    const capability = wr.pick(['voice', 'image', 'video']);
    const script =
      kind === 'unknown'
        ? undefined
        : {
            task_id: taskId,
            capability,
            outcome: kind === 'failed' || kind === 'cancelled' ? kind : 'completed',
            durationMs,
            processingAfterMs: wr.range(0, durationMs === 1e9 ? 2_000 : durationMs),
            ...(wr.chance(0.2) ? { extra: { seed: o.seed, note: wr.pick(unicode), nested: { i, list: [1, 2.5, null, true] } } } : {}),
          };
    const ev = wr.weighted({ default: 75, processing: 20, completedOnly: 5 });
    const events =
      ev === 'default' ? undefined : ev === 'processing' ? ['task.completed', 'task.failed', 'task.cancelled', 'watch.failed', 'task.processing'] : ['task.completed'];
    const url = Number(wr.weighted(urlWeights));
    const metadata = { i, seed: o.seed, zz_last: wr.pick(unicode), a_first: { n: i % 7, deep: [{ k: wr.int(0, 1e6) }] } };
    const w: PlannedWatch = { i: watches.length, atMs, tenant, taskId, kind, script, url, events, metadata };
    if (kind === 'late') w.createAfterMs = 300 * (o.scale / 0.1);
    watches.push(w);
    if (watches.length < o.watches && wr.chance(0.05)) {
      // a second watch of the same task on another of the tenant's URLs: one poll serves both
      watches.push({ ...w, i: watches.length, atMs: Math.min(span, atMs + wr.range(0, 1_000)), url: (url + 1 + wr.int(0, URL_LAYOUT.length - 2)) % URL_LAYOUT.length, twinOf: w.i, metadata: { ...metadata, twin: true } });
    }
  }
  watches.sort((a, b) => a.atMs - b.atMs);

  const nr = root.fork('nemesis');
  const calmUntilMs = o.durationMs * 0.25;
  const nemesis: NemesisAction[] = [];
  const kinds = new Set(o.kinds);
  const weights: Record<NemesisKind, number> = { kill: 3, stop: 3, term: 1, 'pg-restart': 1, 'pg-terminate': 2, upstream: 4, cancel: 2, redeliver: 2, rotate: 1 };
  const stopPast = Math.max(leaseMs(o.upstreamTimeoutS), leaseMs(o.deliveryTimeoutS));
  for (let t = o.durationMs * 0.05 + nr.range(0, o.faultEveryMs); t < o.durationMs - 1_000; t += nr.range(0.3, 1.7) * o.faultEveryMs) {
    const allowed = Object.fromEntries(
      Object.entries(weights).filter(([k]) => kinds.has(k as NemesisKind) && (t >= calmUntilMs || !CRASH_KINDS.has(k))),
    ) as Record<NemesisKind, number>;
    if (Object.keys(allowed).length === 0) continue;
    const kind = nr.weighted(allowed);
    const a: NemesisAction = { atMs: t, kind, target: nr.int(0, Math.max(0, o.processes - 1)), ms: 0 };
    switch (kind) {
      case 'kill':
        a.ms = nr.chance(0.15) ? -1 : nr.range(500, 8_000);
        break;
      case 'stop':
        a.ms = nr.chance(0.6) ? nr.range(stopPast + 1_000, stopPast + 6_000) : nr.range(300, 3_000);
        break;
      case 'term':
        a.ms = nr.range(300, 3_000);
        break;
      case 'pg-restart':
        a.ms = nr.range(1_000, 5_000);
        break;
      case 'pg-terminate':
        a.ms = nr.int(1, 3);
        break;
      case 'upstream':
        a.mode = nr.pick(UPSTREAM_MODES);
        a.target = nr.chance(0.5) ? -1 : nr.int(0, tenantCount - 2);
        a.ms = nr.range(1_000, 6_000);
        break;
      case 'cancel':
      case 'redeliver':
        a.picks = Array.from({ length: nr.int(1, 5) }, () => nr.next());
        break;
      case 'rotate':
        a.target = nr.int(0, tenantCount - 2);
        break;
    }
    nemesis.push(a);
  }
  return { options: o, origins: ORIGINS, urls, watches, nemesis, calmUntilMs };
}
