// Request bodies: JSON only, capped before parsing, always an object.
import type { Context } from 'hono';
import type { IncomingMessage } from 'node:http';
import { BadRequest, TooLarge, UnsupportedMediaType } from './errors.js';

export const MAX_BODY_BYTES = 64 * 1024;

export async function readJsonObject(c: Context, limit = MAX_BODY_BYTES): Promise<Record<string, unknown>> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i.test(type)) throw UnsupportedMediaType();
  const declared = Number(c.req.header('content-length') ?? '0');
  if (declared > limit) throw tooLarge(limit);
  const text = await readCapped(c, limit);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw BadRequest(`the body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw BadRequest('the body must be a JSON object');
  return parsed as Record<string, unknown>;
}

const tooLarge = (limit: number) => TooLarge(`the body must be at most ${limit} bytes`);

/**
 * The body as text, read with a running cap: a chunked body can't make us buffer more
 * than the limit. Under @hono/node-server it reads the Node request stream directly:
 * going through `c.req.raw.body` builds a web Request, a ReadableStream and an
 * AbortSignal per request, which was a fifth of the CPU of a registration.
 */
async function readCapped(c: Context, limit: number): Promise<string> {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (incoming && typeof incoming.on === 'function' && !incoming.readableEnded) {
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        size += chunk.byteLength;
        if (size > limit) {
          incoming.off('data', onData);
          incoming.resume(); // discard the rest (destroying would cut the socket the 413 goes out on)
          reject(tooLarge(limit));
          return;
        }
        chunks.push(chunk);
      };
      incoming.on('data', onData);
      incoming.once('end', resolve);
      incoming.once('error', reject);
      incoming.once('close', () => reject(BadRequest('the request body was cut short')));
    });
  } else {
    const raw = c.req.raw.body;
    if (!raw) throw BadRequest('the request has no body');
    const reader = raw.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge(limit);
      }
      chunks.push(value);
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}
