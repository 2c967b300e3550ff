// Offline model of the poll placements (no HTTP, no database): the same durations,
// polled by the fixed cadence and by each adaptive placement, counting polls and the
// lag between a task's end and the poll that sees it. Used to pick the placement and
// the knob (bench/README.md quotes its output); `npm run bench -- --adaptive` measures
// the real thing end to end.
import { curveOf, emptyHistogram, fold, survivalAt, type Curve, type Sample } from '../src/durations/histogram.js';
import { learn } from '../src/durations/drift.js';
import { FIRST_POLL_DELAY_MS, nextPollDelayMs, type AdaptiveTuning } from '../src/upstream/schedule.js';

export interface ModelKind {
  name: string;
  medianS: number;
  sigma: number;
  share: number;
}

/** Seeded PRNG (mulberry32): the same tasks for every strategy. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function lognormal(rand: () => number, median: number, sigma: number): number {
  const u = Math.max(1e-12, rand());
  const v = rand();
  return median * Math.exp(sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
}

/** A duration of `k`, with a long tail: 3 % of tasks take 2–5× as long. */
export function drawDuration(rand: () => number, k: ModelKind): number {
  const d = lognormal(rand, k.medianS, k.sigma);
  return rand() < 0.03 ? d * (2 + 3 * rand()) : d;
}

export function learnedCurve(k: ModelKind, n: number, seed: number): Curve {
  const rand = seeded(seed);
  const samples: Sample[] = [];
  for (let i = 0; i < n; i++) samples.push({ kind: 'completed', s: drawDuration(rand, k) });
  return curveOf(fold(emptyHistogram(), samples, 0, { samples: 1e9, halfLifeMs: 1e15 }));
}

export interface Run {
  polls: number;
  lagsS: number[];
}

/** Where a poll landed in its kind's true distribution: before 1 % had ended, in the body, past 99 %. */
export type Where = 'before' | 'body' | 'tail';

/**
 * Polls one task (ends at `durationS` after creation, registered `registerS` after) until a poll sees it.
 * `contract`: the contract's cadence as written (2 s, then every 3–6 s, no slowdown for old watches).
 */
export function pollOne(
  durationS: number,
  registerS: number,
  rand: () => number,
  curve: Curve | undefined,
  tuning: AdaptiveTuning | undefined,
  o: { contract?: boolean; truth?: Curve; where?: Record<Where, number> } = {},
) {
  let t = registerS + FIRST_POLL_DELAY_MS / 1000;
  let polls = 0;
  for (;;) {
    polls++;
    if (o.truth && o.where) {
      const alive = survivalAt(o.truth, t);
      o.where[alive > 0.99 ? 'before' : alive < 0.01 ? 'tail' : 'body']++;
    }
    if (t >= durationS) return { polls, lagS: t - durationS };
    const ageMs = o.contract ? 0 : (t - registerS) * 1000;
    const delay = nextPollDelayMs(
      { kind: 'ok' },
      { ageMs, random: rand(), adaptive: tuning ? { taskAgeMs: t * 1000, progress: null, curve, tuning } : undefined },
    );
    t += delay / 1000;
  }
}

export const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

/** The bench's mix (src/sim/durations.ts REALISTIC_MIX) as the model sees it. */
export const MODEL_MIX: ModelKind[] = [
  { name: 'voice', medianS: 7, sigma: 0.2, share: 0.35 },
  { name: 'image', medianS: 16, sigma: 0.25, share: 0.3 },
  { name: 'video-25', medianS: 25, sigma: 0.3, share: 0.2 },
  { name: 'video-90', medianS: 90, sigma: 0.3, share: 0.15 },
];

export interface ModelPoint {
  polls: number;
  lagP50: number;
  lagP99: number;
  perKind: Record<string, { polls: number; p50: number; p99: number; where: Record<Where, number> }>;
}

