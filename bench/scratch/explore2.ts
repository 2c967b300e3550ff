import { modelRun } from '../adaptive-model.js';
import { tuningFor } from '../../src/durations/tuning.js';
const f = (x: number) => x.toFixed(3);
const fixed = modelRun(undefined);
const mode = process.argv[2] ?? 'keller';
const rows: string[] = [];
if (mode === 'keller') {
  for (const cap of [6, 6.5, 7]) for (const step of [1.6, 2, 2.4, 3]) for (const bodyMass of [0.01, 0.02, 0.04]) {
    const r = modelRun({ ...tuningFor(cap), step, bodyMass });
    rows.push(`keller cap ${cap} step ${step} mass ${bodyMass}: ${f(r.polls / fixed.polls)} ${f(r.lagP50 / fixed.lagP50)} ${f(r.lagP99 / fixed.lagP99)}`);
  }
} else {
  for (const cap of [6, 6.5, 7]) for (const step of [0.05, 0.1, 0.15, 0.2, 0.3]) for (const bodyMass of [0.01, 0.02, 0.04]) {
    const r = modelRun({ ...tuningFor(cap), placement: 'threshold', step, bodyMass });
    rows.push(`thresh cap ${cap} λ ${step} mass ${bodyMass}: ${f(r.polls / fixed.polls)} ${f(r.lagP50 / fixed.lagP50)} ${f(r.lagP99 / fixed.lagP99)}`);
  }
}
console.log(rows.join('\n'));
