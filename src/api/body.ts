// Request bodies: JSON only, capped before parsing, always an object.
import type { Context } from 'hono';
import { BadRequest, TooLarge, UnsupportedMediaType } from './errors.js';

export const MAX_BODY_BYTES = 64 * 1024;

export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i.test(type)) throw UnsupportedMediaType();
  const declared = Number(c.req.header('content-length') ?? '0');
  if (declared > MAX_BODY_BYTES) throw TooLarge(`the body must be at most ${MAX_BODY_BYTES} bytes`);
  const raw = c.req.raw.body;
  if (!raw) throw BadRequest('the request has no body');
  // Read with a running cap: a chunked body can't make us buffer more than the limit.
  const reader = raw.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      throw TooLarge(`the body must be at most ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(value);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw BadRequest(`the body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw BadRequest('the body must be a JSON object');
  return parsed as Record<string, unknown>;
}
