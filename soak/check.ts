// The checker: reads a run's history afterwards and asserts the public contract
// (CONTRACT §4–§6) on it. It knows nothing of tables or engines: only what was
// registered and done through the API, what the receivers got (verified on arrival
// with `standardwebhooks`), the upstream's poll log, and the API's final view.
// Pure: history in, violations and figures out (test/soak-check.test.ts feeds it
// doctored histories to show each rule can fail).
import { isDeepStrictEqual } from 'node:util';
import { bodyHash } from '../src/sim/admin.js';
import type { Fault, History, Registered, WatchView } from './history.js';
import type { Receipt } from './receivers.js';

export interface CheckConfig {
  maxWatchAgeMs: number;
  notFoundGraceMs: number;
  /** attempts before a delivery is undeliverable: the retry schedule's length + 1 */
  attemptBudget: number;
  /** the contract's minimum between two polls of one task, × the cadence scale */
  minPollGapMs: number;
  /** how long after a process loses its work another may take it over (the longest lease + a margin) */
  takeoverSlackMs: number;
  /** how long a cancelled watch's in-flight attempt may still arrive (delivery lease + timeout + margin) */
  cancelSlackMs: number;
  /** after a rotation, webhooks signed this much later must carry the new secret's signature */
  rotationLagMs: number;
  deliveryTimeoutMs: number;
  /**
   * how long after an acknowledgement a crash-kind fault may still lose its record: the delivery
   * lease (a result not written by then is sent again by another process anyway). Older saved
   * histories lack it: UNRECORDED_ACK_MS.
   */
  unrecordedAckMs?: number;
}

export interface Violation {
  rule: string;
  /** the watch id (or `#<plan index>` if it has none) */
  watch?: string;
  detail: string;
}

const TERMINAL_TYPES = new Set(['task.completed', 'task.failed', 'task.cancelled', 'watch.failed']);
const DEFAULT_EVENTS = ['task.completed', 'task.failed', 'task.cancelled', 'watch.failed'];
const FINAL = new Set(['delivered', 'undeliverable', 'cancelled']);
const ANSWER_STATUS: Record<string, number | null> = { ack: 204, '500': 500, '429': 429, '410': 410, 'bad-signature': 400, 'unknown-path': 404, hang: null, close: null };
/** clock readings of two processes on one machine: a poll's due time vs the sim's arrival stamp */
const CLOCK_SLACK_MS = 25;
/** before a fault starts, an acknowledged send may still be waiting to be recorded */
const UNRECORDED_ACK_MS = 3_000;

interface Info {
  key: string;
  id?: string;
  reg: Registered;
  view?: WatchView;
  receipts: Receipt[];
  cancelled?: 'yes' | 'maybe';
  cancelAt?: number;
  redelivered: boolean;
}

export interface Figures {
  watches: { planned: number; registered: number; byStatus: Record<string, number>; byKind: Record<string, number> };
  faults: { total: number; byKind: Record<string, number>; skipped: Record<string, number>; crashWindowsMs: number };
  webhooks: { requests: number; acked: number; byAnswer: Record<string, number>; byType: Record<string, number> };
  duplicates: { inCrashWindows: number; afterTimeout: number; redelivered: number; outsideCrashWindows: number };
  /** how long our receivers took to answer an acknowledged request (they delay 0-40 ms on purpose) */
  receiverAnswerMs: Dist;
  /** a request's webhook-timestamp (the gateway signing it) → our receiver reading it: high when this box is starved */
  receiverReadLagMs: Dist;
  polls: { total: number; tasks: number; perTask: Dist; tooClose: number; tooCloseInTakeover: number };
  lag: { healthy: Dist & { duringFaults: Dist }; sharedHost: Dist & { duringFaults: Dist } };
  metadataVerbatim: { byteIdentical: number; of: number };
  outcomeField: 'present' | 'absent' | 'mixed';
  quiescenceMs: number | null;
}

export interface Dist {
  n: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

export function dist(xs: number[]): Dist {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! : null);
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s.length ? s[s.length - 1]! : null };
}

