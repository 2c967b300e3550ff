import { modelRun } from '../adaptive-model.js';
import { tuningFor } from '../../src/durations/tuning.js';
const f = (x: number) => x.toFixed(3);
for (const mem of [undefined, 50, 150]) {
  const fixed = modelRun(undefined, undefined, { memory: mem });
  const contract = modelRun(undefined, undefined, { contract: true, memory: mem });
  console.log(`memory ${mem}: fixed ${fixed.polls.toFixed(2)} polls p50 ${fixed.lagP50.toFixed(2)} p99 ${fixed.lagP99.toFixed(2)}; contract ${contract.polls.toFixed(2)} ${contract.lagP50.toFixed(2)} ${contract.lagP99.toFixed(2)}`);
  if (mem === undefined) for (const [k, v] of Object.entries(fixed.perKind)) console.log('  fixed', k, v.polls.toFixed(2), v.p50.toFixed(2), v.p99.toFixed(2), JSON.stringify(Object.fromEntries(Object.entries(v.where).map(([a,b])=>[a,+b.toFixed(2)]))));
  for (const lag of [6.5, 3.5]) {
    const r = modelRun(tuningFor(lag), undefined, { memory: mem });
    console.log(`  lag ${lag}: ${f(r.polls / fixed.polls)} ${f(r.lagP50 / fixed.lagP50)} ${f(r.lagP99 / fixed.lagP99)}`);
    if (mem === undefined || mem === 50) for (const [k, v] of Object.entries(r.perKind)) console.log('   ', k, v.polls.toFixed(2), v.p50.toFixed(2), v.p99.toFixed(2), JSON.stringify(Object.fromEntries(Object.entries(v.where).map(([a,b])=>[a,+b.toFixed(2)]))));
  }
}
