import os from 'node:os';

/**
 * The soak's receivers and its upstream stand for other hosts. On one shared box they
 * compete for the same two cores as the gateways and Postgres, and a starved receiver
 * reads requests tens of seconds late — the gateway then records a timeout for an answer
 * that is merely unread, and the run measures the soak, not the gateway. Where allowed
 * (root, as in CI), run them at a higher priority than everything under test; elsewhere
 * say once that the figures may show it.
 */
export function raisePriority(log?: (line: string) => void): void {
  try {
    os.setPriority(0, -10);
  } catch {
    log?.('cannot raise the priority of the soak\'s receivers and upstream (not root): on a loaded box they may read requests late');
  }
}

/** What the soak starts to be tested (gateways, Postgres) runs at the normal priority. */
export function normalPriority(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    os.setPriority(pid, 0);
  } catch {
    // not raised in the first place, or already gone
  }
}
