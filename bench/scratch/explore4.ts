import { modelRun } from '../adaptive-model.js';
import { tuningFor } from '../../src/durations/tuning.js';
const f = (x: number) => x.toFixed(3);
const mem = process.argv[2] === 'none' ? undefined : Number(process.argv[2]);
const fixed = modelRun(undefined);
const rows: string[] = [];
for (const bodyMass of [0.07, 0.1, 0.15]) for (const lag of [3, 3.25, 3.5, 6, 6.5, 7]) {
  const r = modelRun({ ...tuningFor(lag), bodyMass }, undefined, { memory: mem });
  rows.push(`mem ${mem} mass ${bodyMass} lag ${lag}: ${f(r.polls / fixed.polls)} ${f(r.lagP50 / fixed.lagP50)} ${f(r.lagP99 / fixed.lagP99)}`);
}
console.log(rows.join('\n'));