export interface ModelOptions {
  /**
   * Learn online, as the gateway does: each kind's histogram folds every task's duration
   * with this memory (DECAY.samples; the curve is rebuilt every 5 completions), starting
   * from a warm histogram. Undefined: one curve from 3,000 earlier tasks, no decay
   * (the best case: what a perfectly known distribution allows).
   */
  memory?: number;
  /** the contract's cadence as written instead of the fixed strategy (tuning undefined only) */
  contract?: boolean;
  n?: number;
}

/**
 * 20,000 tasks of the mix (10 % registered up to 40 s after submit, the rest within
 * 0.5 s), polled by `tuning` (undefined: the fixed cadence) with each kind's curve
 * learned from earlier tasks (see ModelOptions.memory). The same tasks and draws for every tuning.
 */
export function modelRun(tuning: AdaptiveTuning | undefined, mix = MODEL_MIX, opts: ModelOptions = {}): ModelPoint {
  const n = opts.n ?? 20_000;
  const truth = new Map(mix.map((k, i) => [k.name, learnedCurve(k, 50_000, 900 + i)]));
  const online = opts.memory !== undefined ? { samples: opts.memory, halfLifeMs: 1e15 } : undefined;
  const hist = new Map(
    mix.map((k, i) => {
      const rand = seeded(100 + i);
      const samples: Sample[] = [];
      for (let j = 0; j < 3_000; j++) samples.push({ kind: 'completed', s: drawDuration(rand, k) });
      const h = online ? samples.reduce((h, x) => learn(h, [x], 0, online), emptyHistogram()) : fold(emptyHistogram(), samples, 0, { samples: 1e9, halfLifeMs: 1e15 });
      return [k.name, { h, curve: curveOf(h), since: 0 }];
    }),
  );
  const rand = seeded(7);
  const r2 = seeded(9);
  const lags: number[] = [];
  let polls = 0;
  const per = new Map<string, { polls: number; lags: number[]; where: Record<Where, number> }>();
  for (let i = 0; i < n; i++) {
    let x = rand();
    let k = mix[0]!;
    for (const kk of mix) {
      if (x < kk.share) {
        k = kk;
        break;
      }
      x -= kk.share;
    }
    const d = drawDuration(rand, k);
    const reg = rand() < 0.1 ? rand() * 40 : rand() * 0.5;
    if (reg >= d) continue;
    let e = per.get(k.name);
    if (!e) per.set(k.name, (e = { polls: 0, lags: [], where: { before: 0, body: 0, tail: 0 } }));
    const kh = hist.get(k.name)!;
    const r = pollOne(d, reg, r2, kh.curve, tuning, { contract: opts.contract, truth: truth.get(k.name), where: e.where });
    if (online) {
      kh.h = learn(kh.h, [{ kind: 'completed', s: d }], 0, online);
      if (++kh.since >= 5) {
        kh.since = 0;
        kh.curve = curveOf(kh.h);
      }
    }
    polls += r.polls;
    lags.push(r.lagS);
    e.polls += r.polls;
    e.lags.push(r.lagS);
  }
  return {
    polls: polls / lags.length,
    lagP50: quantile(lags, 0.5),
    lagP99: quantile(lags, 0.99),
    perKind: Object.fromEntries(
      [...per].map(([k, v]) => [
        k,
        {
          polls: v.polls / v.lags.length,
          p50: quantile(v.lags, 0.5),
          p99: quantile(v.lags, 0.99),
          where: { before: v.where.before / v.lags.length, body: v.where.body / v.lags.length, tail: v.where.tail / v.lags.length },
        },
      ]),
    ),
  };
}

/**
 * One kind whose durations change at `shiftS`, in time: tasks arrive at `perMin` a
 * minute; each poll uses the curve learned by then; a completion is folded by the
 * learner round (every 5 s, 2 s settle) after the poll that saw it, with the change
 * detection (src/durations/drift.ts) and the gateway's decay. Returns, per 30 s of
 * creation time after the shift, requests per task and lag p50 against the same tasks
 * polled with the new distribution known (the new optimum), in windows of 2 min, and from
 * when on both stay within 10 % of it (requests in every window, lag p50 pooled).
 */
