// The live bench's run (`npm run bench -- --adaptive`) replayed in the model, in time:
// the same arrivals (Poisson, 1 a second), the same mix, the image kind doubling mid-run,
// every gateway starting cold and learning in rounds (every 5 s, 2 s settle, the gateway's
// learn() with change detection and decay), a poll answered `rttS` after it is sent and a
// webhook received `deliveryS` after the poll that saw the end. Counted as the bench
// counts: tasks created after the warm-up, lag = completed_at → webhook. Many seeds, so
// a figure comes with the spread one live run (~600 counted tasks) has around it:
// bench/adaptive-model.ts is the steady state, this is what one live run may print.
// `npx tsx bench/adaptive-replay.ts [--seeds N] [--draws N] [--lag 6,3] [--delivery S] [--rtt S]`
import { parseArgs } from 'node:util';
import { curveOf, emptyHistogram, type Curve, type Histogram } from '../src/durations/histogram.js';
import { learn } from '../src/durations/drift.js';
import { learningTimes, tuningFor } from '../src/durations/tuning.js';
import { adaptiveDelayMs, FIRST_POLL_DELAY_MS, nextPollDelayMs, type AdaptiveTuning } from '../src/upstream/schedule.js';
import { REALISTIC_MIX, drawDurationMs, pickSpec, specName, type DurationSpec } from '../src/sim/durations.js';
import { quantile, seeded } from './adaptive-model.js';

export interface ReplayOptions {
  seed: number;
  minutes?: number;
  shiftAtMin?: number;
  warmUpMin?: number;
  rate?: number;
  /** poll sent → answer handled (s): the next poll is scheduled from then */
  rttS?: number;
  /** the poll that saw the end → webhook received (s) */
  deliveryS?: number;
  /**
   * TASKHOOK_POLL_SCALE of the run (default 0.5, the quoted bench's): replayed in its
   * compressed time, as the gateway sees it — durations learned in scaled seconds, and the
   * fixed cadence's slowdown for old watches reading the age in that time (from 60 s of
   * task age, as at scale 1; until round 3 it read the real age, so a run at 0.5 slowed
   * down only past 120 s and flattered adaptive's request ratio: bench/README.md).
   */
  scale?: number;
  /** the seed of the schedule's random draws (default: from `seed`): the same tasks, other timings */
  drawSeed?: number;
  /** each poll that does not see the end (uncompressed s), and whether the learned schedule set its next gap */
  onPoll?: (p: { kind: string; createdS: number; ageS: number; durationS: number; gapS: number; learned: boolean }) => void;
}

export interface ReplayKind {
  requests: number;
  p50: number;
  p99: number;
  n: number;
}

export interface ReplayResult {
  all: ReplayKind;
  perKind: Record<string, ReplayKind>;
  /** every counted task's lag with its kind and where it ended (for looking into the p99) */
  lags: { kind: string; lag: number; d: number; gap: number }[];
}

interface T {
  created: number;
  kind: string;
  d: number;
}

/**
 * The arrivals of one run, drawn exactly as bench/adaptive.ts draws them (the same seed
 * gives the live run's tasks): the same for every strategy.
 */
export function arrivals(o: ReplayOptions): T[] {
  const rand = seeded(o.seed);
  const mix: DurationSpec[] = REALISTIC_MIX.map((s) => ({ ...s }));
  const runS = (o.minutes ?? 14) * 60;
  const shiftS = (o.shiftAtMin ?? 7) * 60;
  const rate = o.rate ?? 1;
  const scale = o.scale ?? 0.5;
  const out: T[] = [];
  let shifted = false;
  for (let next = 0; next < runS; next += -Math.log(Math.max(1e-12, rand())) / rate) {
    if (!shifted && next >= shiftS) {
      shifted = true;
      const i = mix.findIndex((s) => specName(s) === SHIFTED);
      mix[i] = { ...mix[i]!, medianMs: mix[i]!.medianMs * 2 };
    }
    const spec = pickSpec(mix, rand);
    out.push({ created: next, kind: NAMES[specName(spec)] ?? specName(spec), d: drawDurationMs(spec, rand, scale) / 1000 / scale });
  }
  return out;
}

const SHIFTED = 'image/generate/img-v1';
const NAMES: Record<string, string> = { 'voice/clone/v1-real': 'voice', 'image/generate/img-v1': 'image', 'video/generate/vid-v1': 'video-25', 'video/generate/vid-long': 'video-90' };

