// The checker's own test: doctored copies of a real run's history, each breaking one
// promise the way a broken gateway would (a webhook lost, a byte of data changed, a
// duplicate under a new webhook-id, …). Every run checks each of them after its own
// check, so a checker that stopped seeing a kind of failure fails the run.
import type { History } from './history.js';
import type { Receipt } from './receivers.js';
import { inCrashWindow, inTakeoverWindow, UNRECORDED_ACK_MS, type CheckConfig } from './check.js';

export interface Sabotage {
  name: string;
  what: string;
  /** the checker must report a violation of this rule */
  rule: string;
  apply(h: History, cfg: CheckConfig): History | undefined;
}

const typeOf = (r: Receipt) => {
  try {
    return String(JSON.parse(r.body).type);
  } catch {
    return '';
  }
};
const ackedTerminal = (h: History) => h.receipts.filter((r) => r.answer === 'ack' && /^task\.(completed|failed|cancelled)$/.test(typeOf(r)));
const withReceipts = (h: History, receipts: Receipt[]): History => ({ ...h, receipts });

/** an acknowledged terminal webhook of a watch that got exactly one request, the API says delivered, never redelivered (`calm`: and no crash around it) */
/** `calm`: far from any crash by the checker's own window (cfg.unrecordedAckMs), so the checker must flag a duplicate of it. */
function plainDelivered(h: History, calm = false, cfg?: CheckConfig): Receipt | undefined {
  const before = cfg?.unrecordedAckMs ?? UNRECORDED_ACK_MS;
  const redelivered = new Set(h.redeliveries.map((r) => r.watchId));
  // a watch subscribed to every terminal event: one that is not may end silently, which the checker allows
  const everyEvent = new Set(h.registered.filter((r) => r.id && (r.plan.events ?? ['watch.failed']).includes('watch.failed')).map((r) => r.id!));
  const perId = new Map<string, number>();
  for (const r of h.receipts) perId.set(r.id, (perId.get(r.id) ?? 0) + 1);
  return ackedTerminal(h).find((r) => {
    const watch = JSON.parse(r.body).watch_id as string;
    return perId.get(r.id) === 1 && !redelivered.has(watch) && everyEvent.has(watch) && h.api.get(watch)?.status === 'delivered' && !(calm && (inCrashWindow(h, r.at, before) || inCrashWindow(h, r.ts * 1000, before)));
  });
}

export const SABOTAGES: Sabotage[] = [
  {
    name: 'drop',
    what: 'a delivered watch whose only webhook the receiver never got',
    rule: 'delivered',
    apply(h) {
      const r = plainDelivered(h);
      return r && withReceipts(h, h.receipts.filter((x) => x !== r));
    },
  },
  {
    name: 'corrupt',
    what: 'one byte of upstream data changed in a delivered webhook',
    rule: 'data',
    apply(h) {
      const r = plainDelivered(h);
      if (!r) return undefined;
      const i = r.body.indexOf('"data":') + 20;
      const body = r.body.slice(0, i) + (r.body[i] === 'x' ? 'y' : 'x') + r.body.slice(i + 1);
      return withReceipts(h, h.receipts.map((x) => (x === r ? { ...x, body } : x)));
    },
  },
  {
    name: 'dup-new-id',
    what: 'a delivered webhook sent again under a new webhook-id',
    rule: 'duplicate',
    apply(h) {
      const r = plainDelivered(h);
      return r && withReceipts(h, [...h.receipts, { ...r, id: `${r.id}x`, at: r.at + 50 }]);
    },
  },
  {
    name: 'dup-same-id',
    what: 'a delivered webhook acknowledged twice, far from any crash',
    rule: 'duplicate',
    apply(h, cfg) {
      const r = plainDelivered(h, true, cfg);
      return r && withReceipts(h, [...h.receipts, { ...r, at: r.at + 50 }]);
    },
  },
  {
    name: 'cross-tenant',
    what: "a webhook arriving at another tenant's URL",
    rule: 'cross-tenant',
    apply(h) {
      const r = plainDelivered(h);
      return r && withReceipts(h, h.receipts.map((x) => (x === r ? { ...x, tenant: (x.tenant + 1) % h.secrets.length } : x)));
    },
  },
  {
    name: 'bad-signature',
    what: 'a webhook no secret of its tenant verifies',
    rule: 'signature',
    apply(h) {
      const r = plainDelivered(h);
      return r && withReceipts(h, h.receipts.map((x) => (x === r ? { ...x, verifiedBy: [] } : x)));
    },
  },
  {
    name: 'stuck',
    what: 'a watch the API still shows as delivering',
    rule: 'stuck',
    apply(h) {
      const [id, view] = [...h.api].find(([, w]) => w.status === 'delivered') ?? [];
      if (!id || !view) return undefined;
      return { ...h, api: new Map([...h.api, [id, { ...view, status: 'delivering' }]]) };
    },
  },
  {
    name: 'poll-storm',
    what: 'a task polled twice 10 ms apart in a calm stretch',
    rule: 'poll interval',
    apply(h, cfg) {
      const lastReg = new Map<string, number>();
      for (const r of h.registered) lastReg.set(r.plan.taskId, Math.max(lastReg.get(r.plan.taskId) ?? 0, r.doneAt));
      const p = h.sim.polls.find(
        (x) => x[3] === 200 && x[0] > (lastReg.get(x[1]) ?? Infinity) + 1_000 && !inTakeoverWindow(h, x[0], cfg) && !inTakeoverWindow(h, x[0] + 10, cfg),
      );
      if (!p) return undefined;
      return { ...h, sim: { ...h.sim, polls: [...h.sim.polls, [p[0] + 10, p[1], p[2], p[3], p[4]]] } };
    },
  },
];
