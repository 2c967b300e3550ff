// A periodic job's failure that repeats every round (a database outage) is logged at most
// once per window, message only: before, the duration learner and cache logged a warning
// with a full stack every 250 ms of an outage and pushed the worker's own lines out.
import { describe, expect, it } from 'vitest';
import { repeatingWarn, type Logger } from '../src/log.js';

describe('repeatingWarn', () => {
  it('logs the first failure, folds the next ones within the window, says how many', () => {
    const lines: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const log = { warn: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }) } as unknown as Logger;
    let t = 0;
    const warn = repeatingWarn(log, 'job failed', 30_000, () => t);
    warn(new Error('read ECONNRESET'));
    for (t = 250; t < 30_000; t += 250) warn(new Error('read ECONNRESET'));
    expect(lines).toEqual([{ obj: { err: 'read ECONNRESET', folded: 0 }, msg: 'job failed' }]);
    t = 30_000;
    warn('not an Error');
    expect(lines[1]).toEqual({ obj: { err: 'not an Error', folded: 119 }, msg: 'job failed' });
  });
});
