// `taskhook watch … --wait`: follows a watch until it ends with a live status line
// (rewritten in place on a terminal, one line per change otherwise). Exit 0 when its
// webhook was delivered; 1 when undeliverable, cancelled or out of time.
import { CliError } from './errors.js';
import { call, type Target } from './http.js';
import { endMark, statusLine, TERMINAL_WATCH_STATUSES, type Watch } from './format.js';

export interface WaitOptions {
  intervalMs: number;
  /** give up after this long; undefined = until the watch ends */
  timeoutMs: number | undefined;
  json: boolean;
  out: NodeJS.WriteStream;
  now?: () => number;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/** consecutive failed reads tolerated (a gateway restarting, say) before giving up */
const MAX_READ_FAILURES = 20;

export async function waitForWatch(target: Target, first: Watch, o: WaitOptions): Promise<number> {
  const now = o.now ?? Date.now;
  const tty = o.out.isTTY === true && !o.json;
  const started = now();
  let w = first;
  let shown = '';
  let tick = 0;
  let failures = 0;
  const show = (line: string, final = false) => {
    if (o.json) return;
    if (tty) o.out.write(`\r\x1b[2K${final ? '' : `${SPINNER[tick++ % SPINNER.length]} `}${line}${final ? '\n' : ''}`);
    else if (line !== shown) o.out.write(`${line}\n`);
    shown = line;
  };
  for (;;) {
    if (TERMINAL_WATCH_STATUSES.has(w.status)) {
      show(`${endMark(w)} ${statusLine(w)}`, true);
      if (o.json) o.out.write(`${JSON.stringify(w, null, 2)}\n`);
      if (w.status === 'delivered') return 0;
      const why = w.last_delivery?.last_response_status ? `; the receiver last answered HTTP ${w.last_delivery.last_response_status}` : '';
      throw new CliError(`watch ${w.id} ended ${w.status}${why}`);
    }
    show(statusLine(w));
    if (o.timeoutMs !== undefined && now() - started >= o.timeoutMs) {
      if (tty) o.out.write('\n');
      throw new CliError(`watch ${w.id} is still ${w.status} after ${Math.round(o.timeoutMs / 1000)} s`);
    }
    await new Promise((r) => setTimeout(r, o.intervalMs));
    try {
      w = (await call<Watch>(target, 'GET', `/v1/watches/${encodeURIComponent(w.id)}`)).json;
      failures = 0;
    } catch (err) {
      // an error answer (401, 404) won't get better; an unreachable gateway might
      if (!(err instanceof CliError) || !/^cannot reach/.test(err.message) || ++failures > MAX_READ_FAILURES) {
        if (tty) o.out.write('\n');
        throw err;
      }
    }
  }
}
