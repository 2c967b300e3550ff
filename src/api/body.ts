// Request bodies: JSON only, capped before parsing, always an object.
import type { Context } from 'hono';
import type { IncomingMessage } from 'node:http';
import { BadRequest, ClientGone, TooLarge, UnsupportedMediaType } from './errors.js';

export const MAX_BODY_BYTES = 64 * 1024;

export async function readJsonObject(c: Context, limit = MAX_BODY_BYTES): Promise<Record<string, unknown>> {
  return (await readJsonBody(c, limit)).value;
}

/** The body parsed, and its exact text (for checks JSON.parse can't make: src/api/json-scan.ts). */
export async function readJsonBody(c: Context, limit = MAX_BODY_BYTES): Promise<{ value: Record<string, unknown>; text: string }> {
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
  return { value: parsed as Record<string, unknown>, text };
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
      // (an error is made only if the body did not arrive: 'close' follows every request's 'end',
      // and a ClientGone built there each time — a stack trace per request — was most of
      // the cost of an ApiError in a registration profile)
      let ended = false;
      const gone = () => {
        if (!ended) reject(ClientGone());
      };
      incoming.on('data', onData);
      incoming.once('end', () => {
        ended = true;
        resolve();
      });
      incoming.once('error', gone);
      incoming.once('close', gone);
    });
  } else {
    const raw = c.req.raw.body;
    if (!raw) throw BadRequest('the request has no body');
    const reader = raw.getReader();
    for (;;) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch {
        throw ClientGone(); // the request stream broke: the client went away
      }
      const { done, value } = next;
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge(limit);
      }
      chunks.push(value);
    }
  }
  // Strict: invalid UTF-8 is refused, not silently turned into U+FFFD (which would then be
  // stored and echoed as if the client had sent it).
  try {
    return STRICT_UTF8.decode(Buffer.concat(chunks));
  } catch {
    throw BadRequest('the body is not valid UTF-8');
  }
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }) // ignoreBOM: a BOM is kept, and JSON.parse refuses it as before;