export async function shiftRun(o: { from: ModelKind; to: ModelKind; perMin: number; shiftS: number; endS: number; tuning: AdaptiveTuning; seed?: number }) {
  const { DECAY } = await import('../src/durations/tuning.js');
  const rand = seeded(o.seed ?? 11);
  const r2 = seeded((o.seed ?? 11) + 1);
  // warm: an hour of the old durations
  let h = emptyHistogram();
  for (let i = 0; i < 600; i++) h = learn(h, [{ kind: 'completed', s: drawDuration(rand, o.from) }], 6_000, DECAY);
  let curve = curveOf(h);
  const optimum = learnedCurve(o.to, 3_000, 77);
  interface T { created: number; d: number; next: number; polls: number; done: boolean; seen?: number }
  const tasks: T[] = [];
  for (let t = 0; t < o.endS; t += -Math.log(Math.max(1e-12, rand())) / (o.perMin / 60)) {
    const d = drawDuration(rand, t >= o.shiftS ? o.to : o.from);
    tasks.push({ created: t, d, next: t + FIRST_POLL_DELAY_MS / 1000, polls: 0, done: false });
  }
  const pending: { at: number; s: number }[] = [];
  const end = o.endS + 1_000;
  let alarms = 0;
  for (let round = 0; round <= end; round += 5) {
    // every poll due before this round, with the curve the last round left
    for (const t of tasks) {
      while (!t.done && t.next < round) {
        t.polls++;
        const age = t.next - t.created;
        if (age >= t.d) {
          t.done = true;
          t.seen = t.next;
          pending.push({ at: t.next, s: t.d });
          break;
        }
        t.next += nextPollDelayMs({ kind: 'ok' }, { ageMs: age * 1000, random: r2(), adaptive: { taskAgeMs: age * 1000, progress: null, curve, tuning: o.tuning } }) / 1000;
      }
    }
    const ready = pending.filter((p) => p.at <= round - 2);
    if (ready.length) {
      const before = h.drift?.alarms ?? 0;
      h = learn(h, ready.map((p) => ({ kind: 'completed' as const, s: p.s })), 5_000, DECAY);
      if ((h.drift?.alarms ?? 0) > before) alarms++;
      curve = curveOf(h);
      pending.splice(0, pending.length, ...pending.filter((p) => p.at > round - 2));
    }
  }
  const windows: { fromS: number; requests: number; lagP50: number; optRequests: number; optLagP50: number; n: number }[] = [];
  for (let from = o.shiftS; from + 120 <= o.endS; from += 30) {
    const sub = tasks.filter((t) => t.created >= from && t.created < from + 120 && t.done);
    if (!sub.length) continue;
    const opt = sub.map((t) => pollOne(t.d, 0, seeded(Math.floor(t.created * 1000)), optimum, o.tuning));
    windows.push({
      fromS: from - o.shiftS,
      n: sub.length,
      requests: sub.reduce((a, t) => a + t.polls, 0) / sub.length,
      lagP50: quantile(sub.map((t) => t.seen! - t.created - t.d), 0.5),
      optRequests: opt.reduce((a, r) => a + r.polls, 0) / opt.length,
      optLagP50: quantile(opt.map((r) => r.lagS), 0.5),
    });
  }
  // requests per 2-min window (paired with the optimum on the same tasks); lag p50 pooled over
  // every task from the window on — one window's p50 of ~20–40 lags is ±0.5 s by chance alone
  const done = tasks.filter((t) => t.done && t.created >= o.shiftS);
  const lagFrom = (fromS: number) => {
    const sub = done.filter((t) => t.created >= o.shiftS + fromS);
    const opt = sub.map((t) => pollOne(t.d, 0, seeded(Math.floor(t.created * 1000)), optimum, o.tuning).lagS);
    return { lag: quantile(sub.map((t) => t.seen! - t.created - t.d), 0.5), opt: quantile(opt, 0.5) };
  };
  const ok = (w: (typeof windows)[number]) => Math.abs(w.requests - w.optRequests) <= 0.1 * w.optRequests;
  const i = windows.findIndex((w, j) => windows.slice(j).every(ok) && ((l) => l.lag <= l.opt * 1.1)(lagFrom(w.fromS)));
  return { windows, recoveredAfterS: i >= 0 ? windows[i]!.fromS : undefined, alarms };
}

