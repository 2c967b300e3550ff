// Webhook delivery through an operator's forward proxy (TASKHOOK_CALLBACK_PROXY),
// without giving up the callback address policy.
//
// Through a proxy we never dial the receiver: the proxy resolves the name and
// connects, so the pinned lookup of pinned-agent.ts has nothing to pin. Instead,
// before every request, we resolve the callback host ourselves and refuse unless
// EVERY address is allowed (the proxy may pick any of them), the same rule as at
// registration. The proxy resolves again after us: a name that rebinds in that
// moment is not caught here — the README's Security section says so; operators
// who need more filter destinations at the proxy too.
//
// The tunnel is always CONNECT (undici's ProxyAgent default, also for http://
// callbacks): the proxy's credentials go in the CONNECT request to the proxy and
// nowhere else; the receiver only sees bytes written inside the tunnel.
import { isIP } from 'node:net';
import { ProxyAgent, type Dispatcher } from 'undici';
import { systemLookupAll, unbracketHost, type AddressPolicy, type LookupAll } from './address-policy.js';
import { CallbackAddressForbiddenError, createCallbackAgent, type OutboundKind } from './pinned-agent.js';

/** Resolves `hostname` (or takes the IP literal) and throws unless every address is allowed. */
export async function vetCallbackHost(
  policy: AddressPolicy,
  lookupAll: LookupAll,
  hostname: string,
  timeoutMs = 10_000,
  kind: OutboundKind = 'callback',
): Promise<void> {
  const host = unbracketHost(hostname);
  if (isIP(host) !== 0) {
    if (!policy.isAllowedIp(host)) throw new CallbackAddressForbiddenError(host, [host], kind);
    return;
  }
  const answers = await withTimeout(lookupAll(host), timeoutMs, `resolving ${host} timed out`);
  const refused = answers.filter((a) => !policy.isAllowedIp(a.address, host)).map((a) => a.address);
  if (answers.length === 0 || refused.length > 0) throw new CallbackAddressForbiddenError(host, refused, kind);
}

/**
 * Wraps a dispatcher whose connections we don't dial ourselves (a forward proxy
 * does): every request's host is vetted first, unless `skip` says the origin is trusted.
 */
export function vettingDispatcher(
  inner: Dispatcher,
  o: { policy: AddressPolicy; lookupAll: LookupAll; timeoutMs: number; kind: OutboundKind; skip?: (origin: URL) => boolean },
): Dispatcher {
  return inner.compose((dispatch) => (dispatchOpts, handler) => {
    let origin: URL;
    try {
      origin = new URL(String(dispatchOpts.origin));
    } catch (err) {
      handler.onResponseError?.(null as never, err as Error);
      return true;
    }
    if (o.skip?.(origin)) return dispatch(dispatchOpts, handler);
    vetCallbackHost(o.policy, o.lookupAll, origin.hostname, o.timeoutMs, o.kind).then(
      () => dispatch(dispatchOpts, handler),
      // Resolver errors (ENOTFOUND, EAI_AGAIN…) pass through as they are: retryable, unlike a refusal.
      (err: unknown) => handler.onResponseError?.(null as never, err instanceof Error ? err : new Error(String(err))),
    );
    return true;
  });
}

export interface CallbackDispatcherOptions {
  policy: AddressPolicy;
  lookupAll?: LookupAll;
  connectTimeoutMs: number;
  /** http(s)://[user:pass@]host:port; unset → direct, pinned connections */
  proxyUrl?: string | undefined;
}

/** The dispatcher every webhook goes through: pinned direct connections, or vetted requests via the proxy. */
export function createCallbackDispatcher(opts: CallbackDispatcherOptions): Dispatcher {
  if (!opts.proxyUrl) return createCallbackAgent(opts);
  const lookupAll = opts.lookupAll ?? systemLookupAll;
  const proxy = new ProxyAgent({
    uri: opts.proxyUrl,
    // CONNECT for http:// callbacks too: credentials stay in the proxy hop (see above).
    proxyTunnel: true,
    proxyTls: { timeout: opts.connectTimeoutMs },
  });
  return vettingDispatcher(proxy, { policy: opts.policy, lookupAll, timeoutMs: opts.connectTimeoutMs, kind: 'callback' });
}

// getaddrinfo can't be cancelled; we stop waiting, as a connect timeout would.
function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(message), { code: 'EAI_AGAIN' })), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
