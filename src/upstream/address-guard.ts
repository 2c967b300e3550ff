// Which upstream addresses a tenant may aim the gateway's polls at (issue 12: a tenant
// could point its upstream at 127.0.0.1 or 169.254.169.254 and have the gateway send its
// upstream key there, then read the outcome back as a port scanner).
//
// The same policy as callbacks (src/net/address-policy.ts), with its own operator
// allowlist (TASKHOOK_ALLOW_PRIVATE_UPSTREAMS): checked when a base URL is set
// (checkUpstreamBaseUrl, PATCH /v1/tenant and tenant creation) and again at connect time
// by the pinned agent the UpstreamClient dials through (src/upstream/client.ts). The
// deployment's own UPSTREAM_BASE_URL is the operator's choice, not a tenant's: its
// origin is trusted, and dialled with the system resolver.
import { checkOutboundUrl, systemLookupAll, unbracketHost, type AddressPolicy, type LookupAll, type UrlCheck } from '../net/address-policy.js';
import type { ConnectTarget } from '../net/pinned-agent.js';

export interface UpstreamAddressRules {
  /** built from TASKHOOK_ALLOW_PRIVATE_UPSTREAMS */
  policy: AddressPolicy;
  /** base URLs the operator configured (UPSTREAM_BASE_URL): their origins are not vetted */
  trustedBaseUrls: readonly string[];
  lookupAll?: LookupAll | undefined;
}

const DEFAULT_PORT: Record<string, string> = { 'http:': '80', 'https:': '443' };

/** "http:|host|port", the same for a URL and for what undici hands its connector. */
function originKey(protocol: string, hostname: string, port: string): string {
  const proto = protocol.endsWith(':') ? protocol.toLowerCase() : `${protocol.toLowerCase()}:`;
  const host = unbracketHost(hostname).toLowerCase().replace(/\.$/, '');
  return `${proto}|${host}|${port === '' ? (DEFAULT_PORT[proto] ?? '') : port}`;
}

/** A predicate over URLs and connect targets: is this the origin of a trusted base URL? */
export function trustedOrigins(rules: Pick<UpstreamAddressRules, 'trustedBaseUrls'>): (t: URL | ConnectTarget) => boolean {
  const keys = new Set<string>();
  for (const raw of rules.trustedBaseUrls) {
    if (!URL.canParse(raw)) continue;
    const u = new URL(raw);
    keys.add(originKey(u.protocol, u.hostname, u.port));
  }
  return (t) => keys.has(originKey(t.protocol, t.hostname, t.port));
}

/**
 * The check of a tenant-chosen `upstream_base_url` (PATCH /v1/tenant, POST /v1/admin/tenants):
 * refused (→ 422) unless every address its host resolves to is public, or allowed by
 * TASKHOOK_ALLOW_PRIVATE_UPSTREAMS, or it is the origin of the deployment's own
 * UPSTREAM_BASE_URL. The same check runs again at connect time; this one gives the
 * clear error early.
 */
export async function checkUpstreamBaseUrl(raw: string, rules: UpstreamAddressRules): Promise<UrlCheck> {
  if (URL.canParse(raw)) {
    const url = new URL(raw);
    if (trustedOrigins(rules)(url)) return { ok: true, url };
  }
  return checkOutboundUrl(raw, rules.policy, rules.lookupAll ?? systemLookupAll, 'upstream_base_url');
}

/**
 * Task ids are a path segment of the upstream URL: "." and ".." (in any spelling WHATWG
 * URL reads as one, %2e included) would rewrite the path instead of naming a task.
 */
export function isDotSegment(taskId: string): boolean {
  return /^(?:\.|%2e){1,2}$/i.test(taskId);
}
