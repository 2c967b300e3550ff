import { describe, expect, it } from 'vitest';
import { REALISTIC_MIX, drawDurationMs, pickSpec, specName } from '../src/sim/durations.js';
import { SimTaskStore } from '../src/sim/tasks.js';
import { seeded } from '../bench/adaptive-model.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('simulated durations per kind', () => {
  it.each(REALISTIC_MIX.map((s) => [specName(s), s] as const))('%s: median as specified, a long tail, compressed by the scale', (_name, spec) => {
    const rand = seeded(1);
    const xs = Array.from({ length: 4_000 }, () => drawDurationMs(spec, rand));
    expect(median(xs) / spec.medianMs).toBeGreaterThan(0.93);
    expect(median(xs) / spec.medianMs).toBeLessThan(1.07);
    const tail = xs.filter((x) => x > spec.medianMs * Math.exp(3 * spec.sigma)).length / xs.length;
    expect(tail).toBeGreaterThan(0.015); // the 3 % tail, well past the log-normal's 3σ
    // the same draw, time-compressed
    expect(drawDurationMs(spec, seeded(9), 0.1)).toBeCloseTo(drawDurationMs(spec, seeded(9)) * 0.1, 6);
  });

  it('picks kinds by weight', () => {
    const rand = seeded(2);
    const counts = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const k = specName(pickSpec(REALISTIC_MIX, rand));
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    expect(counts.get('voice/clone/v1-real')! / 10_000).toBeCloseTo(0.35, 1);
    expect(counts.get('video/generate/vid-long')! / 10_000).toBeCloseTo(0.15, 1);
  });

  it('the store draws a task’s duration from its kind, the script’s durationMs wins, and a kind can be swapped mid-run', () => {
    const store = new SimTaskStore({ durations: { specs: REALISTIC_MIX.map((s) => ({ ...s, sigma: 0, tailShare: 0 })), random: seeded(3) }, fractionalTimestamps: true, noProgress: true });
    const t0 = 1_780_000_000_123;
    const img = store.create({ capability: 'image' }, t0);
    expect(img.created_at).toBe(1_780_000_000.123);
    expect(store.get(img.task_id, t0 + 15_999)!.status).toBe('processing');
    expect(store.get(img.task_id, t0 + 15_999)!.progress).toBeNull();
    expect(store.get(img.task_id, t0 + 16_000)!.completed_at).toBeCloseTo(1_780_000_016.123, 3);
    expect(store.get(store.create({ capability: 'image', durationMs: 500 }, t0).task_id, t0 + 500)!.status).toBe('completed');
    store.setDurationSpec({ ...REALISTIC_MIX[1]!, medianMs: 32_000, sigma: 0, tailShare: 0 });
    const later = store.create({ capability: 'image' }, t0);
    expect(store.get(later.task_id, t0 + 31_999)!.status).toBe('processing');
    expect(store.get(later.task_id, t0 + 32_000)!.status).toBe('completed');
    // without a model: the old default, whole seconds
    const plain = new SimTaskStore().create({}, t0);
    expect(plain.created_at).toBe(1_780_000_000);
  });
});