// `npx tsx bench/adaptive-model.ts`: the sweep bench/README.md quotes.
if (process.argv[1]?.endsWith('adaptive-model.ts') && !process.argv.includes('--cpu') && !process.argv.includes('--shift')) {
  const { tuningFor, DECAY, DEFAULT_LAG_S } = await import('../src/durations/tuning.js');
  const fixed = modelRun(undefined);
  const contract = modelRun(undefined, MODEL_MIX, { contract: true });
  const f = (x: number) => x.toFixed(3);
  const where = (p: ModelPoint) =>
    Object.entries(p.perKind)
      .map(([k, v]) => `  ${k.padEnd(9)} ${v.polls.toFixed(2).padStart(6)} polls/task: ${v.where.before.toFixed(2)} before 1 % had ended, ${v.where.body.toFixed(2)} in the body, ${v.where.tail.toFixed(2)} past 99 %; lag p50 ${v.p50.toFixed(2)} s p99 ${v.p99.toFixed(2)} s`)
      .join('\n');
  console.log(`fixed strategy: ${fixed.polls.toFixed(2)} polls/task, lag p50 ${fixed.lagP50.toFixed(2)} s, p99 ${fixed.lagP99.toFixed(2)} s (the baseline below)`);
  console.log(where(fixed));
  console.log(
    `the contract's cadence as written (2 s, then 3–6 s, no slowdown for old watches): ${contract.polls.toFixed(2)} polls/task (${f(contract.polls / fixed.polls)}×), lag p50 ${contract.lagP50.toFixed(2)} s, p99 ${contract.lagP99.toFixed(2)} s`,
  );
  console.log(`\nlearned online with the gateway's memory (1/${DECAY.samples} per completion), requests and lag as × the fixed strategy's:`);
  console.log('placement       lag knob  requests×  lag p50×  lag p99×');
  const knobs = [3, 3.5, 4, 5, 5.7, 6, 6.5, 7];
  for (const placement of ['sqrt-hazard', 'ladder', 'threshold'] as const) {
    for (const lag of knobs) {
      const t = { ...tuningFor(lag), placement, ...(placement === 'ladder' ? { step: Math.min(0.9, lag / 10) } : placement === 'threshold' ? { step: 0.15 } : {}) };
      const r = modelRun(t, MODEL_MIX, { memory: DECAY.samples });
      console.log(`${placement.padEnd(15)} ${String(lag).padEnd(9)} ${f(r.polls / fixed.polls).padEnd(10)} ${f(r.lagP50 / fixed.lagP50).padEnd(9)} ${f(r.lagP99 / fixed.lagP99)}`);
    }
  }
  for (const lag of [DEFAULT_LAG_S, 3]) {
    const r = modelRun(tuningFor(lag), MODEL_MIX, { memory: DECAY.samples });
    console.log(`\nadaptive, lag knob ${lag} s (sqrt-hazard): ${f(r.polls / fixed.polls)}× requests, lag p50 ${f(r.lagP50 / fixed.lagP50)}× p99 ${f(r.lagP99 / fixed.lagP99)}×`);
    console.log(where(r));
  }
  const best = modelRun(tuningFor(DEFAULT_LAG_S));
  console.log(`\n(a perfectly known distribution, lag knob ${DEFAULT_LAG_S} s: ${f(best.polls / fixed.polls)}× requests, lag p50 ${f(best.lagP50 / fixed.lagP50)}× p99 ${f(best.lagP99 / fixed.lagP99)}×)`);
}

