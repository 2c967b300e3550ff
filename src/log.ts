// One logger for the process (pino): JSON lines on stdout, or pino-pretty's readable
// lines when stdout is a terminal (a developer running `npm start`; never under a
// process manager, a container log driver or the tests, whose stdout is a pipe).
// Secrets are never passed to it; the redact paths are the second line of defence.
import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

const SECRET_KEYS = [
  'authorization',
  'cookie',
  'apiKey',
  'api_key',
  'upstreamApiKey',
  'upstream_api_key',
  'signingSecret',
  'signingSecrets',
  'signing_secret',
  'secret',
  'token',
  'adminToken',
  'metricsToken',
  'encryptionKey',
  'password',
];

/** Where a secret could sit in a log object: at the top, one level down, or among headers. */
export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
];

export interface LoggerOptions {
  /** write here instead of stdout (tests capture logs this way); always JSON */
  destination?: DestinationStream;
  /** human-readable lines; default: when stdout is a terminal and no destination is given */
  pretty?: boolean;
}

export function createLogger(level: string, opts: LoggerOptions = {}): Logger {
  const options = {
    level,
    base: { service: 'taskhook' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  const prettyOut = opts.pretty ?? (opts.destination === undefined && process.stdout.isTTY === true);
  if (prettyOut) return pino(options, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'service' }));
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/**
 * A warning for a failure that repeats every round while it lasts (a database outage fails
 * each round of a periodic job): logged at most once per `everyMs`, with how many were
 * folded into it, and the error's message without its stack — never a flood.
 */
export function repeatingWarn(log: Logger, msg: string, everyMs = 30_000, now: () => number = Date.now): (err: unknown) => void {
  let last = Number.NEGATIVE_INFINITY;
  let folded = 0;
  return (err) => {
    const t = now();
    if (t - last < everyMs) {
      folded++;
      return;
    }
    last = t;
    log.warn({ err: err instanceof Error ? err.message : String(err), folded }, msg);
    folded = 0;
  };
}
