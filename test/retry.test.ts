import { describe, expect, it } from 'vitest';
import { decideAfterAttempt, type AttemptOutcome } from '../src/delivery/retry.js';
import { loadConfig } from '../src/config.js';

const S = [5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000, 10_800_000, 21_600_000, 43_200_000] as const;
const res = (status: number, retryAfterMs?: number): AttemptOutcome => ({ kind: 'response', status, retryAfterMs });
const err = (message = 'ECONNREFUSED'): AttemptOutcome => ({ kind: 'error', message });

describe('decideAfterAttempt', () => {
  it.each([200, 201, 202, 204, 226, 299])('%i acknowledges at any step', (status) => {
    for (const step of [0, 3, S.length]) {
      expect(decideAfterAttempt(res(status), step, S, 0.5)).toEqual({ status: 'delivered' });
    }
  });

  it.each([0, 1, 4, S.length - 1, S.length])('410 Gone is undeliverable immediately (step %i)', (step) => {
    const next = decideAfterAttempt(res(410), step, S, 0.5);
    expect(next.status).toBe('undeliverable');
  });

  const retried: Array<[string, AttemptOutcome]> = [
    ['500', res(500)],
    ['502', res(502)],
    ['503 without Retry-After', res(503)],
    ['429 without Retry-After', res(429)],
    ['302 (redirects are not followed)', res(302)],
    ['301', res(301)],
    ['404', res(404)],
    ['400', res(400)],
    ['401', res(401)],
    ['199', res(199)],
    ['300', res(300)],
    ['500 with Retry-After (ignored)', res(500, 1_000)],
    ['a connection error', err()],
    ['a timeout', err('timeout after 15000 ms')],
  ];
  const steps = S.map((_, step) => step);
  it.each(retried.flatMap(([name, outcome]) => steps.map((step) => ({ name, outcome, step }))))(
    '$name at step $step is retried after schedule[step] ±20 %',
    ({ outcome, step }) => {
      const base = S[step]!;
      expect(decideAfterAttempt(outcome, step, S, 0)).toEqual({ status: 'pending', delayMs: Math.round(base * 0.8), retryStep: step + 1 });
      expect(decideAfterAttempt(outcome, step, S, 0.5)).toEqual({ status: 'pending', delayMs: base, retryStep: step + 1 });
      expect(decideAfterAttempt(outcome, step, S, 1)).toEqual({ status: 'pending', delayMs: Math.round(base * 1.2), retryStep: step + 1 });
      for (const random of [0.1, 0.37, 0.9, 0.999]) {
        const next = decideAfterAttempt(outcome, step, S, random);
        if (next.status !== 'pending') throw new Error('expected pending');
        expect(next.delayMs).toBeGreaterThanOrEqual(base * 0.8);
        expect(next.delayMs).toBeLessThanOrEqual(base * 1.2);
      }
    },
  );

  it.each(retried.map(([name, outcome]) => ({ name, outcome })))('$name after the last step is undeliverable', ({ outcome }) => {
    const next = decideAfterAttempt(outcome, S.length, S, 0.5);
    expect(next.status).toBe('undeliverable');
    expect(decideAfterAttempt(outcome, S.length + 3, S, 0.5).status).toBe('undeliverable');
  });

  it.each([
    { status: 429, retryAfterMs: 0, expected: 0 },
    { status: 429, retryAfterMs: 1_000, expected: 1_000 },
    { status: 429, retryAfterMs: 90_000, expected: 90_000 },
    { status: 503, retryAfterMs: 600_000, expected: 600_000 },
    { status: 503, retryAfterMs: 3_600_000, expected: 3_600_000 },
    { status: 429, retryAfterMs: 3_600_001, expected: 3_600_000 },
    { status: 503, retryAfterMs: 86_400_000, expected: 3_600_000 },
  ])('$status with Retry-After $retryAfterMs ms waits $expected ms (capped at 1 h, no jitter)', ({ status, retryAfterMs, expected }) => {
    for (const step of [0, 4, S.length - 1]) {
      for (const random of [0, 0.5, 1]) {
        expect(decideAfterAttempt(res(status, retryAfterMs), step, S, random)).toEqual({ status: 'pending', delayMs: expected, retryStep: step + 1 });
      }
    }
  });

  it.each([429, 503])('%i with Retry-After still gives up after the last step', (status) => {
    expect(decideAfterAttempt(res(status, 1_000), S.length, S, 0.5).status).toBe('undeliverable');
  });

  it.each([
    { name: 'always 500', outcome: res(500) },
    { name: 'always refused', outcome: err() },
    { name: 'always 429 without Retry-After', outcome: res(429) },
    { name: 'always 503 Retry-After 1s', outcome: res(503, 1_000) },
  ])('with the default schedule a receiver that is $name gets exactly 10 attempts', ({ outcome }) => {
    const schedule = loadConfig({}).retryScheduleMs;
    expect(schedule).toEqual([...S]);
    for (const random of [0, 0.5, 0.999]) {
      let step = 0;
      let attempts = 0;
      let waited = 0;
      for (;;) {
        attempts++;
        const next = decideAfterAttempt(outcome, step, schedule, random);
        if (next.status === 'pending') {
          expect(next.retryStep).toBe(step + 1);
          step = next.retryStep;
          waited += next.delayMs;
          expect(attempts).toBeLessThan(100);
          continue;
        }
        expect(next.status).toBe('undeliverable');
        if (next.status === 'undeliverable') expect(next.reason).toMatch(/10 attempts/);
        break;
      }
      expect(attempts).toBe(10);
      if (outcome.kind === 'error' || outcome.retryAfterMs === undefined) {
        const total = S.reduce((a, b) => a + b, 0);
        expect(waited).toBeGreaterThanOrEqual(total * 0.8 - 10);
        expect(waited).toBeLessThanOrEqual(total * 1.2 + 10);
      }
    }
  });

  it('a receiver that recovers on attempt 4 is delivered', () => {
    const outcomes = [res(500), err(), res(503), res(204)];
    let step = 0;
    let last;
    for (const o of outcomes) {
      last = decideAfterAttempt(o, step, S, 0.5);
      if (last.status === 'pending') step = last.retryStep;
    }
    expect(step).toBe(3);
    expect(last).toEqual({ status: 'delivered' });
  });

  it.each([
    { schedule: [] as number[], attempts: 1 },
    { schedule: [1_000], attempts: 2 },
    { schedule: [1_000, 2_000, 3_000], attempts: 4 },
  ])('a schedule of $schedule.length waits gives $attempts attempts', ({ schedule, attempts }) => {
    let step = 0;
    let n = 0;
    for (;;) {
      n++;
      const next = decideAfterAttempt(res(500), step, schedule, 0.5);
      if (next.status !== 'pending') break;
      step = next.retryStep;
    }
    expect(n).toBe(attempts);
  });
});
