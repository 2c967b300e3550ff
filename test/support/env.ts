// The environment a test gateway runs with: loopback callbacks allowed, fast polls
// and retries, fixed credentials so receivers can verify.
export const TEST_API_KEY = 'thk_test_key_0123456789abcdef';
export const TEST_SIGNING_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
export const TEST_UPSTREAM_KEY = 'sk_test';

export function testEnv(databaseUrl: string, upstreamUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    PORT: '0',
    HOST: '127.0.0.1',
    UPSTREAM_BASE_URL: upstreamUrl,
    UPSTREAM_API_KEY: TEST_UPSTREAM_KEY,
    TASKHOOK_API_KEY: TEST_API_KEY,
    TASKHOOK_SIGNING_SECRET: TEST_SIGNING_SECRET,
    TASKHOOK_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
    TASKHOOK_ALLOW_PRIVATE_CALLBACKS: '127.0.0.0/8',
    // first poll after 100 ms, then every 150-300 ms
    TASKHOOK_POLL_SCALE: '0.05',
    TASKHOOK_RETRY_SCHEDULE: '100ms,200ms,300ms',
    TASKHOOK_DELIVERY_TIMEOUT_S: '2',
    TASKHOOK_NOT_FOUND_GRACE_S: '1',
    // Every test talks from 127.0.0.1, and many send wrong credentials on purpose: the
    // failed-auth throttle would turn them into 429s. test/auth-throttle.security.test.ts
    // runs with the default (10/1m).
    TASKHOOK_AUTH_THROTTLE: 'off',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...extra,
  };
}
