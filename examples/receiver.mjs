#!/usr/bin/env node
// A webhook receiver for taskhook with no dependency at all (Node >= 20): verifies each
// webhook's Standard Webhooks signature with node:crypto, refuses stale or forged ones,
// prints the event and answers 204. Copy it into your project as a starting point.
//
//   TASKHOOK_SIGNING_SECRET=whsec_… node examples/receiver.mjs [--port 3000]
//
// (taskhook/verify in the `taskhook` package, or the `standardwebhooks` package, does the
// same check; this file shows all of it.)
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

const secret = process.env.TASKHOOK_SIGNING_SECRET ?? '';
const portArg = process.argv.indexOf('--port');
const port = Number(portArg > 0 ? process.argv[portArg + 1] : (process.env.RECEIVER_PORT ?? 3000));
if (!/^whsec_[A-Za-z0-9+/]+={0,2}$/.test(secret)) {
  console.error('receiver: set TASKHOOK_SIGNING_SECRET to the gateway\'s whsec_… signing secret');
  process.exit(2);
}
const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
const TOLERANCE_S = 300;

/** The event, or why the webhook is refused. */
function verify(body, headers) {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (!id || !timestamp || !signatures) return { error: 'missing webhook-id, webhook-timestamp or webhook-signature' };
  if (!/^\d+$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > TOLERANCE_S) return { error: 'stale or bad webhook-timestamp' };
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest();
  // several signatures (space-separated) during a secret rotation: one match is enough
  const ok = signatures.split(' ').some((s) => {
    const given = Buffer.from(s.startsWith('v1,') ? s.slice(3) : '', 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!ok) return { error: 'no signature matches' };
  return { event: JSON.parse(body.toString('utf8')) };
}

http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const { event, error } = verify(Buffer.concat(chunks), req.headers);
      const id = req.headers['webhook-id'] ?? '-';
      if (error) {
        console.log(`✗ ${req.method} ${req.url} ${id}: refused (${error})`);
        res.writeHead(400).end();
        return;
      }
      const data = event.data ?? {};
      const result = data.audioUrl ?? data.imageUrl ?? data.videoUrl ?? (data.error ? `${data.error.code}: ${data.error.message}` : data.status);
      console.log(`✓ ${event.type} ${id} watch ${event.watch_id} task ${data.task_id}: ${result} metadata ${JSON.stringify(event.metadata)}`);
      res.writeHead(204).end(); // any 2xx acknowledges; dedupe on webhook-id, it repeats on retries
    });
  })
  .listen(port, '127.0.0.1', () => console.log(`receiver: listening on http://127.0.0.1:${port}/ (verifying with TASKHOOK_SIGNING_SECRET)`));
