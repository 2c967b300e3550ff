// /dashboard: a small server-rendered UI over the same WatchStore the API uses.
// Sign in with a gateway key → a sealed session cookie (session.ts); every POST passes
// the origin check and the session's CSRF token (csrf.ts); every read and write is
// scoped to the session's tenant, so another tenant's watch is a 404 like in the API.
import { randomBytes } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { html } from 'hono/html';
import type { JSX } from 'hono/jsx/jsx-runtime';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { AppDeps } from '../api/app.js';
import { throttledAuth } from '../api/auth-throttle.js';
import { ApiError, isClientGone } from '../api/errors.js';
import { TASK_ID, TASK_ID_MESSAGE } from '../api/validation.js';
import { hashApiKey } from '../tenancy/keys.js';
import type { SecretBox } from '../tenancy/secret-box.js';
import { WATCH_STATUSES } from '../watches/store.js';
import { statusCounts } from './counts.js';
import { PageError, checkedForm, postGuard } from './csrf.js';
import { Sessions, type Session } from './session.js';
import { BASE, ErrorPage, FLASHES, SignInPage, WatchPage, WatchesPage, type ListFilter } from './views.js';

const WATCH_ID = /^wat_[0-9a-z]{26}$/;
const GATEWAY_KEY = /^[\x21-\x7e]{1,512}$/;
const PAGE_SIZE = 25;

export interface DashboardDeps extends AppDeps {
  /** the gateway's SecretBox: sessions sealed with it are valid on every process of the deployment */
  sessionBox?: SecretBox;
}

type DashEnv = { Variables: { nonce: string; session: Session; requestId: string } };

function render(c: Context<DashEnv>, page: JSX.Element, status: ContentfulStatusCode = 200) {
  return c.html(html`<!doctype html>${page}`, status);
}

