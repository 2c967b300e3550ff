// One JSON logger for the process (pino). Secrets are never passed to it.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'taskhook' }, timestamp: pino.stdTimeFunctions.isoTime });
}