// `npx tsx bench/adaptive-model.ts --cpu`: what the adaptive decision adds to one poll's CPU
// (the poller's only new work: the cache lookup and the schedule), against the fixed one.
if (process.argv[1]?.endsWith('adaptive-model.ts') && process.argv.includes('--cpu')) {
  const { tuningFor, DEFAULT_LAG_S } = await import('../src/durations/tuning.js');
  const { DurationCache } = await import('../src/durations/cache.js');
  const curve = learnedCurve(MODEL_MIX[3]!, 3_000, 1);
  const cache = new DurationCache({ sql: undefined as never, log: undefined as never, tuning: tuningFor(DEFAULT_LAG_S) });
  // one learned kind in the cache, as the refresh would leave it
  (cache as unknown as { entries: Map<string, unknown> }).entries.set('default\u0000video\u0000generate\u0000vid-long', { curve });
  const body = { status: 'processing', capability: 'video', action: 'generate', model: 'vid-long', created_at: Date.now() / 1000 - 40, progress: null };
  let N = 1_000_000;
  const time = (f: () => void) => {
    for (let i = 0; i < 10_000; i++) f();
    const t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) f();
    return Number(process.hrtime.bigint() - t) / N;
  };
  let sink = 0;
  const fixedNs = time(() => (sink += nextPollDelayMs({ kind: 'ok' }, { ageMs: 40_000, random: 0.5 })));
  const adaptiveNs = time(() => (sink += nextPollDelayMs({ kind: 'ok' }, { ageMs: 40_000, random: 0.5, adaptive: cache.timing('default', body) })));
  console.log(`schedule decision: fixed ${fixedNs.toFixed(0)} ns, adaptive (cache lookup + √hazard) ${adaptiveNs.toFixed(0)} ns per poll (${sink > 0 ? 'ok' : ''})`);
  // the onset search (once per task, at its first answer): a voice task 2 s old, whose onset poll's time is searched
  const voice = learnedCurve(MODEL_MIX[0]!, 3_000, 1);
  N = 20_000;
  for (const lag of [DEFAULT_LAG_S, 3]) {
    const a = { taskAgeMs: 2_000, progress: null, curve: voice, tuning: tuningFor(lag) };
    const searchNs = time(() => (sink += nextPollDelayMs({ kind: 'ok' }, { ageMs: 2_000, random: 0.5, adaptive: a })));
    console.log(`the onset search (a 7 s voice task at its first answer, lag knob ${lag} s): ${(searchNs / 1000).toFixed(1)} µs, once per task`);
  }
}

// `npx tsx bench/adaptive-model.ts --shift`: the image kind doubles; how soon the schedule is back at the new optimum.
if (process.argv[1]?.endsWith('adaptive-model.ts') && process.argv.includes('--shift')) {
  const { tuningFor } = await import('../src/durations/tuning.js');
  const image = MODEL_MIX[1]!;
  for (const [label, to] of [['doubles', { ...image, medianS: image.medianS * 2 }], ['halves', { ...image, medianS: image.medianS / 2 }]] as const) {
    for (const perMin of [9, 18]) {
      const r = await shiftRun({ from: image, to, perMin, shiftS: 600, endS: 1_500, tuning: tuningFor(6.5) });
      console.log(`image ${label} at ${perMin}/min: ${r.alarms} alarm(s); requests and lag p50 within 10 % of the new optimum from ${r.recoveredAfterS ?? 'never'} s after the shift`);
      console.log('  ' + r.windows.slice(0, 10).filter((_, i) => i % 2 === 0).map((w) => `+${w.fromS}s ${w.requests.toFixed(1)}/${w.optRequests.toFixed(1)} req`).join(' · '));
    }
  }
}