/** webhook-timestamp's granularity */
const TS_GRANULARITY_MS = 1_000;

/**
 * The secrets a request signed in [from, to] may carry: the current one and the previous one at
 * any moment of that span, where rotation n may have taken effect from the moment it was sent and
 * a gateway's cached copy may lag the database by `cacheLagMs`. Secret #0 is the tenant's first;
 * rotation n (in order) makes #n current and keeps #n−1 as the previous one, dropping #n−2.
 */
export function validSecrets(rs: Array<{ secret: number; sentAt: number; doneAt: number }>, from: number, to: number, cacheLagMs: number): Set<number> {
  const out = new Set<number>();
  const secrets = [0, ...rs.map((x) => x.secret)];
  secrets.forEach((secret, i) => {
    const since = i === 0 ? -Infinity : rs[i - 1]!.sentAt;
    const dropped = rs[i + 1] ? rs[i + 1]!.doneAt + cacheLagMs : Infinity; // rotation i+2 (index i+1) drops it
    if (since <= to && dropped >= from) out.add(secret);
  });
  return out;
}

const count = (m: Record<string, number>, k: string, n = 1) => (m[k] = (m[k] ?? 0) + n);

const within = (t: number, fs: Fault[], before: number, after: number) => fs.some((f) => !f.skipped && t >= f.start - before && t <= f.end + after);
/** an acknowledgement at `t` may have gone unrecorded because of a crash-kind fault */
export const inCrashWindow = (h: History, t: number, beforeMs = UNRECORDED_ACK_MS) => within(t, h.faults.filter((f) => f.crash), beforeMs, 1_000);
/** a poll at `t` may be another process's takeover of work a faulted one held */
export const inTakeoverWindow = (h: History, t: number, cfg: CheckConfig) => within(t, h.faults.filter((f) => f.takeover), 1_000, cfg.takeoverSlackMs);

/** The event the upstream script makes a watch end with. */
export function expectedEvent(r: Registered): { type: string; code?: string } {
  switch (r.plan.kind) {
    case 'completed':
    case 'late':
      return { type: 'task.completed' };
    case 'failed':
      return { type: 'task.failed' };
    case 'cancelled':
      return { type: 'task.cancelled' };
    case 'unknown':
      return { type: 'watch.failed', code: 'task_not_found' };
    case 'never':
      return { type: 'watch.failed', code: 'watch_expired' };
    case 'unauthorized':
      return { type: 'watch.failed', code: 'upstream_unauthorized' };
  }
}

