// Fault injection for the crash tests: TASKHOOK_FAULTS="point=kill@N,point2=stop@M"
// makes this process SIGKILL (or SIGSTOP) itself the Nth time it reaches `point`.
// Unset in production; the points mark the windows the at-least-once promise must survive.
export const FAULT_POINTS = [
  'poll.after-claim', // lease taken, upstream not asked yet
  'poll.before-commit', // upstream answered, nothing recorded yet
  'delivery.before-send', // lease taken, receiver not called yet
  'delivery.after-send', // receiver answered 2xx, delivery not marked yet
  'submit.after-upstream', // upstream accepted a submit (POST /v1/tasks), nothing recorded yet
] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];
export type Fault = (point: FaultPoint) => void;

export const noFaults: Fault = () => {};

/** "point=kill@N,…" → a Fault; throws with a one-line reason on a bad spec. */
export function parseFaults(spec: string): Fault {
  if (!spec.trim()) return noFaults;
  const plan = new Map<string, { action: 'kill' | 'stop'; at: number; hits: number }>();
  for (const part of spec.split(',')) {
    const m = /^([a-z.-]+)=(kill|stop)@(\d+)$/.exec(part.trim());
    if (!m || !(FAULT_POINTS as readonly string[]).includes(m[1]!)) {
      throw new Error(`expected point=kill@N or point=stop@N with point one of ${FAULT_POINTS.join(', ')}`);
    }
    plan.set(m[1]!, { action: m[2] as 'kill' | 'stop', at: Number(m[3]), hits: 0 });
  }
  return (point) => {
    const p = plan.get(point);
    if (!p) return;
    p.hits++;
    if (p.hits !== p.at) return;
    process.stderr.write(`taskhook: fault injection: ${p.action} at ${point} #${p.hits}\n`);
    process.kill(process.pid, p.action === 'kill' ? 'SIGKILL' : 'SIGSTOP');
  };
}
