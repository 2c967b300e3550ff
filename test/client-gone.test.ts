// Which errors are "the client went away" (400 client-closed, logged at debug) and which are
// not. The soak found registrations during a Postgres restart answered 400 and lost: the
// database driver's connection reset carries ECONNRESET, like a client's.
import { describe, expect, it } from 'vitest';
import { ClientGone, isClientGone, ApiError } from '../src/api/errors.js';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('isClientGone', () => {
  it.each([
    ['the body readers\' ClientGone', ClientGone(), true],
    ['another ApiError', new ApiError(400, 'invalid', 'Invalid', 'x'), false],
    ['postgres.js: read ECONNRESET (a database restart)', withCode('read ECONNRESET', 'ECONNRESET'), false],
    ['postgres.js: write CONNECTION_CLOSED', withCode('write CONNECTION_CLOSED 127.0.0.1:5432', 'CONNECTION_CLOSED'), false],
    ['a bare "aborted" error from elsewhere', new Error('aborted'), false],
    ['undefined', undefined, false],
  ])('%s → %s', (_name, err, want) => {
    expect(isClientGone(err)).toBe(want);
  });
});
