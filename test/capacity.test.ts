import { describe, expect, it } from 'vitest';
import { nextCap, type CapacityState, type CapacityWindow } from '../src/poller/capacity.js';
import { Ownership, INITIAL_CAP, type Owned } from '../src/poller/ownership.js';
import { CAPACITY_HOLD_MS, CAPACITY_WINDOW_MS, LATE_MS, MAX_OWNED, MIN_OWNED } from '../src/poller/tuning.js';
import type { ClaimedRow } from '../src/poller/sql.js';
import { TimerHeap } from '../src/engine/timer-heap.js';

const W = CAPACITY_WINDOW_MS;
/** A claimed row of a never-polled task, due `dueInMs` from the claim. */
const row = (id: number, dueInMs: number): ClaimedRow => ({ id, tenant_id: 't', task_id: `k${id}`, age_ms: 0, polls: 0, unauthorized_streak: 0, error_streak: 0, processing_seen: false, snapshot_hash: null, last_poll_error: null, due_in_ms: dueInMs });
const free = (cap: number): CapacityState => ({ cap, settled: null, cutAt: 0, lateRun: 0, probes: 0 });
const st = (cap: number, settled: number | null, cutAt: number, lateRun = 0, probes = 0): CapacityState => ({ cap, settled, cutAt, lateRun, probes });
const onTime = (started = 10_000): CapacityWindow => ({ started, late: 0, lateMs: started * 5, ms: W });
/** `share` of the starts late, each of those by `byMs` */
const late = (share: number, byMs: number, started = 10_000): CapacityWindow => ({ started, late: Math.round(started * share), lateMs: started * share * byMs, ms: W });

describe('nextCap', () => {
  const T = 1_000_000; // now
  const H = CAPACITY_HOLD_MS;

  it.each<[string, CapacityState, CapacityWindow, number, CapacityState]>([
    // late: cut to what the window's rate keeps ½ LATE_MS late on average: size − Σ lateness / window + rate × LATE_MS / 2
    ["late: cut to what its rate keeps half a LATE_MS late (Little's law), settled there", free(20_000), late(0.5, 3_500), 20_000, st(17_500, 17_500, T, 1)],
    ['late, heavily: at most −20 % in one window', free(20_000), late(0.9, 3_000), 20_000, st(16_000, 16_000, T, 1)],
    ['late, barely: at least −5 %', free(20_000), late(0.11, 1_010, 100), 20_000, st(19_000, 19_000, T, 1)],
    ['late: never under MIN_OWNED', free(1_100), late(1, 5_000), 1_100, st(MIN_OWNED, MIN_OWNED, T, 1)],
    ['late at or under the settled size (things got slower): cut by the estimate, settled anew', st(20_000, 20_000, 0), late(0.9, 3_000), 20_000, st(16_000, 16_000, T, 1)],
    ['a probe past the settled size ran late: back to that size, which held', st(21_000, 20_000, 0), late(0.9, 3_000), 21_000, st(20_000, 20_000, T, 1)],
    ['the window after a cut: not judged (its late polls are from before the cut)', st(16_000, 16_000, T - W, 1), late(0.9, 3_000), 16_000, st(16_000, 16_000, T - W, 2)],
    ['the third late window in a row: cut again; settled stays at the run\'s first cut', st(16_000, 16_000, T - 2 * W, 2), late(0.9, 3_000), 16_000, st(12_800, 16_000, T, 3)],
    ['an on-time window ends the run', st(16_000, 16_000, T - W, 1), onTime(), 12_000, st(16_000, 16_000, T - W, 0)],
    ['late but too few starts to judge: unchanged', free(20_000), late(1, 5_000, 49), 20_000, free(20_000)],
    ['between 1 % and 10 % late: unchanged', free(20_000), late(0.05, 2_000), 20_000, free(20_000)],
    // on time
    ['on time, nothing cut yet: +50 %', free(20_000), onTime(), 19_000, free(30_000)],
    ['on time, 1 % late still counts as on time', free(20_000), late(0.01, 2_000), 19_000, free(30_000)],
    ['on time but the cap not nearly used: unchanged', free(20_000), onTime(), 17_000, free(20_000)],
    ['on time: never over MAX_OWNED', free(MAX_OWNED - 10), onTime(), MAX_OWNED - 10, free(MAX_OWNED)],
    ['on time under the settled size (cut deeper by a slowdown): +50 %', st(8_000, 16_000, T - W), onTime(), 8_000, st(12_000, 16_000, T - W)],
    ['… but no further than it', st(12_000, 16_000, T - W), onTime(), 12_000, st(16_000, 16_000, T - W)],
    ['at the settled size, within the hold: unchanged', st(16_000, 16_000, T - H + 1), onTime(), 16_000, st(16_000, 16_000, T - H + 1)],
    ['at the settled size, after the hold: probes +5 %', st(16_000, 16_000, T - H), onTime(), 16_000, st(16_800, 16_000, T - H, 0, 1)],
    ['the next probe on time: +10 %', st(16_800, 16_000, T - H, 0, 1), onTime(), 16_800, st(18_480, 16_000, T - H, 0, 2)],
    ['the fourth: +40 %', st(10_000, 8_000, T - H, 0, 3), onTime(), 10_000, st(14_000, 8_000, T - H, 0, 4)],
    ['and from the fifth on: +50 % a window', st(14_000, 8_000, T - H, 0, 7), onTime(), 14_000, st(21_000, 8_000, T - H, 0, 8)],
    ['a late probe resets the probing', st(16_800, 16_000, T - H, 0, 1), late(0.9, 3_000), 16_800, st(16_000, 16_000, T, 1, 0)],
  ])('%s', (_name, s, w, size, want) => {
    expect(nextCap(s, w, size, T)).toEqual(want);
  });
});

