// The system browser the *.browser tests drive: Debian's Chromium through
// playwright-core (never a downloaded build). A fresh machine has none, so:
// - without it the browser tests skip, and the run prints ONE line saying so and how
//   to enable them (global-setup.ts calls browserSkipNotice);
// - under CI=true a missing browser is a failure: the tests run and say why they can't.
// TASKHOOK_TEST_CHROMIUM overrides the path (`TASKHOOK_TEST_CHROMIUM=/nonexistent npm test`
// is a fresh machine, as far as the browser goes).
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';

export const CHROMIUM = process.env.TASKHOOK_TEST_CHROMIUM || '/usr/bin/chromium';
export const HAS_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = process.env.CI === 'true';

/** describe.skipIf(SKIP_BROWSER_TESTS): skipped only off CI. */
export const SKIP_BROWSER_TESTS = !HAS_CHROMIUM && !IN_CI;

export const BROWSER_MISSING = `no Chromium at ${CHROMIUM}: install it with \`apt-get install chromium\` (Debian) to run the browser tests`;

/** The one line a run without a browser prints (undefined when there is nothing to say). */
export function browserSkipNotice(): string | undefined {
  if (HAS_CHROMIUM || IN_CI) return undefined;
  return `\n⚠ browser tests SKIPPED (test/*.browser.test.ts): ${BROWSER_MISSING}; under CI=true they fail instead.\n`;
}

export async function launchChromium(): Promise<Browser> {
  if (!HAS_CHROMIUM) throw new Error(`CI=true: ${BROWSER_MISSING}`);
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/**
 * One Chromium for the enclosing describe (launched in beforeAll, closed in afterAll), with
 * `shots` created for its screenshots. → the browser, once launched.
 */
export function useChromium(shots: string): () => Browser {
  let browser: Browser | undefined;
  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });
  return () => browser!;
}
