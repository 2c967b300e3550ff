// `taskhook listen --forward-to <url>`: reads the tenant's events from GET /v1/events
// (Server-Sent Events) and re-POSTs each, byte for byte with the gateway's Standard
// Webhooks headers, to a local URL, so a receiver without a public address can be
// developed against real webhooks. Reconnects with backoff, resuming after the newest
// event it has handled (Last-Event-ID); a local receiver failing is printed, not fatal.
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { VERSION } from '../version.js';
import { CliError, usageError } from './errors.js';
import { baseUrl, bearer, networkReason, problemDetail, type Target } from './http.js';

export interface ListenOptions {
  target: Target;
  /** re-POST each event here; unset = print the events only */
  forwardTo: string | undefined;
  /** resume after this webhook id (or time); unset = events from now on */
  since: string | undefined;
  json: boolean;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  signal: AbortSignal;
  forwardTimeoutMs?: number;
}

export interface StreamedEvent {
  webhook_id: string;
  type: string;
  watch_id?: string;
  headers: Record<string, string>;
  body: string;
}

const MAX_BACKOFF_MS = 10_000;

export function forwardUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usageError(`--forward-to must be an http(s) URL, like http://localhost:3000/hook (got ${JSON.stringify(url)})`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw usageError(`--forward-to must be an http(s) URL (got ${JSON.stringify(url)})`);
  return u.href;
}

export async function listen(o: ListenOptions): Promise<number> {
  const base = baseUrl(o.target.url);
  const auth = bearer(o.target);
  const forwardTo = o.forwardTo === undefined ? undefined : forwardUrl(o.forwardTo);
  const say = (line: string) => o.err.write(`taskhook: ${line}\n`);
  let last = o.since;
  let backoff = 500;
  let connectedOnce = false;

  while (!o.signal.aborted) {
    try {
      const headers: Record<string, string> = { authorization: auth, accept: 'text/event-stream' };
      if (last) headers['last-event-id'] = last;
      const res = await fetch(`${base}/v1/events`, { headers, signal: o.signal, redirect: 'manual' });
      if (res.status === 401 || res.status === 403 || res.status === 404 || res.status === 400) {
        const detail = problemDetail(res.status, await res.text());
        throw new CliError(res.status === 404 ? `this gateway has no event stream (GET /v1/events: ${detail})` : detail);
      }
      if (!res.ok || !res.body) {
        say(`event stream refused: ${problemDetail(res.status, await res.text())}; retrying in ${Math.round(backoff / 100) / 10} s`);
      } else {
        const queue: EventSourceMessage[] = [];
        let ready = false;
        const parser = createParser({
          onEvent: (e) => queue.push(e),
          onComment: (c) => {
            if (c.trim() !== 'ready' || ready) return;
            ready = true;
            backoff = 500;
            const to = forwardTo ? `, forwarding to ${forwardTo}` : '';
            if (!connectedOnce) say(`listening for events on ${base}${to} (Ctrl-C to stop)`);
            else say(`reconnected${last ? `, resuming after ${last}` : ''}`);
            connectedOnce = true;
          },
        });
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          parser.feed(decoder.decode(chunk, { stream: true }));
          while (queue.length > 0) {
            const e = queue.shift()!;
            await handle(e, o, forwardTo);
            // The newest id, not the last: a late-committed event can arrive after a newer one.
            if (e.id && (!last || e.id > last)) last = e.id;
          }
        }
        if (o.signal.aborted) break;
        say('the gateway closed the event stream; reconnecting');
      }
    } catch (err) {
      if (o.signal.aborted) break;
      if (err instanceof CliError) throw err;
      say(`lost the event stream (${networkReason(err)}); reconnecting in ${Math.round(backoff / 100) / 10} s`);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, backoff);
      o.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }
  return 0;
}

async function handle(e: EventSourceMessage, o: ListenOptions, forwardTo: string | undefined): Promise<void> {
  let ev: StreamedEvent;
  try {
    ev = JSON.parse(e.data) as StreamedEvent;
  } catch {
    o.err.write(`taskhook: skipped an event that is not JSON (id ${e.id ?? '?'})\n`);
    return;
  }
  if (!forwardTo) {
    o.out.write(o.json ? `${JSON.stringify(ev)}\n` : `• ${ev.type} ${ev.webhook_id} ${ev.body}\n`);
    return;
  }
  const started = performance.now();
  let status: number | undefined;
  let error: string | undefined;
  try {
    const res = await fetch(forwardTo, {
      method: 'POST',
      headers: { ...ev.headers, 'content-type': 'application/json', 'user-agent': `taskhook-cli/${VERSION}` },
      body: ev.body,
      redirect: 'manual',
      signal: AbortSignal.any([o.signal, AbortSignal.timeout(o.forwardTimeoutMs ?? 30_000)]),
    });
    await res.arrayBuffer().catch(() => undefined);
    status = res.status;
  } catch (err) {
    error = networkReason(err);
  }
  const ms = Math.round(performance.now() - started);
  if (o.json) {
    o.out.write(`${JSON.stringify({ webhook_id: ev.webhook_id, type: ev.type, status: status ?? null, duration_ms: ms, error: error ?? null })}\n`);
  } else if (status !== undefined) {
    o.out.write(`${status >= 200 && status < 300 ? '→' : '✗'} ${status} ${ev.type} ${ev.webhook_id} (${ms} ms)\n`);
  } else {
    o.out.write(`✗ ${ev.type} ${ev.webhook_id}: ${forwardTo} ${error} (${ms} ms)\n`);
  }
}