/**
 * A worker in a discrete-event model: it starts one poll every 1/rate s (its capacity), the
 * earliest due first, and each poll comes due again an RTT plus its interval (uniform ±1/3
 * around the mean) after it started; an endless backlog of never-polled tasks to claim from.
 * Once a (model) second, as keep.ts and the claim loop do, it hands back what is over its
 * cap (Ownership.excess) and claims up to its room. The real Ownership and TimerHeap, a
 * seeded random and a model clock.
 */
function model(decide: typeof nextCap, o: { rate: number; intervalMs: number; minutes: number; rateAt?: (ms: number) => number; countFromMs?: number }) {
  let clock = 0;
  let seed = 42;
  const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648);
  const tasks = new Ownership(() => clock, decide);
  const heap = new TimerHeap<Owned>();
  let nextId = 0;
  const endMs = o.minutes * 60_000;
  const from = o.countFromMs ?? endMs / 4; // counted after the first quarter
  let polls = 0;
  let claims = 0;
  let handedBack = 0;
  let housekeeping = 0;
  const tick = () => {
    for (const t of tasks.excess()) {
      tasks.drop(t);
      if (clock >= from) handedBack++;
    }
    for (let room = tasks.room(); room > 0; room--) {
      const t = tasks.adopt(row(++nextId, 0), 1);
      heap.push(t.due, t);
      if (clock >= from) claims++;
    }
  };
  while (clock < endMs) {
    if (clock >= housekeeping) {
      tick();
      housekeeping += 1_000;
    }
    const due = heap.peekDue()!;
    if (due > clock) clock = Math.min(due, housekeeping); // idle until the next is due
    const t = heap.popDue(clock);
    if (t === undefined || t.gone) continue;
    tasks.started(t);
    if (clock >= from) polls++;
    clock += 1_000 / (o.rateAt?.(clock) ?? o.rate);
    t.due = clock + 20 + o.intervalMs * (2 / 3 + (2 / 3) * random());
    heap.push(t.due, t);
  }
  const seconds = (endMs - from) / 1000;
  return { pollsShare: polls / seconds / o.rate, claimsPerPoll: claims / polls, handedBackPerPoll: handedBack / polls, capacity: o.rate * (o.intervalMs + 20) / 1000, cap: tasks.cap };
}

/** The first controller (stop 21): −20 % of the size when > 10 % late, +50 % when ≤ 1 % and nearly used. */
function oldRule(s: CapacityState, w: CapacityWindow, size: number): CapacityState {
  if (w.started >= 50 && w.late / w.started > 0.1) return free(Math.max(MIN_OWNED, Math.floor(size * 0.8)));
  if (w.late <= w.started * 0.01 && size >= s.cap * 0.9) return free(Math.min(MAX_OWNED, Math.ceil(s.cap * 1.5)));
  return s;
}

describe('the cap controller, in a model of an overloaded worker', () => {
  // the real cadence (3–6 s: 4.5 s mean) and the bench's quick one past a minute of age (~1.1 s)
  it.each([
    { rate: 1_000, intervalMs: 4_500 },
    { rate: 2_000, intervalMs: 1_100 },
  ])('rate $rate/s, interval $intervalMs ms: keeps the worker busy and rarely claims afresh', (o) => {
    const now = model(nextCap, { ...o, minutes: 15 });
    const was = model(oldRule, { ...o, minutes: 15 });
    // the old one re-claimed 4–13 % of its polls' tasks afresh (each a first poll that writes)
    expect(was.claimsPerPoll).toBeGreaterThan(0.03);
    expect(now.claimsPerPoll).toBeLessThan(was.claimsPerPoll / 4);
    // and the worker stays busy: polls at (nearly) its whole rate
    expect(now.pollsShare).toBeGreaterThan(0.97);
  });

  it('a slowdown that cut the cap over several runs: back to the whole rate within ~1.5 minutes of its end', () => {
    // 4 minutes settled, the upstream at a third of its speed for the next 2 (a bulk insert, a slow
    // upstream), then as before; counted from 90 s after the slowdown's end
    const o = { rate: 1_000, intervalMs: 4_500, minutes: 10, rateAt: (ms: number) => (ms >= 240_000 && ms < 360_000 ? 333 : 1_000), countFromMs: 450_000 };
    const now = model(nextCap, o);
    expect(now.pollsShare).toBeGreaterThan(0.97);
  });
});

describe('Ownership: the window', () => {

  it('counts each start\'s lateness from when it was due and moves the cap once a window', () => {
    let clock = 0;
    const tasks = new Ownership(() => clock);
    const owned: Owned[] = [];
    for (let i = 0; i < 100; i++) owned.push(tasks.adopt(row(i, 0), 1));
    // 500 ms after they were due: not late
    clock = 500;
    for (const t of owned.slice(0, 50)) tasks.started(t);
    // 50 polls started 3 s after they were due: late
    clock = 3_500;
    for (const t of owned.slice(50)) {
      t.due = 500;
      tasks.started(t);
    }
    expect(tasks.cap).toBe(INITIAL_CAP); // the window has not ended
    clock = W;
    const t = owned[0]!;
    t.due = W;
    tasks.started(t); // ends the window: 51 % late, size 100 → the floor
    expect(tasks.cap).toBe(MIN_OWNED);
  });
});
