import { learn } from '../../src/durations/drift.js';
import { curveOf, emptyHistogram, survivalAt, type Histogram, type Sample } from '../../src/durations/histogram.js';
import { DECAY } from '../../src/durations/tuning.js';
import { drawDuration, seeded } from '../adaptive-model.js';
for (const [from, to, sigma] of [[16, 32, 0.25], [7, 14, 0.2], [90, 180, 0.3], [32, 16, 0.25]] as const) {
  const rand = seeded(from + to);
  let h: Histogram = emptyHistogram();
  for (let i = 0; i < 500; i++) h = learn(h, [{ kind: 'completed', s: drawDuration(rand, { name: 'k', medianS: from, sigma, share: 1 }) }], 5000, DECAY);
  const line: string[] = [];
  for (let i = 0; i < 20; i++) {
    const s = drawDuration(rand, { name: 'k', medianS: to, sigma, share: 1 });
    const u = 1 - survivalAt(curveOf(h), s);
    h = learn(h, [{ kind: 'completed', s }], 5000, DECAY);
    line.push(`${u.toFixed(2)}:${h.drift!.up.toFixed(2)}/${h.drift!.down.toFixed(2)}${h.drift!.alarms ? '!' : ''}`);
  }
  console.log(from, to, line.join(' '));
}
