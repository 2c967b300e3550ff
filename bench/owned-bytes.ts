// Bytes per owned task in the worker's memory (the poller's Ownership + timer heap), measured:
// (heapUsed with K owned − before) / K after a full GC. Run: node --expose-gc --import tsx bench/owned-bytes.ts [K]
import { Ownership } from '../src/poller/ownership.js';
import { TimerHeap } from '../src/engine/timer-heap.js';
import type { ClaimedRow } from '../src/poller/sql.js';

const K = Number(process.argv[2] ?? 100_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
gc();
const before = process.memoryUsage().heapUsed;
// rows as postgres.js hands them over: a fresh flat string per column and row (decoded from
// the wire buffer), the tenant's id too
const flat = (v: string) => Buffer.from(v).toString('utf8');
const rows: ClaimedRow[] = Array.from({ length: K }, (_, i) => ({
  id: 1_000_000 + i,
  tenant_id: flat('ten_01jd8x2k3m4n5p6q7r8s9t0v1w'),
  task_id: flat(`job_${(1e12 + i * 7919).toString(36)}${i}`),
  polls: i % 17,
  unauthorized_streak: 0,
  error_streak: 0,
  processing_seen: i % 2 === 0,
  last_poll_error: null,
  snapshot_hash: (i * 2654435761) % 2 ** 52,
  age_ms: 1000 + i,
  due_in_ms: i % 3000,
}));
const tasks = new Ownership(Date.now);
const heap = new TimerHeap<unknown>();
for (const r of rows) {
  const t = tasks.adopt(r, 7);
  heap.push(t.due, t);
}
rows.length = 0; // the claim's rows are garbage once adopted
gc();
const after = process.memoryUsage().heapUsed;
console.log(`${K} owned: ${((after - before) / K).toFixed(0)} B per task (heap ${(after / 1048576).toFixed(1)} MiB, size ${tasks.size}, heap ${heap.size})`);
