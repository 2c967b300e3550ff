// Durations as configuration writes them ("5s", "2m", "250ms"). Its own module so that
// modules config.ts imports (src/api/auth-throttle.ts) can use it without a cycle.
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "5s" / "2m" / "1h" / "250ms" → milliseconds, or undefined if it is not one. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}
