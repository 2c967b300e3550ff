// What a command failing looks like: one line `taskhook: <message>` on stderr and an
// exit code, 1 for a failure and 2 for a usage error (as commander's own are mapped).
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new CliError(message, 2);

/** Any error as the one line after `taskhook: `. */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