export function check(h: History, cfg: CheckConfig): { violations: Violation[]; figures: Figures } {
  const violations: Violation[] = [];
  const v = (rule: string, detail: string, info?: Info) => violations.push({ rule, detail, watch: info ? (info.id ?? `#${info.reg.plan.i}`) : undefined });
  const rel = (t: number) => `${((t - h.t0) / 1000).toFixed(2)} s`;

  // --- the watches, by (tenant, task, callback) and by id -------------------------------------
  const byKey = new Map<string, Info>();
  const byId = new Map<string, Info>();
  for (const reg of h.registered) {
    const key = `${reg.plan.tenant}\n${reg.plan.taskId}\n${reg.url}`;
    const info = byKey.get(key) ?? { key, reg, receipts: [], redelivered: false };
    byKey.set(key, info);
    if (reg.id) {
      if (info.id && info.id !== reg.id) v('registration', `(task_id, callback_url) registered twice got two watches: ${info.id}, ${reg.id}`, info);
      info.id = reg.id;
    }
  }
  // the API's view: every watch it lists must be one we registered (a lost answer still left its record)
  for (const view of h.api.values()) {
    const info = byKey.get(`${view.tenant}\n${view.task_id}\n${view.callback_url}`);
    if (!info) {
      v('phantom watch', `the API lists ${view.id} (tenant ${view.tenant}, task ${view.task_id}) that the soak never registered`);
      continue;
    }
    if (info.id && info.id !== view.id) v('registration', `registered as ${info.id}, the API lists ${view.id} for the same (task_id, callback_url)`, info);
    info.id ??= view.id;
    info.view = view;
  }
  for (const info of byKey.values()) if (info.id) byId.set(info.id, info);
  for (const c of h.cancels) {
    const info = byId.get(c.watchId);
    if (!info) continue;
    // no answer, or a 5xx (the database went away mid-request): it may have happened
    const unsure = c.http === 0 || c.http >= 500;
    if (c.http === 200 && c.status === 'cancelled') info.cancelled = 'yes';
    else if (unsure && info.cancelled !== 'yes') info.cancelled = 'maybe';
    if (c.http === 200 || unsure) info.cancelAt = Math.min(info.cancelAt ?? Infinity, c.at);
  }
  for (const r of h.redeliveries) {
    const info = byId.get(r.watchId);
    if (info && (r.http === 202 || r.http === 0 || r.http >= 500)) info.redelivered = true;
  }

  const firstReg = new Map<string, number>();
  for (const r of h.registered) {
    const k = `${r.plan.tenant}\n${r.plan.taskId}`;
    if (r.sentAt && r.sentAt < (firstReg.get(k) ?? Infinity)) firstReg.set(k, r.sentAt);
  }
  const tenantOfKey = new Map(h.upstreamKeys.map((k, t) => [k, t]));

  // --- the upstream's log: per (tenant, task) polls, answers served, first terminal answer ------
  const polls = new Map<string, Array<[number, number, string | null]>>();
  const served = new Map<string, Set<string>>();
  for (const [at, task, key, status, hash] of h.sim.polls) {
    const t = tenantOfKey.get(key);
    const k = `${t ?? key}\n${task}`;
    let list = polls.get(k);
    if (!list) polls.set(k, (list = []));
    list.push([at, status, hash]);
    if (hash) {
      let s = served.get(task);
      if (!s) served.set(task, (s = new Set()));
      s.add(hash);
    }
  }
  const terminalHashes = new Map(Object.entries(h.sim.terminal).map(([task, body]) => [task, bodyHash(body)]));

  // --- every request a receiver got -------------------------------------------------------------
  const byWebhook = new Map<string, { info: Info; type: string; bodies: Set<string>; receipts: Receipt[] }>();
  const byAnswer: Record<string, number> = {};
  const byType: Record<string, number> = {};
  let metaByte = 0;
  let metaOf = 0;
  const rotations = (tenant: number) => h.rotations.filter((r) => r.tenant === tenant).sort((a, b) => a.doneAt - b.doneAt);
  for (const r of h.receipts) {
    count(byAnswer, r.answer);
    if (r.answer === 'unknown-path') {
      v('callback', `a webhook arrived at ${r.path} on origin ${r.origin}, which no watch registered`);
      continue;
    }
    let body: any;
    try {
      body = JSON.parse(r.body);
    } catch {
      v('webhook body', `${r.id} at ${r.path}: body is not JSON: ${r.body.slice(0, 120)}`);
      continue;
    }
    count(byType, String(body.type));
    const info = byId.get(body.watch_id);
    if (!info) {
      v('webhook for unknown watch', `${r.id} (${body.type}) names watch ${body.watch_id}, which was never registered`);
      continue;
    }
    info.receipts.push(r);
    const where = `${r.id} ${body.type} at ${rel(r.at)}`;
    if (info.reg.plan.tenant !== r.tenant) v('cross-tenant', `${where}: tenant ${info.reg.plan.tenant}'s watch delivered to tenant ${r.tenant}'s URL ${r.path}`, info);
    else if (new URL(info.reg.url).pathname !== r.path) v('callback', `${where}: delivered to ${r.path}, registered ${info.reg.url}`, info);
    if (!/^msg_/.test(r.id)) v('webhook-id', `${where}: webhook-id ${JSON.stringify(r.id)} is not msg_…`, info);

    // signatures: by a secret valid at the time; after a rotation has settled, by both the new and the previous one
    if (r.verifiedBy.length === 0) {
      v('signature', `${where}: no signature verifies with tenant ${r.tenant}'s secrets${r.foreign.length ? ` (verifies with tenant ${r.foreign.join(',')}'s!)` : ''}`, info);
    } else {
      const rs = rotations(r.tenant);
      // webhook-timestamp is whole seconds: the request was signed in [ts, ts + 1 s)
      const signedFrom = r.ts * 1000;
      const signedTo = signedFrom + TS_GRANULARITY_MS;
      const valid = validSecrets(rs, signedFrom, signedTo, cfg.rotationLagMs);
      if (!r.verifiedBy.some((x) => valid.has(x))) {
        const known = rs.filter((x) => x.doneAt <= r.at);
        v('signature', `${where}: verifies only with secret(s) #${r.verifiedBy.join(',')} of tenant ${r.tenant}, none of them current or previous while it was signed (#${[...valid].join(',')}; rotations done at ${known.map((x) => rel(x.doneAt)).join(', ')}; signed ${rel(signedFrom)})`, info);
      }
      const settled = rs.filter((x) => x.doneAt + cfg.rotationLagMs <= signedFrom);
      if (settled.length) {
        const last = settled[settled.length - 1]!;
        const before = rs[rs.indexOf(last) - 1]?.secret ?? 0;
        // a rotation begun since (or one that got no answer) may already have replaced `last` and dropped `before`
        const newer = rs.some((x) => x.sentAt > last.sentAt && x.sentAt <= signedTo) || h.lostRotations.some((x) => x.tenant === r.tenant && x.sentAt <= signedTo);
        if (!r.verifiedBy.some((x) => x >= last.secret)) v('rotation', `${where}: signed ${rel(signedFrom)}, more than ${cfg.rotationLagMs / 1000} s after tenant ${r.tenant}'s rotation at ${rel(last.doneAt)}, without the new secret's signature (verified by #${r.verifiedBy.join(',')})`, info);
        else if (!newer && !r.verifiedBy.includes(before)) v('rotation', `${where}: within 24 h of tenant ${r.tenant}'s rotation at ${rel(last.doneAt)}, without the previous secret's (#${before}) signature (verified by #${r.verifiedBy.join(',')})`, info);
      }
    }

    const seen = byWebhook.get(r.id);
    if (!seen) byWebhook.set(r.id, { info, type: body.type, bodies: new Set([r.body]), receipts: [r] });
    else {
      if (seen.info !== info || seen.type !== body.type) v('webhook-id', `${r.id} used for ${seen.info.id}/${seen.type} and for ${info.id}/${body.type}`, info);
      seen.bodies.add(r.body);
      seen.receipts.push(r);
    }

    // the event itself
    const exp = expectedEvent(info.reg);
    const plan = info.reg.plan;
    const events = plan.events ?? DEFAULT_EVENTS;
    if (!events.includes(body.type)) v('events', `${where}: the watch did not subscribe to ${body.type} (events ${events.join(',')})`, info);
    if (body.watch_id !== info.id) v('webhook body', `${where}: watch_id ${body.watch_id}`, info);
    metaOf++;
    if (r.body.includes(`"metadata":${JSON.stringify(plan.metadata)}`)) metaByte++;
    if (!isDeepStrictEqual(body.metadata, plan.metadata)) v('metadata', `${where}: metadata ${JSON.stringify(body.metadata).slice(0, 200)} ≠ registered ${JSON.stringify(plan.metadata).slice(0, 200)}`, info);
    const dataJson = JSON.stringify(body.data);
    const verbatim = r.body.includes(`"data":${dataJson}`);
    if (body.type === 'task.processing') {
      if (body.data?.status !== 'processing') v('task.processing', `${where}: data.status ${body.data?.status}`, info);
      if (!verbatim || !served.get(plan.taskId)?.has(bodyHash(dataJson))) v('data', `${where}: data is not byte-identical to any answer upstream served for ${plan.taskId}`, info);
    } else if (!TERMINAL_TYPES.has(body.type)) {
      v('webhook body', `${where}: unknown type`, info);
    } else {
      const late = plan.kind === 'late' && (info.reg.createdAt ?? Infinity) - info.reg.sentAt > cfg.notFoundGraceMs - 500;
      // (the task's age counts from its first watch: a second one shares the first one's schedule)
      const age = r.at - (firstReg.get(`${plan.tenant}\n${plan.taskId}`) ?? info.reg.sentAt);
      const codeOk = (code: string) =>
        code === exp.code || (code === 'watch_expired' && age >= cfg.maxWatchAgeMs) || (code === 'task_not_found' && late);
      if (body.type === 'watch.failed') {
        const code = body.data?.error?.code;
        if (!codeOk(code)) v('outcome', `${where}: watch.failed/${code}, expected ${exp.type}${exp.code ? `/${exp.code}` : ''} (${plan.kind} task, webhook ${(age / 1000).toFixed(1)} s after registering)`, info);
        if (body.data?.task_id !== plan.taskId || body.data?.status !== 'failed' || body.data?.error?.type !== 'gateway') v('data', `${where}: watch.failed data ${dataJson.slice(0, 200)}`, info);
        if (code === 'task_not_found' && age < cfg.notFoundGraceMs - CLOCK_SLACK_MS) v('outcome', `${where}: task_not_found ${age} ms after registering, inside the ${cfg.notFoundGraceMs} ms grace`, info);
        if (code === 'watch_expired' && age < cfg.maxWatchAgeMs - CLOCK_SLACK_MS) v('outcome', `${where}: watch_expired ${age} ms after registering, before TASKHOOK_MAX_WATCH_AGE_S`, info);
      } else {
        if (body.type !== exp.type) v('outcome', `${where}: expected ${exp.type}${exp.code ? `/${exp.code}` : ''}`, info);
        const final = h.sim.terminal[plan.taskId];
        if (final === undefined || !r.body.includes(`"data":${final}`)) v('data', `${where}: data is not byte-identical to upstream's final answer for ${plan.taskId}`, info);
      }
    }
  }

  // --- per webhook-id: one body, duplicates only from crash windows (or our own redelivery) ----------
  const unrecordedAckMs = cfg.unrecordedAckMs ?? UNRECORDED_ACK_MS;
  const dups = { inCrashWindows: 0, afterTimeout: 0, redelivered: 0, outsideCrashWindows: 0 };
  // the attempts the gateway itself recorded as failed without an answer (timed out, connection lost),
  // by the second they were signed in: a request carries its attempt's webhook-timestamp
  const unanswered = new Map<string, Set<number>>();
  for (const list of h.attempts.values()) {
    for (const a of list) {
      if (a.response_status !== null) continue;
      const set = unanswered.get(a.webhook_id) ?? new Set<number>();
      set.add(Math.floor(Date.parse(a.attempted_at) / 1000));
      unanswered.set(a.webhook_id, set);
    }
  }
  // an acknowledgement the gateway did not see in time: the request of an attempt it recorded
  // as unanswered (our receiver, starved on a loaded box, may read a request seconds late),
  // or one our receiver itself answered past the deadline
  const missedAck = (id: string, r: Receipt) =>
    (r.answeredAt !== undefined && r.answeredAt - r.at >= cfg.deliveryTimeoutMs - 250) ||
    [r.ts - 1, r.ts, r.ts + 1].some((s) => unanswered.get(id)?.has(s));
  const terminalIds = new Map<Info, Set<string>>();
  const processingIds = new Map<Info, Set<string>>();
  for (const [id, w] of byWebhook) {
    if (w.bodies.size > 1) v('webhook body', `${id}: ${w.bodies.size} different bodies under one webhook-id`, w.info);
    const ids = w.type === 'task.processing' ? processingIds : terminalIds;
    let set = ids.get(w.info);
    if (!set) ids.set(w.info, (set = new Set()));
    set.add(id);
    // in the order the gateway sent them (a starved receiver may read two requests out of order)
    const acked = w.receipts.filter((r) => r.answer === 'ack').sort((a, b) => a.ts - b.ts || a.at - b.at);
    if (acked.length <= 1) continue;
    const extra = acked.length - 1;
    if (w.info.redelivered && w.type !== 'task.processing') dups.redelivered += extra;
    else if (acked.slice(0, -1).some((r) => inCrashWindow(h, r.ts * 1000, unrecordedAckMs) || inCrashWindow(h, r.at, unrecordedAckMs))) dups.inCrashWindows += extra;
    else if (acked.slice(0, -1).every((r) => missedAck(id, r))) dups.afterTimeout += extra;
    else {
      dups.outsideCrashWindows += extra;
      v('duplicate', `${id} (${w.type}) acknowledged ${acked.length} times (${acked.map((r) => rel(r.at)).join(', ')}), no crash window around the first`, w.info);
    }
  }
  for (const [info, set] of terminalIds) if (set.size > 1) v('duplicate', `${set.size} terminal webhooks with different webhook-ids: ${[...set].join(', ')}`, info);
  for (const [info, set] of processingIds) if (set.size > 1) v('task.processing', `sent ${set.size} times with different webhook-ids: ${[...set].join(', ')}`, info);

  // --- per watch: how it ended, against what it was sent and what the API says ----------------
  const byStatus: Record<string, number> = {};
  const byKind: Record<string, number> = {};
  let outcomes = 0;
  let noOutcome = 0;
  for (const info of byKey.values()) {
    count(byKind, info.reg.plan.kind);
    if (!info.id) {
      v('registration', `never registered: ${info.reg.error ?? 'no answer'}`, info);
      continue;
    }
    const view = info.view;
    if (!view) {
      v('lost watch', `registered (${info.id}) but the API does not list it`, info);
      continue;
    }
    count(byStatus, view.status);
    if ('outcome' in view) outcomes++;
    else noOutcome++;
    if (!FINAL.has(view.status)) {
      v('stuck', `still ${view.status} after quiescence${view.last_delivery ? ` (last delivery ${view.last_delivery.status}, ${view.last_delivery.attempts} attempts)` : ''}`, info);
      continue;
    }
    const plan = info.reg.plan;
    const events = plan.events ?? DEFAULT_EVENTS;
    const terminal = info.receipts.filter((r) => r.answer !== 'unknown-path' && TERMINAL_TYPES.has(typeOf(r)));
    const acked = terminal.filter((r) => r.answer === 'ack');
    if (view.status === 'cancelled') {
      if (!info.cancelled) v('cancelled', 'cancelled, but the soak never cancelled it', info);
      // by the time the gateway signed it (the webhook-timestamp), not when our receiver read it
      const late = acked.filter((r) => r.ts * 1000 > (info.cancelAt ?? 0) + cfg.cancelSlackMs);
      if (late.length) v('cancelled', `webhook sent ${rel(late[0]!.ts * 1000)}, ${((late[0]!.ts * 1000 - info.cancelAt!) / 1000).toFixed(1)} s after the cancel`, info);
      continue;
    }
    if (info.cancelled === 'yes') v('cancelled', `DELETE answered status cancelled, but it ended ${view.status}`, info);
    const exp = expectedEvent(info.reg);
    const sentType = terminal.length ? typeOf(terminal[0]!) : undefined;
    if (view.status === 'delivered') {
      // nothing acknowledged is fine only when the event that ended it was not subscribed to
      // (a watch not subscribed to watch.failed may also have given up silently)
      if (acked.length === 0 && (terminal.length > 0 || (events.includes(exp.type) && events.includes('watch.failed')))) {
        v('delivered', `status delivered, but no receiver acknowledged its ${exp.type} webhook (${terminal.length} request(s) got ${[...new Set(terminal.map((r) => r.answer))].join(',') || 'nothing'})`, info);
      }
    } else if (view.status === 'undeliverable') {
      const failures = terminal.filter((r) => r.answer !== 'ack');
      const gone = terminal.some((r) => r.answer === '410');
      if (!gone && !info.redelivered && (acked.length > 0 || failures.length < cfg.attemptBudget)) {
        v('undeliverable', `undeliverable without a 410 and without ${cfg.attemptBudget} failed attempts (${failures.length} failed, ${acked.length} acknowledged: ${terminal.map((r) => `${rel(r.at)} ${r.answer}`).join('; ')})`, info);
      }
      if (terminal.length === 0) v('undeliverable', 'undeliverable, but no attempt ever reached its receiver', info);
    }
    // the API's record of the outcome agrees with what was sent
    if ('outcome' in view && view.outcome !== null && view.outcome !== undefined) {
      const want = sentType ?? (events.includes(exp.type) ? undefined : exp.type);
      if (want && view.outcome !== want && !(view.outcome === 'watch.failed' && !sentType)) v('api outcome', `outcome ${view.outcome}, but the webhook sent was ${want}`, info);
    } else if ('outcome' in view && sentType) {
      v('api outcome', `outcome null on a ${view.status} watch that was sent ${sentType}`, info);
    }
    if (sentType && sentType !== 'watch.failed' && h.sim.terminal[plan.taskId] !== undefined && !isDeepStrictEqual(view.task, JSON.parse(h.sim.terminal[plan.taskId]!))) {
      v('api task', `the API's task snapshot ≠ upstream's final answer: ${JSON.stringify(view.task).slice(0, 200)}`, info);
    }
    if (terminal.length && view.last_delivery && !terminalIds.get(info)?.has(view.last_delivery.webhook_id)) {
      v('api last_delivery', `last_delivery ${view.last_delivery.webhook_id} is not the webhook sent (${[...(terminalIds.get(info) ?? [])].join(',')})`, info);
    }
    // every attempt the API lists with an HTTP status was answered so by the receiver
    const recorded = h.attempts.get(info.id) ?? [];
    const answered = new Map<string, number>();
    for (const r of info.receipts) {
      const s = ANSWER_STATUS[r.answer];
      if (s !== null && s !== undefined) count(answered as unknown as Record<string, number>, `${r.id} ${s}`);
    }
    const claimed = new Map<string, number>();
    for (const a of recorded) if (a.response_status !== null) count(claimed as unknown as Record<string, number>, `${a.webhook_id} ${a.response_status}`);
    for (const [k, n] of Object.entries(claimed as unknown as Record<string, number>)) {
      const got = (answered as unknown as Record<string, number>)[k] ?? 0;
      if (n > got) v('api attempts', `the API lists ${n} attempt(s) of ${k.replace(' ', ' answered HTTP ')}, the receiver answered so ${got} time(s)`, info);
    }
  }

  // --- polls: never closer than the contract's minimum, outside takeovers ------------------------
  const regTimes = new Map<string, Array<[number, number]>>();
  for (const r of h.registered) {
    const k = `${r.plan.tenant}\n${r.plan.taskId}`;
    regTimes.set(k, [...(regTimes.get(k) ?? []), [r.sentAt, r.doneAt || Infinity]]);
  }
  let tooClose = 0;
  let tooCloseInTakeover = 0;
  const perTask: number[] = [];
  for (const [k, list] of polls) {
    list.sort((a, b) => a[0] - b[0]);
    perTask.push(list.length);
    const regs = regTimes.get(k) ?? [];
    for (let i = 1; i < list.length; i++) {
      const [a] = list[i - 1]!;
      const [b] = list[i]!;
      if (b - a >= cfg.minPollGapMs - CLOCK_SLACK_MS) continue;
      if (regs.some(([from, to]) => from <= b && to >= a - 500)) continue; // a new watch of the task: its first poll
      if (inTakeoverWindow(h, a, cfg) || inTakeoverWindow(h, b, cfg)) {
        tooCloseInTakeover++;
        continue;
      }
      tooClose++;
      if (tooClose <= 20) {
        const [tenant, task] = k.split('\n');
        const info = [...byKey.values()].find((x) => String(x.reg.plan.tenant) === tenant && x.reg.plan.taskId === task);
        v('poll interval', `task ${task} (tenant ${tenant}) polled at ${rel(a)} and ${rel(b)}: ${b - a} ms apart (minimum ${cfg.minPollGapMs} ms), no takeover then`, info);
      }
    }
  }
  if (tooClose > 20) v('poll interval', `${tooClose - 20} more pairs of polls closer than ${cfg.minPollGapMs} ms`);

  // --- lag of healthy receivers: upstream's first terminal answer → the first 2xx --------------
  const lag = { healthy: [] as number[], healthyFault: [] as number[], shared: [] as number[], sharedFault: [] as number[] };
  const anyFault = h.faults.filter((f) => !f.skipped && f.kind !== 'cancel' && f.kind !== 'redeliver');
  for (const info of byKey.values()) {
    const ack = info.receipts.filter((r) => r.answer === 'ack' && TERMINAL_TYPES.has(typeOf(r)) && typeOf(r) !== 'watch.failed').sort((a, b) => a.at - b.at)[0];
    if (!ack || !info.reg.url) continue;
    const urlPlan = /\/t(\d+)\/u(\d+)$/.exec(info.reg.url);
    if (!urlPlan) continue;
    const u = Number(urlPlan[2]);
    const healthy = u === 0 || u === 1;
    const sharedHealthy = u === 4;
    if (!healthy && !sharedHealthy) continue;
    const list = polls.get(`${info.reg.plan.tenant}\n${info.reg.plan.taskId}`) ?? [];
    const hash = terminalHashes.get(info.reg.plan.taskId);
    const first = list.find((p) => p[2] === hash)?.[0];
    if (first === undefined) continue;
    const ms = ack.at - first;
    const during = within(first, anyFault, 0, 0);
    if (healthy) (during ? lag.healthyFault : lag.healthy).push(ms);
    else (during ? lag.sharedFault : lag.shared).push(ms);
  }

  const faultsByKind: Record<string, number> = {};
  const skipped: Record<string, number> = {};
  let crashMs = 0;
  for (const f of h.faults) {
    if (f.skipped) count(skipped, `${f.kind}: ${f.skipped}`);
    else {
      count(faultsByKind, f.kind);
      if (f.crash) crashMs += f.end - f.start;
    }
  }
  const figures: Figures = {
    watches: { planned: h.registered.length, registered: [...byKey.values()].filter((i) => i.id).length, byStatus, byKind },
    faults: { total: Object.values(faultsByKind).reduce((a, b) => a + b, 0), byKind: faultsByKind, skipped, crashWindowsMs: crashMs },
    webhooks: { requests: h.receipts.length, acked: byAnswer.ack ?? 0, byAnswer, byType },
    duplicates: dups,
    receiverReadLagMs: dist(h.receipts.map((r) => r.at - r.ts * 1000)),
    receiverAnswerMs: dist(h.receipts.flatMap((r) => (r.answer === 'ack' && r.answeredAt !== undefined ? [r.answeredAt - r.at] : []))),
    polls: { total: h.sim.polls.length, tasks: polls.size, perTask: dist(perTask), tooClose, tooCloseInTakeover },
    lag: {
      healthy: { ...dist([...lag.healthy, ...lag.healthyFault]), duringFaults: dist(lag.healthyFault) },
      sharedHost: { ...dist([...lag.shared, ...lag.sharedFault]), duringFaults: dist(lag.sharedFault) },
    },
    metadataVerbatim: { byteIdentical: metaByte, of: metaOf },
    outcomeField: outcomes && noOutcome ? 'mixed' : outcomes ? 'present' : 'absent',
    quiescenceMs: h.quietAt === undefined ? null : h.quietAt - h.healAt,
  };
  return { violations, figures };
}

const typeCache = new WeakMap<Receipt, string>();
function typeOf(r: Receipt): string {
  let t = typeCache.get(r);
  if (t === undefined) {
    try {
      t = String(JSON.parse(r.body).type);
    } catch {
      t = '';
    }
    typeCache.set(r, t);
  }
  return t;
}
