// The soak's report: a table for people, and for a failing run the seed and the
// first violated watches with their whole history (registration, the API's view and
// attempts, every request their receiver got, every poll of their task, the faults
// around them).
import type { Figures, Violation } from './check.js';
import type { History } from './history.js';

const ms = (n: number | null | undefined) => (n === null || n === undefined ? '—' : n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`);
const kv = (m: Record<string, number>) =>
  Object.entries(m)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(', ') || '—';

export function table(f: Figures, seed: number, violations: Violation[]): string {
  const rows: Array<[string, string]> = [
    ['seed', String(seed)],
    ['watches', `${f.watches.registered} registered of ${f.watches.planned}; ${kv(f.watches.byStatus)}`],
    ['tasks by script', kv(f.watches.byKind)],
    ['faults injected', `${f.faults.total}: ${kv(f.faults.byKind)}`],
    ['faults skipped', kv(f.faults.skipped)],
    ['webhook requests', `${f.webhooks.requests} (${f.webhooks.acked} acknowledged); answers ${kv(f.webhooks.byAnswer)}`],
    ['webhook types', kv(f.webhooks.byType)],
    ['duplicates', `${f.duplicates.inCrashWindows} in crash windows, ${f.duplicates.outsideCrashWindows} outside (must be 0), ${f.duplicates.afterTimeout} after an attempt the gateway timed out, ${f.duplicates.redelivered} from redeliveries asked for`],
    ['receivers answered 2xx in', `p50 ${ms(f.receiverAnswerMs.p50)}, p99 ${ms(f.receiverAnswerMs.p99)}, max ${ms(f.receiverAnswerMs.max)} (the soak's own receivers: a high figure means this machine was starved)`],
    ['receivers read requests', `p50 ${ms(f.receiverReadLagMs.p50)}, p99 ${ms(f.receiverReadLagMs.p99)}, max ${ms(f.receiverReadLagMs.max)} after the gateway signed them (whole seconds: ±1 s)`],
    ['quiescence', f.quiescenceMs === null ? 'NOT REACHED' : `${ms(f.quiescenceMs)} from the last fault healed to every watch final`],
    ['lag, healthy URLs', `p50 ${ms(f.lag.healthy.p50)}, p99 ${ms(f.lag.healthy.p99)}, max ${ms(f.lag.healthy.max)} (n ${f.lag.healthy.n}); during faults max ${ms(f.lag.healthy.duringFaults.max)} (n ${f.lag.healthy.duringFaults.n})`],
    ['lag, healthy URL on a shared host', `p50 ${ms(f.lag.sharedHost.p50)}, p99 ${ms(f.lag.sharedHost.p99)}, max ${ms(f.lag.sharedHost.max)}; during faults max ${ms(f.lag.sharedHost.duringFaults.max)} (n ${f.lag.sharedHost.duringFaults.n})`],
    ['polls', `${f.polls.total} for ${f.polls.tasks} tasks; per task p50 ${f.polls.perTask.p50}, p99 ${f.polls.perTask.p99}, max ${f.polls.perTask.max}`],
    ['polls closer than the minimum', `${f.polls.tooClose} outside takeovers (must be 0), ${f.polls.tooCloseInTakeover} inside`],
    ['metadata byte-identical', `${f.metadataVerbatim.byteIdentical} of ${f.metadataVerbatim.of} webhooks (deep-equal is required, bytes are reported)`],
    ['watch.outcome in the API', f.outcomeField === 'absent' ? 'absent (not checked)' : f.outcomeField],
    ['violations', String(violations.length)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, val]) => `  ${k.padEnd(w)}  ${val}`).join('\n');
}

/** The history of one watch, for a failing run's report. */
export function watchHistory(h: History, watch: string): string {
  const rel = (t: number) => `${((t - h.t0) / 1000).toFixed(2)}s`.padStart(8);
  const reg = h.registered.find((r) => r.id === watch) ?? h.registered.find((r) => `#${r.plan.i}` === watch);
  if (!reg) return `  ${watch}: not a registered watch`;
  const p = reg.plan;
  const lines = [
    `  ${watch}: tenant ${p.tenant}, task ${p.taskId} (${p.kind}${p.script ? `, ${Math.round(p.script.durationMs)} ms` : ''}), ${reg.url}, events ${(p.events ?? ['default']).join(',')}`,
    `    registered ${rel(reg.sentAt)} → ${rel(reg.doneAt)}${reg.createdAt ? `, task created upstream ${rel(reg.createdAt)}` : ''}${reg.error ? `, error ${reg.error}` : ''}`,
  ];
  const view = reg.id ? h.api.get(reg.id) : undefined;
  if (view) lines.push(`    API: status ${view.status}, outcome ${view.outcome === undefined ? '(absent)' : view.outcome}, polls ${view.polls}, last_delivery ${JSON.stringify(view.last_delivery)}`);
  for (const a of (reg.id && h.attempts.get(reg.id)) || []) lines.push(`    attempt ${a.attempted_at} ${a.webhook_id} ${a.event_type} → ${a.response_status ?? '—'} ${a.error ?? ''}`);
  for (const c of h.cancels.filter((x) => x.watchId === reg.id)) lines.push(`    ${rel(c.at)} DELETE → ${c.http} ${c.status ?? ''}`);
  for (const r of h.redeliveries.filter((x) => x.watchId === reg.id)) lines.push(`    ${rel(r.at)} redeliver → ${r.http}`);
  const receipts = h.receipts.filter((r) => r.body.includes(`"watch_id":"${reg.id}"`));
  for (const r of receipts) lines.push(`    ${rel(r.at)} receiver ${r.path}: ${r.id} ${JSON.parse(r.body).type} → ${r.answer}${r.answeredAt ? ` in ${r.answeredAt - r.at} ms` : ''} (secrets ${r.verifiedBy.join(',') || 'none'})`);
  const key = h.upstreamKeys[p.tenant];
  const polls = h.sim.polls.filter((x) => x[1] === p.taskId && x[2] === key);
  if (polls.length) lines.push(`    polls: ${polls.map((x) => `${rel(x[0]).trim()} ${x[3] || 'hang'}`).join(', ')}`);
  const end = Math.max(reg.doneAt, ...receipts.map((r) => r.at)) + 1_000;
  const own = new URL(reg.url).pathname;
  for (const f of h.faults.filter((x) => !x.skipped && x.end >= reg.sentAt - 1_000 && x.start <= end && (!x.kind.startsWith('receiver-') || x.detail.startsWith(`${own} `)))) lines.push(`    fault ${rel(f.start)}–${rel(f.end).trim()} ${f.kind}: ${f.detail}`);
  return lines.join('\n');
}

export function failureReport(h: History, violations: Violation[], max = 5): string {
  const out = [`SOAK FAILED (seed ${h.seed}): ${violations.length} violation(s). Replay: npm run soak -- --seed ${h.seed} (with the same options)`];
  const byRule = new Map<string, number>();
  for (const x of violations) byRule.set(x.rule, (byRule.get(x.rule) ?? 0) + 1);
  out.push(`  by rule: ${[...byRule].map(([r, n]) => `${r} ${n}`).join(', ')}`);
  for (const x of violations.slice(0, 20)) out.push(`  - [${x.rule}] ${x.watch ?? ''} ${x.detail}`);
  const watches = [...new Set(violations.flatMap((x) => (x.watch ? [x.watch] : [])))].slice(0, max);
  if (watches.length) out.push('first violated watches:');
  for (const w of watches) out.push(watchHistory(h, w));
  return out.join('\n');
}
