// `taskhook endpoints`: the human-readable table of GET /v1/endpoints (the command itself
// is the usual client call; test/cli.test.ts covers the shared plumbing).
import { describe, expect, it } from 'vitest';
import { endpointTable } from '../src/cli/format.js';
import { endpoints } from '../src/api/openapi/examples.js';

describe('endpointTable', () => {
  it('one line per URL: state, pending, the next try (the circuit’s end while open), the last error only while not healthy', () => {
    const lines = endpointTable(endpoints.data).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^STATE\s+PENDING\s+NEXT TRY\s+URL\s+LAST ERROR$/);
    expect(lines[1]).toMatch(/^circuit open\s+12\s+2026-11-28T12:31:00.000Z\s+https:\/\/hooks.example.com\/zap\/123\s+timed out after 15000 ms$/);
    expect(lines[2]).toMatch(/^healthy\s+0\s+-\s+https:\/\/example.com\/webhooks\/taskhook\s+-$/);
  });
});
