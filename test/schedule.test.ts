import { describe, expect, it } from 'vitest';
import { FIRST_POLL_DELAY_MS, RETRY_AFTER_CAP_MS, nextPollDelayMs, parseRetryAfter, type PollSignal } from '../src/upstream/schedule.js';

const ok: PollSignal = { kind: 'ok' };
const MIN = 60_000;
const HOUR = 3_600_000;
const randoms = [0, 0.001, 0.25, 0.5, 0.75, 0.999, 0.999999];

describe('nextPollDelayMs', () => {
  it('first poll is 2 s after registration', () => {
    expect(FIRST_POLL_DELAY_MS).toBe(2_000);
  });

  const young = [0, 1_000, 30_000, 60_000].flatMap((ageMs) => randoms.map((random) => ({ ageMs, random })));
  it.each(young)('young task (age $ageMs ms, random $random) polls every 3–6 s', ({ ageMs, random }) => {
    const d = nextPollDelayMs(ok, { ageMs, random });
    expect(d).toBeGreaterThanOrEqual(3_000);
    expect(d).toBeLessThanOrEqual(6_000);
  });

  it.each([
    { random: 0, expected: 3_000 },
    { random: 0.5, expected: 4_500 },
    { random: 1, expected: 6_000 },
  ])('random $random maps linearly onto 3–6 s ($expected ms)', ({ random, expected }) => {
    expect(nextPollDelayMs(ok, { ageMs: 0, random })).toBe(expected);
  });

  it.each(randoms)('slows gently and monotonically with age (random %s)', (random) => {
    const ages = [0, MIN, 2 * MIN, 5 * MIN, 10 * MIN, 11 * MIN, 30 * MIN, HOUR, 24 * HOUR, 365 * 24 * HOUR];
    const delays = ages.map((ageMs) => nextPollDelayMs(ok, { ageMs, random }));
    for (let i = 1; i < delays.length; i++) expect(delays[i]!).toBeGreaterThanOrEqual(delays[i - 1]!);
    // gently: a task two minutes old is still polled within ~10 s
    expect(nextPollDelayMs(ok, { ageMs: 2 * MIN, random })).toBeLessThanOrEqual(10_000);
  });

  it.each([
    { ageMs: 11 * MIN, random: 0 },
    { ageMs: HOUR, random: 0.5 },
    { ageMs: 24 * HOUR, random: 0.999 },
    { ageMs: Number.MAX_SAFE_INTEGER, random: 0.999 },
  ])('old task (age $ageMs) is capped at 15–30 s', ({ ageMs, random }) => {
    const d = nextPollDelayMs(ok, { ageMs, random });
    expect(d).toBeGreaterThanOrEqual(15_000);
    expect(d).toBeLessThanOrEqual(30_000);
    expect(d).toBe(nextPollDelayMs(ok, { ageMs: 11 * MIN, random }));
  });

  it.each([
    { scale: 0.01, random: 0.5, ageMs: 0 },
    { scale: 0.5, random: 0, ageMs: 0 },
    { scale: 2, random: 0.999, ageMs: 0 },
    { scale: 0.1, random: 0.3, ageMs: HOUR },
  ])('scale $scale multiplies the normal delay', ({ scale, random, ageMs }) => {
    const base = nextPollDelayMs(ok, { ageMs, random });
    expect(nextPollDelayMs(ok, { ageMs, random, scale })).toBeCloseTo(base * scale, -1);
  });

  it.each([
    { scale: 0.5, ageMs: 40_000 }, // 80 s in the run's own time
    { scale: 0.05, ageMs: 6_000 }, // 120 s
    { scale: 0.1, ageMs: 30_000 }, // 300 s
  ])('a compressed run (scale $scale) slows old watches down at their age in its own time ($ageMs ms real)', ({ scale, ageMs }) => {
    const d = nextPollDelayMs(ok, { ageMs, random: 0.5, scale });
    expect(d).toBeCloseTo(nextPollDelayMs(ok, { ageMs: ageMs / scale, random: 0.5 }) * scale, -1);
    expect(d).toBeGreaterThan(nextPollDelayMs(ok, { ageMs: 0, random: 0.5, scale }));
  });

  it.each([
    { streak: 1, base: 5_000 },
    { streak: 2, base: 10_000 },
    { streak: 3, base: 20_000 },
    { streak: 4, base: 40_000 },
    { streak: 5, base: 60_000 },
    { streak: 6, base: 60_000 },
    { streak: 50, base: 60_000 },
    { streak: 5_000, base: 60_000 },
  ])('error backoff for streak $streak is $base ms ±20 %', ({ streak, base }) => {
    const signal: PollSignal = { kind: 'error', streak };
    expect(nextPollDelayMs(signal, { ageMs: 0, random: 0 })).toBe(Math.round(base * 0.8));
    expect(nextPollDelayMs(signal, { ageMs: 0, random: 0.5 })).toBe(base);
    expect(nextPollDelayMs(signal, { ageMs: 0, random: 1 })).toBe(Math.round(base * 1.2));
    for (const random of randoms) {
      const d = nextPollDelayMs(signal, { ageMs: HOUR, random });
      expect(d).toBeGreaterThanOrEqual(base * 0.8 - 1);
      expect(d).toBeLessThanOrEqual(base * 1.2 + 1);
      expect(d).toBeLessThanOrEqual(72_000);
    }
  });

  it.each(randoms)('error backoff never shrinks as the streak grows (random %s)', (random) => {
    const ds = [1, 2, 3, 4, 5, 6, 10, 100].map((streak) => nextPollDelayMs({ kind: 'error', streak }, { ageMs: 0, random }));
    for (let i = 1; i < ds.length; i++) expect(ds[i]!).toBeGreaterThanOrEqual(ds[i - 1]!);
  });

  it.each([0.5, 0.01])('error backoff honours scale %s', (scale) => {
    expect(nextPollDelayMs({ kind: 'error', streak: 3 }, { ageMs: 0, random: 0.5, scale })).toBe(Math.round(20_000 * scale));
  });

  it.each([
    { retryAfterMs: 120_000, random: 0.5, expected: 120_000 },
    { retryAfterMs: 10_000, random: 0, expected: 10_000 },
    { retryAfterMs: HOUR, random: 0.5, expected: HOUR },
    { retryAfterMs: 2 * HOUR, random: 0.5, expected: RETRY_AFTER_CAP_MS },
    { retryAfterMs: 7 * 24 * HOUR, random: 0.5, expected: RETRY_AFTER_CAP_MS },
    { retryAfterMs: Number.POSITIVE_INFINITY, random: 0.5, expected: RETRY_AFTER_CAP_MS },
    // never below the normal delay
    { retryAfterMs: 0, random: 0, expected: 3_000 },
    { retryAfterMs: 1_000, random: 0.5, expected: 4_500 },
    { retryAfterMs: 5_000, random: 1, expected: 6_000 },
  ])('rate_limited with Retry-After $retryAfterMs ms (random $random) waits $expected ms', ({ retryAfterMs, random, expected }) => {
    expect(nextPollDelayMs({ kind: 'rate_limited', retryAfterMs, streak: 1 }, { ageMs: 0, random })).toBe(expected);
  });

  it('rate_limited with a tiny Retry-After on an old task still waits the slowed normal delay', () => {
    expect(nextPollDelayMs({ kind: 'rate_limited', retryAfterMs: 1_000, streak: 1 }, { ageMs: HOUR, random: 0 })).toBe(15_000);
  });

  it('RETRY_AFTER_CAP_MS is one hour', () => {
    expect(RETRY_AFTER_CAP_MS).toBe(HOUR);
  });

  it.each([1, 2, 3, 5, 9])('rate_limited without Retry-After falls back to error backoff (streak %s)', (streak) => {
    for (const random of randoms) {
      expect(nextPollDelayMs({ kind: 'rate_limited', retryAfterMs: undefined, streak }, { ageMs: 0, random })).toBe(
        nextPollDelayMs({ kind: 'error', streak }, { ageMs: 0, random }),
      );
    }
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-28T12:00:00.000Z');

  it.each([
    { value: '0', expected: 0 },
    { value: '1', expected: 1_000 },
    { value: '120', expected: 120_000 },
    { value: '  30  ', expected: 30_000 },
    { value: '007', expected: 7_000 },
    { value: '3600', expected: 3_600_000 },
    { value: '3601', expected: 3_600_000 },
    { value: '86400', expected: 3_600_000 },
    { value: '99999999999999999999999999', expected: 3_600_000 },
    { value: '9'.repeat(400), expected: 3_600_000 },
  ])('delta seconds $value → $expected ms', ({ value, expected }) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });

  it.each([
    { value: 'Sat, 28 Nov 2026 12:01:00 GMT', expected: 60_000 },
    { value: 'Sat, 28 Nov 2026 12:00:00 GMT', expected: 0 },
    { value: 'Sat, 28 Nov 2026 11:59:00 GMT', expected: 0 },
    { value: 'Thu, 01 Jan 1970 00:00:00 GMT', expected: 0 },
    { value: 'Sat, 28 Nov 2026 12:30:00 GMT', expected: 1_800_000 },
    { value: 'Sat, 28 Nov 2026 14:00:00 GMT', expected: 3_600_000 },
    { value: 'Fri, 01 Jan 2100 00:00:00 GMT', expected: 3_600_000 },
    // obsolete forms HTTP recipients must still accept (RFC 9110 §5.6.7)
    { value: 'Saturday, 28-Nov-26 12:02:00 GMT', expected: 120_000 },
    { value: 'Sat Nov 28 12:03:00 2026', expected: 180_000 },
  ])('HTTP date $value → $expected ms relative to now', ({ value, expected }) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });

  it('an HTTP date is measured against the injected now', () => {
    const date = 'Sat, 28 Nov 2026 12:10:00 GMT';
    expect(parseRetryAfter(date, now)).toBe(600_000);
    expect(parseRetryAfter(date, now + 300_000)).toBe(300_000);
    expect(parseRetryAfter(date, now + 3_600_000)).toBe(0);
  });

  it.each([
    '-1',
    '1.5',
    '1e3',
    '+5',
    '0x10',
    '5s',
    '5 6',
    'soon',
    'soon 5',
    'x 2030',
    'Tuesday 5',
    'in 5 minutes',
    'NaN',
    'Infinity',
    '2026-11-28T12:01:00Z',
    '',
    '   ',
  ])('garbage %j → undefined', (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });

  it.each([
    { value: undefined, expected: undefined },
    { value: [] as string[], expected: undefined },
    { value: ['30'], expected: 30_000 },
    { value: ['30', '90'], expected: 30_000 },
    { value: ['Sat, 28 Nov 2026 12:01:00 GMT'], expected: 60_000 },
    { value: ['soon', '30'], expected: undefined },
  ])('header value $value → $expected', ({ value, expected }) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});
