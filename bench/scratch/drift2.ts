import { learn } from '../../src/durations/drift.js';
import { emptyHistogram, type Histogram } from '../../src/durations/histogram.js';
import { DECAY } from '../../src/durations/tuning.js';
import { drawDuration, seeded } from '../adaptive-model.js';
const K = (m: number, s: number) => ({ name: 'k', medianS: m, sigma: s, share: 1 });
let fa = 0, total = 0;
for (const [m, s] of [[7, 0.2], [16, 0.25], [90, 0.3], [30, 0.8]] as const) {
  const rand = seeded(m * 7);
  let h: Histogram = emptyHistogram();
  for (let i = 0; i < 30000; i++) h = learn(h, [{ kind: 'completed', s: drawDuration(rand, K(m, s)) }], 5000, DECAY);
  fa += h.drift!.alarms; total += 30000;
}
const delays: number[] = [];
for (const [from, to, sigma] of [[16, 32, 0.25], [7, 14, 0.2], [90, 180, 0.3], [32, 16, 0.25], [25, 12.5, 0.3], [16, 24, 0.25]] as const) for (let seed = 0; seed < 5; seed++) {
  const rand = seeded(from + to + seed * 1000);
  let h: Histogram = emptyHistogram();
  for (let i = 0; i < 300; i++) h = learn(h, [{ kind: 'completed', s: drawDuration(rand, K(from, sigma)) }], 5000, DECAY);
  const a0 = h.drift!.alarms;
  let i = 0;
  for (; i < 100 && h.drift!.alarms === a0; i++) h = learn(h, [{ kind: 'completed', s: drawDuration(rand, K(to, sigma)) }], 5000, DECAY);
  delays.push(i);
}
console.log(`k ${process.env.DK} h ${process.env.DH}: false alarms ${fa}/${total}; delays ${delays.join(',')}`);
