// How many tasks this worker should own: the working cap, from whether its polls start on
// time. A pure decision over one window of poll starts (CAPACITY_WINDOW_MS); ownership.ts
// counts the window and applies the result, keep.ts hands back what is over the cap.
//
// It must converge, not oscillate. A worker owning more than it can poll on time hands
// back the excess, and every task it claims instead is polled afresh (its first poll
// writes `processing` and an outbox row): a cap that swings between late and on time
// turns an overloaded worker into one that keeps re-claiming. The first controller (−20 % of
// the size when late, +50 % when on time) swung every window or two, each swing handing
// back ~20 % of what it owned (bench/README "round 6"; test/capacity.test.ts runs both in a
// model of an overloaded worker). So:
//  - When late, the cut is what the window measured keeps on time. Little's law: a task's
//    cycle is its interval plus its lateness, and the tasks a rate r keeps on its cycles
//    is r × the mean cycle; so the size it keeps with its starts late by LATE_MS / 2 on
//    average is `size − Σ lateness / window + r × LATE_MS / 2`. Between −5 % and −20 %.
//  - The window after a cut is not judged: the polls that were late before it still drain.
//  - The first cut of a run of late windows is remembered as the settled size. Deeper cuts
//    later in the run (a passing slowdown) are made good fast (+50 % a window) up to it;
//    there the cap holds for CAPACITY_HOLD_MS after the last cut, then probes upwards:
//    +5 %, +10 %, +20 %, +40 %, then +50 % a window while on time. A probe that runs late
//    goes back to the settled size, which held — so an overloaded worker probes once per
//    hold and hands back ~5 % of what it owns, instead of swinging; and one whose capacity
//    came back (a slowdown that cut it over several runs) is back within about a minute.
import { CAPACITY_HOLD_MS, LATE_MS, LATE_SHARE, MAX_OWNED, MIN_OWNED, ON_TIME_SHARE } from './tuning.js';

export interface CapacityWindow {
  /** polls started in the window */
  started: number;
  /** of them, started more than LATE_MS after they were due */
  late: number;
  /** the lateness of every start, summed (ms) */
  lateMs: number;
  /** the window's length (ms) */
  ms: number;
}

export interface CapacityState {
  cap: number;
  /** the cap the first cut of the last run of late windows set: the size last judged sustainable */
  settled: number | null;
  /** when the last cut was (local ms) */
  cutAt: number;
  /** windows late in a row, up to the last one */
  lateRun: number;
  /** probes (growth steps past the hold) since the last cut */
  probes: number;
}

/** The cap after a window in which this worker owned `size` tasks, at local ms `at`. */
export function nextCap(s: CapacityState, w: CapacityWindow, size: number, at: number): CapacityState {
  if (w.started >= 50 && w.late > w.started * LATE_SHARE) {
    // The window after a cut is still late from before it (the late polls drain): not judged.
    if (s.lateRun % 2 === 1) return { ...s, lateRun: s.lateRun + 1 };
    // what this rate keeps half a LATE_MS late on average (Little's law, see above)
    const ms = Math.max(1, w.ms);
    const target = size - w.lateMs / ms + (w.started / ms) * (LATE_MS / 2);
    let cap = Math.min(0.95 * size, Math.max(0.8 * size, target));
    const first = s.lateRun === 0;
    // a probe past the settled size ran late: back to that size, which held
    if (first && s.settled !== null && size > s.settled) cap = Math.max(cap, s.settled);
    cap = Math.max(MIN_OWNED, Math.floor(cap));
    return { cap, settled: first ? cap : s.settled, cutAt: at, lateRun: s.lateRun + 1, probes: 0 };
  }
  const t = s.lateRun === 0 ? s : { ...s, lateRun: 0 };
  // (≤ 1 % late, not none: one GC pause or slow write must not pin the cap where it fell)
  if (w.late > w.started * ON_TIME_SHARE || size < t.cap * 0.9) return t;
  const grown = (factor: number) => Math.min(MAX_OWNED, Math.ceil(t.cap * factor));
  if (t.settled === null) return { ...t, cap: grown(1.5) };
  // deeper cuts later in a run (a passing slowdown) are made good fast
  if (t.cap < t.settled) return { ...t, cap: Math.min(t.settled, grown(1.5)) };
  if (at - t.cutAt < CAPACITY_HOLD_MS) return t;
  // +5 %, +10 %, +20 %, +40 %, then +50 % a window: careful near the size that held, fast
  // when capacity came back (a slowdown cut it for longer than one run)
  return { ...t, cap: grown(1 + Math.min(0.5, 0.05 * 2 ** t.probes)), probes: t.probes + 1 };
}
