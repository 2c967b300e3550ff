// Found by the chaos soak (bench/README.md, "Soak"): after the default tenant's signing
// secret was rotated through the API, any gateway process (re)starting with
// TASKHOOK_SIGNING_SECRET set put the old secret back — every webhook from then on was
// signed only by the secret receivers had been told to drop. The environment's secret now
// applies only while the secret was never rotated, and then as a rotation.
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_API_KEY, TEST_SIGNING_SECRET } from './support/env.js';
import { registerMany, startFleet, type Fleet } from './support/fleet.js';

let f: Fleet | undefined;
afterEach(async () => {
  await f?.close();
  f = undefined;
});

const verifies = (secret: string, r: { body: string; headers: Record<string, unknown> }) => {
  try {
    new Webhook(secret).verify(r.body, r.headers as Record<string, string>);
    return true;
  } catch {
    return false;
  }
};

describe('a rotated signing secret across restarts', () => {
  it('survives a process restarting with the old TASKHOOK_SIGNING_SECRET: webhooks carry the new and the previous signature', async () => {
    f = await startFleet({ LOG_LEVEL: 'warn' });
    const first = await f.gateway();
    const res = await fetch(`${first.url}/v1/tenant/signing-secret/rotate`, { method: 'POST', headers: { authorization: `Bearer ${TEST_API_KEY}` } });
    expect(res.status).toBe(200);
    const { signing_secret: rotated } = (await res.json()) as { signing_secret: string };
    await first.kill('SIGKILL');

    const second = await f.gateway(); // the same environment, the pre-rotation secret in it
    await registerMany(f, [second], 3, 1);
    const hooks = await f.receiver.waitFor((all) => all.length >= 3);
    for (const h of hooks) {
      expect(verifies(rotated, h), 'signed by the rotated secret').toBe(true);
      expect(verifies(TEST_SIGNING_SECRET, h), 'and by the previous one, for the overlap').toBe(true);
    }
    expect(second.output()).toContain('keeping the rotated one');
  });

  it('a changed TASKHOOK_SIGNING_SECRET before any rotation is applied as a rotation: the old one keeps signing', async () => {
    f = await startFleet({ LOG_LEVEL: 'warn' });
    await (await f.gateway()).kill('SIGKILL'); // created the tenant with the test secret
    const next = 'whsec_bmV4dHNlY3JldG5leHRzZWNyZXRuZXh0c2VjcmV0';
    const gw = await f.gateway({ TASKHOOK_SIGNING_SECRET: next });
    await registerMany(f, [gw], 2, 1);
    const hooks = await f.receiver.waitFor((all) => all.length >= 2);
    for (const h of hooks) {
      expect(verifies(next, h)).toBe(true);
      expect(verifies(TEST_SIGNING_SECRET, h)).toBe(true);
    }
  });
});