/** One strategy (tuning undefined: the fixed cadence) over the run's arrivals. */
export function replay(tasks: T[], tuning: AdaptiveTuning | undefined, o: ReplayOptions): ReplayResult {
  const k = o.scale ?? 0.5;
  const rtt = (o.rttS ?? 0.02) * k;
  const delivery = o.deliveryS ?? 0.1;
  const warmUpS = (o.warmUpMin ?? 4) * 60;
  const { learnEveryMs, settleMs, decay } = learningTimes(k);
  const every = learnEveryMs / 1000;
  const settle = settleMs / 1000;
  const r2 = seeded(o.drawSeed ?? o.seed * 7 + 3);
  const hist = new Map<string, Histogram>();
  const curves = new Map<string, Curve>();
  // in compressed seconds from here on
  interface S { t: T; c: number; d: number; next: number; prev: number; polls: number; seen?: number; gap?: number }
  const live: S[] = tasks.map((t) => ({ t, c: t.created * k, d: t.d * k, next: (t.created + FIRST_POLL_DELAY_MS / 1000) * k, prev: t.created * k, polls: 0 }));
  const pending: { at: number; kind: string; s: number }[] = [];
  let lastRound = 0;
  const end = Math.max(...live.map((s) => s.c + s.d)) + 600 * k;
  for (let round = every; round <= end; round += every) {
    for (const s of live) {
      while (s.seen === undefined && s.next < round) {
        s.polls++;
        const age = s.next - s.c;
        if (age >= s.d) {
          s.seen = s.next;
          s.gap = (s.next - s.prev) / k;
          pending.push({ at: s.next, kind: s.t.kind, s: s.d });
          break;
        }
        const answered = s.next + rtt;
        const ageMs = (answered - s.c) * 1000;
        const delay = nextPollDelayMs(
          { kind: 'ok' },
          { ageMs, random: r2(), scale: k, adaptive: tuning ? { taskAgeMs: ageMs, progress: null, curve: curves.get(s.t.kind), tuning } : undefined },
        );
        if (o.onPoll) {
          const c = curves.get(s.t.kind);
          const learned = tuning !== undefined && adaptiveDelayMs({ taskAgeMs: ageMs, progress: null, curve: c, tuning }, k) !== undefined;
          o.onPoll({ kind: s.t.kind, createdS: s.t.created, ageS: age / k, durationS: s.t.d, gapS: delay / 1000 / k, learned });
        }
        s.prev = s.next;
        s.next = answered + delay / 1000;
      }
    }
    if (!tuning) continue;
    // the learner's round: what finished ≥ settle ago, folded per kind; the cache reads it at once
    const ready = pending.filter((p) => p.at <= round - settle);
    if (ready.length) {
      for (const kind of new Set(ready.map((p) => p.kind))) {
        const h = learn(hist.get(kind) ?? emptyHistogram(), ready.filter((p) => p.kind === kind).map((p) => ({ kind: 'completed' as const, s: p.s })), (round - lastRound) * 1000, decay);
        hist.set(kind, h);
        curves.set(kind, curveOf(h));
      }
      lastRound = round;
      pending.splice(0, pending.length, ...pending.filter((p) => p.at > round - settle));
    }
  }
  const counted = live.filter((s) => s.t.created >= warmUpS && s.seen !== undefined);
  const lagOf = (s: S) => (s.seen! - s.c - s.d) / k + delivery;
  const row = (xs: S[]): ReplayKind => {
    const lags = xs.map(lagOf);
    return { requests: xs.reduce((a, s) => a + s.polls, 0) / xs.length, p50: quantile(lags, 0.5), p99: quantile(lags, 0.99), n: xs.length };
  };
  const kinds = [...new Set(counted.map((s) => s.t.kind))].sort();
  return {
    all: row(counted),
    perKind: Object.fromEntries(kinds.map((k) => [k, row(counted.filter((s) => s.t.kind === k))])),
    lags: counted.map((s) => ({ kind: s.t.kind, lag: lagOf(s), d: s.t.d, gap: s.gap! })),
  };
}

export interface Ratios {
  requests: number;
  p50: number;
  p99: number;
}