export function dashboardRoutes(deps: DashboardDeps) {
  const app = new Hono<DashEnv>();
  const sessions = new Sessions(deps.sql, deps.sessionBox);

  app.onError((err, c) => {
    const nonce = c.var.nonce ?? randomBytes(16).toString('base64');
    if (err instanceof PageError) {
      for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
      return render(c, <ErrorPage nonce={nonce} status={err.status} title={err.title} message={err.message} />, err.status);
    }
    // the failed-sign-in throttle (src/api/auth-throttle.ts) as the dashboard's error page
    if (err instanceof ApiError && err.status === 429) {
      for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
      return render(c, <ErrorPage nonce={nonce} status={429} title="Too many attempts" message={`${err.detail}. Wait, then sign in again.`} />, 429);
    }
    if (err instanceof HTTPException && err.status < 500) {
      return render(c, <ErrorPage nonce={nonce} status={err.status} title="Request error" message={err.message || 'The request was refused.'} />, err.status);
    }
    if (isClientGone(err)) {
      deps.log.debug({ path: c.req.path, method: c.req.method, reason: err.message }, 'client went away mid-request');
      return render(c, <ErrorPage nonce={nonce} status={400} title="Request cut short" message="The request did not arrive whole. Try again." />, 400);
    }
    deps.log.error({ err, path: c.req.path }, 'dashboard error');
    return render(c, <ErrorPage nonce={nonce} status={500} title="Internal error" message="Something went wrong on our side; nothing was changed." />, 500);
  });

  // Headers for every dashboard response: no script at all, styles only by this response's
  // nonce, never framed, never cached (pages show tenant data), no Referer leaking ids.
  app.use(async (c, next) => {
    const nonce = randomBytes(16).toString('base64');
    c.set('nonce', nonce);
    await next();
    const h = c.res.headers;
    h.set(
      'content-security-policy',
      `default-src 'none'; style-src 'nonce-${nonce}'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
    );
    h.set('x-frame-options', 'DENY');
    h.set('x-content-type-options', 'nosniff');
    h.set('referrer-policy', 'no-referrer');
    h.set('cache-control', 'no-store');
  });
  app.use(postGuard());

  const flash = (c: Context<DashEnv>) => {
    const code = sessions.takeFlash(c);
    return code && Object.hasOwn(FLASHES, code) ? FLASHES[code] : undefined;
  };

  // ---- signed out
  app.get('/sign-in', async (c) => {
    if (await sessions.read(c)) return c.redirect(BASE, 303);
    return render(c, <SignInPage nonce={c.var.nonce} csrf={sessions.signInToken(c)} flash={flash(c)} />);
  });

  app.post('/sign-in', async (c) => {
    const form = await checkedForm(c, sessions.readSignInToken(c));
    const key = (form.get('api_key') ?? '').trim();
    const tenant = await throttledAuth(deps.authThrottle, c, key, () => (GATEWAY_KEY.test(key) ? deps.tenants.byApiKey(key) : undefined));
    if (!tenant) {
      const error = 'That gateway key is not valid (or its tenant is disabled).';
      return render(c, <SignInPage nonce={c.var.nonce} csrf={sessions.signInToken(c)} error={error} />, 401);
    }
    sessions.start(c, tenant.id, hashApiKey(key));
    return c.redirect(BASE, 303);
  });

  // ---- signed in: everything below
  app.use(async (c, next) => {
    const session = await sessions.read(c);
    if (!session) {
      if (c.req.method === 'GET' || c.req.method === 'HEAD') return c.redirect(`${BASE}/sign-in`, 303);
      throw new PageError(403, 'Signed out', 'Your session has ended. Sign in again, then repeat the action.');
    }
    c.set('session', session);
    await next();
  });

  app.post('/sign-out', async (c) => {
    await checkedForm(c, c.var.session.csrf);
    await sessions.end(c, c.var.session);
    sessions.flash(c, 'signed_out');
    return c.redirect(`${BASE}/sign-in`, 303);
  });

  app.get('/', async (c) => {
    const q = c.req.query();
    const filter: ListFilter = {};
    const problems: string[] = [];
    if (q.status) {
      if ((WATCH_STATUSES as readonly string[]).includes(q.status)) filter.status = q.status;
      else problems.push(`status must be one of ${WATCH_STATUSES.join(', ')}`);
    }
    const taskId = q.task_id?.trim();
    if (taskId) {
      if (TASK_ID.test(taskId)) filter.task_id = taskId;
      else problems.push(TASK_ID_MESSAGE);
    }
    if (q.cursor) {
      if (WATCH_ID.test(q.cursor)) filter.cursor = q.cursor;
      else problems.push('that page link is not valid; showing the newest watches');
    }
    const tenantId = c.var.session.tenantId;
    const [list, counts] = await Promise.all([
      deps.watches.list(tenantId, { ...filter, limit: PAGE_SIZE }),
      statusCounts(deps.sql, tenantId),
    ]);
    return render(
      c,
      <WatchesPage
        nonce={c.var.nonce}
        session={c.var.session}
        counts={counts}
        watches={list.data}
        nextCursor={list.next_cursor}
        filter={filter}
        error={problems.length ? `Ignored: ${problems.join('; ')}.` : undefined}
      />,
      problems.length ? 400 : 200,
    );
  });

  const watchId = (c: Context<DashEnv>) => {
    const id = c.req.param('id') ?? '';
    if (!WATCH_ID.test(id)) throw notFound();
    return id;
  };

  app.get('/watches/:id', async (c) => {
    const id = watchId(c);
    const tenantId = c.var.session.tenantId;
    const [watch, attempts, submission] = await Promise.all([
      deps.watches.get(tenantId, id),
      deps.watches.attempts(tenantId, id),
      deps.submitter?.submissions.forWatch(tenantId, id),
    ]);
    if (!watch || !attempts) throw notFound();
    return render(c, <WatchPage nonce={c.var.nonce} session={c.var.session} watch={watch} attempts={attempts} submission={submission} flash={flash(c)} />);
  });

  // The CSRF token is checked before the id is even looked at: a forged request learns nothing.
  app.post('/watches/:id/redeliver', async (c) => {
    await checkedForm(c, c.var.session.csrf);
    const id = watchId(c);
    const result = await deps.watches.redeliver(c.var.session.tenantId, id);
    if (result === 'not_found') throw notFound();
    if (result === 'not_ready') sessions.flash(c, 'redeliver_not_ready');
    else {
      deps.onEnqueued?.();
      sessions.flash(c, 'redelivered');
    }
    return c.redirect(`${BASE}/watches/${id}`, 303);
  });

  app.post('/watches/:id/cancel', async (c) => {
    await checkedForm(c, c.var.session.csrf);
    const id = watchId(c);
    const before = await deps.watches.get(c.var.session.tenantId, id);
    const after = before && (await deps.watches.cancel(c.var.session.tenantId, id));
    if (!after) throw notFound();
    sessions.flash(c, after.status === 'cancelled' && before.status !== 'cancelled' ? 'cancelled' : 'already_ended');
    return c.redirect(`${BASE}/watches/${id}`, 303);
  });

  return app;
}

const notFound = () => new PageError(404, 'Not found', 'There is no such watch in this tenant.');
