// Baseline (a): the in-memory poller an app would write on its own. One setTimeout
// chain per task, global fetch (undici's default keep-alive agent), first poll after
// 2 s, then every 3–6 s (× scale); on a terminal status sign the webhook with the
// `standardwebhooks` package and POST it, retrying a few times. Nothing is durable:
// a restart forgets every task. Driven by the orchestrator over IPC:
//   {type:'watch', ids, callbacks, spreadMs?} → {type:'watching', n}: first polls 2 s × scale
//                                   (+ U[0, spreadMs]) from now
//   {type:'forget'}                 → {type:'forgot'}: every task watched so far stops at its next turn
//   {type:'stats'}                  → {type:'stats', polls, errors, delivered, failed, active}
// Usage (forked): node --import tsx bench/naive.ts --upstream URL --scale S
import { parseArgs } from 'node:util';
import { Webhook } from 'standardwebhooks';
import { FIRST_POLL_MS, TERMINAL, nextPollMs, postSignedWebhook } from './lib.js';

const { values } = parseArgs({ options: { upstream: { type: 'string' }, scale: { type: 'string', default: '1' } } });
const upstream = values.upstream!;
const scale = Number(values.scale);
const wh = new Webhook(process.env.TASKHOOK_SIGNING_SECRET!);
const headers = { authorization: `Bearer ${process.env.UPSTREAM_API_KEY ?? 'sk_test'}`, accept: 'application/json' };

interface Watch {
  id: string;
  taskId: string;
  callback: string;
  /** the orchestrator's 'forget' bumps the generation: older chains stop at their next turn */
  gen: number;
}

let generation = 0;

let polls = 0;
let errors = 0;
let delivered = 0;
let failed = 0;
let active = 0;

async function poll(w: Watch): Promise<void> {
  if (w.gen !== generation) {
    active--;
    return;
  }
  try {
    const res = await fetch(`${upstream}/api/v2/tasks/${encodeURIComponent(w.taskId)}`, { headers });
    const task = (await res.json()) as { status?: string };
    polls++;
    if (res.ok && task.status && TERMINAL.has(task.status)) {
      active--;
      return deliver(w, task, 1);
    }
  } catch {
    errors++;
  }
  setTimeout(() => void poll(w), nextPollMs(scale));
}

async function deliver(w: Watch, task: { status?: string }, attempt: number): Promise<void> {
  try {
    const status = await postSignedWebhook(wh, w.callback, `msg_${w.id}`, w.id, task);
    if (status >= 200 && status < 300) {
      delivered++;
      return;
    }
    throw new Error(`HTTP ${status}`);
  } catch {
    if (attempt >= 5) {
      failed++;
      return;
    }
    setTimeout(() => void deliver(w, task, attempt + 1), 1000 * attempt);
  }
}

process.on('message', (m: { type: string; ids?: string[]; callbacks?: string[]; spreadMs?: number }) => {
  if (m.type === 'watch') {
    const ids = m.ids ?? [];
    const callbacks = m.callbacks ?? [];
    ids.forEach((taskId, i) => {
      const w: Watch = { id: `naive_${taskId}`, taskId, callback: callbacks[i % callbacks.length]!, gen: generation };
      active++;
      setTimeout(() => void poll(w), FIRST_POLL_MS * scale + Math.random() * (m.spreadMs ?? 0));
    });
    process.send!({ type: 'watching', n: ids.length });
  } else if (m.type === 'forget') {
    generation++;
    process.send!({ type: 'forgot' });
  } else if (m.type === 'stats') {
    process.send!({ type: 'stats', polls, errors, delivered, failed, active });
  }
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
process.stdout.write(`READY ${JSON.stringify({ pid: process.pid })}\n`);
