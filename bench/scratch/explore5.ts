import { modelRun } from '../adaptive-model.js';
import { tuningFor } from '../../src/durations/tuning.js';
const f = (x: number) => x.toFixed(3);
const fixed = modelRun(undefined);
const rows: string[] = [];
for (const bodyMass of [0.1, 0.15, 0.2]) for (const lag of [3, 6.5]) {
  const r = modelRun({ ...tuningFor(lag), bodyMass }, undefined, { memory: 50 });
  rows.push(`K ${process.env.ONSET_K} mass ${bodyMass} lag ${lag}: ${f(r.polls / fixed.polls)} ${f(r.lagP50 / fixed.lagP50)} ${f(r.lagP99 / fixed.lagP99)}  v90 p99 ${r.perKind['video-90']!.p99.toFixed(1)} img p99 ${r.perKind['image']!.p99.toFixed(1)}`);
}
console.log(rows.join('\n'));
