// Everything a soak run records, which the checker reads afterwards: what was
// registered, cancelled, redelivered and rotated through the API, the faults injected
// (with their real start and end), what every receiver got, the upstream's poll log and
// the API's final view of every watch with its delivery attempts.
import type { PlannedWatch } from './plan.js';
import type { Receipt } from './receivers.js';
import type { SimLog } from '../src/sim/admin.js';

export interface Registered {
  plan: PlannedWatch;
  /** the callback URL registered */
  url: string;
  sentAt: number;
  doneAt: number;
  /** the watch id; undefined if no registration attempt got an answer */
  id?: string;
  /** when the task was created upstream (tasks created after registering) */
  createdAt?: number;
  error?: string;
}

export interface Fault {
  kind: string;
  start: number;
  end: number;
  detail: string;
  /** a crash window: work may be half-done, a duplicate (same webhook-id) is allowed */
  crash: boolean;
  /** a process gave up or lost its leases: another may poll a task early once */
  takeover: boolean;
  /** not carried out, and why */
  skipped?: string;
}

export interface ApiAction {
  watchId: string;
  at: number;
  doneAt: number;
  /** the answer's HTTP status (0: no answer) and, for a cancel, the watch status it returned */
  http: number;
  status?: string;
}

export interface Rotation {
  tenant: number;
  sentAt: number;
  doneAt: number;
  /** index of the new secret in that tenant's secret list */
  secret: number;
}

export interface Attempt {
  webhook_id: string;
  event_type: string;
  attempted_at: string;
  response_status: number | null;
  duration_ms: number;
  error: string | null;
}

export interface WatchView {
  /** which tenant's listing it came from */
  tenant: number;
  id: string;
  task_id: string;
  callback_url: string;
  status: string;
  metadata: unknown;
  task: unknown;
  polls: number;
  outcome?: string | null;
  last_delivery: null | { webhook_id: string; status: string; attempts: number };
  [k: string]: unknown;
}

export interface History {
  seed: number;
  t0: number;
  /** registrations and faults over; every fault healed */
  healAt: number;
  /** every watch final (undefined: not within the quiescence bound) */
  quietAt?: number;
  registered: Registered[];
  faults: Fault[];
  cancels: ApiAction[];
  redeliveries: ApiAction[];
  rotations: Rotation[];
  /** rotations that got no answer: they may or may not have happened */
  lostRotations: Array<{ tenant: number; sentAt: number }>;
  /** per tenant, every signing secret issued, oldest first */
  secrets: Array<Array<{ secret: string; at: number }>>;
  /** per tenant, the upstream key it polls with */
  upstreamKeys: string[];
  receipts: Receipt[];
  sim: SimLog;
  /** the API's final view, by watch id */
  api: Map<string, WatchView>;
  attempts: Map<string, Attempt[]>;
}