/** Ratios against the fixed cadence on the same tasks, one per seed. */
export function ratiosOver(seeds: number[], tuning: AdaptiveTuning, o: Omit<ReplayOptions, 'seed'> & { seed?: number } = {}): Ratios[] {
  return seeds.map((seed) => {
    // with o.seed: those tasks, `seeds` as the draws' seeds (one live run's tasks, run again)
    const opts: ReplayOptions = o.seed === undefined ? { ...o, seed } : { ...o, seed: o.seed, drawSeed: seed };
    const tasks = arrivals(opts);
    const f = replay(tasks, undefined, opts).all;
    const a = replay(tasks, tuning, opts).all;
    return { requests: a.requests / f.requests, p50: a.p50 / f.p50, p99: a.p99 / f.p99 };
  });
}

export const summary = (rs: Ratios[]) => {
  const m = (k: keyof Ratios) => rs.reduce((a, r) => a + r[k], 0) / rs.length;
  const sd = (k: keyof Ratios) => Math.sqrt(rs.reduce((a, r) => a + (r[k] - m(k)) ** 2, 0) / Math.max(1, rs.length - 1));
  const q90 = (k: keyof Ratios) => quantile(rs.map((r) => r[k]), 0.9);
  return { requests: m('requests'), sdRequests: sd('requests'), p50: m('p50'), p99: m('p99'), sdP50: sd('p50'), sdP99: sd('p99'), p50q90: q90('p50'), p99q90: q90('p99') };
};

if (process.argv[1]?.endsWith('adaptive-replay.ts')) {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string', default: '24' },
      draws: { type: 'string', default: '16' },
      lag: { type: 'string', default: '6,3' },
      delivery: { type: 'string', default: '0.1' },
      rtt: { type: 'string', default: '0.02' },
    },
  });
  const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => 16 + i);
  const draws = Array.from({ length: Number(values.draws) }, (_, i) => 1000 + i);
  const o = { deliveryS: Number(values.delivery), rttS: Number(values.rtt) };
  const f = (x: number) => x.toFixed(3);
  const max = (rs: Ratios[], k: keyof Ratios) => Math.max(...rs.map((r) => r[k]));
  console.log(`the live bench's run replayed (delivery ${o.deliveryS} s, rtt ${o.rttS} s); ratios to fixed on the same tasks`);
  for (const lag of values.lag!.split(',').map(Number)) {
    const live = ratiosOver(draws, tuningFor(lag), { ...o, seed: 16 });
    const l = summary(live);
    const s = summary(ratiosOver(seeds, tuningFor(lag), o));
    console.log(`lag knob ${String(lag).padEnd(4)} the quoted run's tasks (seed 16), ${draws.length} draws: requests ${f(l.requests)}×  lag p50 ${f(l.p50)}× (max ${f(max(live, 'p50'))})  p99 ${f(l.p99)}× (max ${f(max(live, 'p99'))})`);
    console.log(`${''.padEnd(14)} ${seeds.length} other task sets: requests ${f(s.requests)}× [sd ${f(s.sdRequests)}]  lag p50 ${f(s.p50)}× [${f(s.sdP50)}]  p99 ${f(s.p99)}× [${f(s.sdP99)}] (90th percentile ${f(s.p99q90)})`);
  }
  const one = { ...o, seed: 16 };
  const tasks = arrivals(one);
  const fx = replay(tasks, undefined, one);
  for (const lag of values.lag!.split(',').map(Number)) {
    const a = replay(tasks, tuningFor(lag), one);
    console.log(`\nseed 16, lag knob ${lag}: kind  fixed req/task p50/p99  adaptive req/task p50/p99`);
    for (const k of Object.keys(fx.perKind)) {
      const x = fx.perKind[k]!;
      const y = a.perKind[k]!;
      console.log(`  ${k.padEnd(9)} ${x.requests.toFixed(2).padStart(6)} ${x.p50.toFixed(2)}/${x.p99.toFixed(2)}   ${y.requests.toFixed(2).padStart(6)} ${y.p50.toFixed(2)}/${y.p99.toFixed(2)}`);
    }
    console.log(`  all       ${fx.all.requests.toFixed(2).padStart(6)} ${fx.all.p50.toFixed(2)}/${fx.all.p99.toFixed(2)}   ${a.all.requests.toFixed(2).padStart(6)} ${a.all.p50.toFixed(2)}/${a.all.p99.toFixed(2)}`);
  }
}
