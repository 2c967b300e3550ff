// A cookie-keeping HTTP client for the dashboard without a browser: signs in through the
// real form (sign-in CSRF cookie and token, same-origin header), then GETs and POSTs
// forms the way a browser would. For security tests that need many clients or copies of
// one cookie; the browser tests (dashboard.browser.test.ts) cover the pages themselves.

export interface DashboardClient {
  /** the cookies this client holds, name → value */
  cookies: Map<string, string>;
  /** the session's CSRF token, read from the last page fetched */
  csrf: string | undefined;
  get(path: string): Promise<{ status: number; text: string; location: string | null; headers: Headers }>;
  post(path: string, fields: Record<string, string>): Promise<{ status: number; text: string; location: string | null; headers: Headers }>;
  /** a second client holding copies of this one's cookies (a stolen or copied cookie) */
  clone(): DashboardClient;
}

export function dashboardClient(base: string, headers: Record<string, string> = {}, cookies = new Map<string, string>()): DashboardClient {
  const origin = new URL(base).origin;
  const client: DashboardClient = {
    cookies,
    csrf: undefined,
    async get(path) {
      return send('GET', path);
    },
    async post(path, fields) {
      return send('POST', path, new URLSearchParams(fields).toString());
    },
    clone() {
      const c = dashboardClient(base, headers, new Map(cookies));
      c.csrf = client.csrf;
      return c;
    },
  };
  async function send(method: string, path: string, body?: string) {
    const res = await fetch(`${base}${path}`, {
      method,
      redirect: 'manual',
      headers: {
        ...headers,
        cookie: [...client.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
        ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded', origin } : {}),
      },
      body,
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '';
      if (expired) client.cookies.delete(name);
      else client.cookies.set(name, value);
    }
    const text = await res.text();
    const m = /name="_csrf" value="([^"]+)"/.exec(text);
    if (m) client.csrf = m[1];
    return { status: res.status, text, location: res.headers.get('location'), headers: res.headers };
  }
  return client;
}

/** Signs in with `apiKey`; → the client, or throws with the page's status. */
export async function signIn(base: string, apiKey: string, headers: Record<string, string> = {}): Promise<DashboardClient> {
  const c = dashboardClient(base, headers);
  await c.get('/dashboard/sign-in');
  const res = await c.post('/dashboard/sign-in', { _csrf: c.csrf!, api_key: apiKey });
  if (res.status !== 303) throw new Error(`sign-in answered ${res.status}`);
  await c.get('/dashboard'); // picks up the session's CSRF token
  return c;
}
