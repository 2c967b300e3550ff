// The dashboard's pages, server-rendered with hono/jsx. Everything shown is escaped by
// JSX (no raw HTML anywhere); the only style is one inline sheet carrying the response's
// CSP nonce, and there is no script at all.
import type { Child, FC, PropsWithChildren } from 'hono/jsx';
import type { WatchStore, WatchView } from '../watches/store.js';
import { RawJson, stringifyWithRaw } from '../api/raw-json.js';
import { formatJsonText } from './json-format.js';
import { WATCH_STATUSES } from '../watches/store.js';
import type { StatusCounts } from './counts.js';
import { CSS } from './styles.js';

export const BASE = '/dashboard';

export type Attempt = NonNullable<Awaited<ReturnType<WatchStore['attempts']>>>[number];

export interface Flash {
  kind: 'ok' | 'error';
  text: string;
}

/** The only messages a flash cookie can select: a code never becomes page text by itself. */
export const FLASHES: Record<string, Flash> = {
  redelivered: { kind: 'ok', text: 'Redelivery queued: the terminal event is being sent again with the same webhook-id.' },
  redeliver_not_ready: { kind: 'error', text: 'Nothing to redeliver yet: the watch has no terminal event (or was cancelled).' },
  cancelled: { kind: 'ok', text: 'Watch cancelled: taskhook stopped watching this task.' },
  already_ended: { kind: 'error', text: 'This watch had already ended; nothing was cancelled.' },
  signed_out: { kind: 'ok', text: 'You are signed out.' },
};


function when(iso: string | null | undefined): Child {
  if (!iso) return <span class="muted">—</span>;
  return <time datetime={iso}>{iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC')}</time>;
}

const StatusBadge: FC<{ status: string }> = ({ status }) => <span class={`badge s-${status}`}>{status}</span>;

const HEALTH_LABEL: Record<string, string> = { healthy: 'healthy', failing: 'failing', circuit_open: 'circuit open' };

/** The callback URL's health and, while its webhook waits, when it is tried next (src/delivery/health.ts). */
const EndpointHealthCell: FC<{ d: WatchView['last_delivery'] }> = ({ d }) => {
  if (!d || d.endpoint_state === null) return <span class="muted">—</span>;
  const until = d.circuit_open_until ?? (d.status === 'pending' ? d.next_attempt_at : null);
  return (
    <span data-testid="endpoint-health" title={d.last_error ?? undefined}>
      <span class={`badge h-${d.endpoint_state}`}>{HEALTH_LABEL[d.endpoint_state]}</span>
      {until ? <span class="muted small"> · next try {when(until)}</span> : null}
    </span>
  );
};

const OUTCOME_CLASS: Record<string, string> = { 'task.completed': 'o-ok', 'task.failed': 'o-bad', 'watch.failed': 'o-bad', 'task.cancelled': 'o-neutral' };

/**
 * Where a watch is and how it went: its status, then its outcome once decided (a watch
 * that ended in task.failed or watch.failed is never a plain green "delivered": the
 * status badge goes grey and the outcome is red), and "polls failing" while they do.
 */
/** upstream's answer as it was sent, re-indented without parsing (json-format.ts) */
const Snapshot: FC<{ task: unknown; taskId: string }> = ({ task, taskId }) => {
  const f = formatJsonText(task instanceof RawJson ? task.text : stringifyWithRaw(task));
  return (
    <>
      <pre class="snapshot" data-testid="snapshot">
        {f.text}
      </pre>
      {f.truncated ? (
        <p class="muted small" data-testid="snapshot-truncated">
          Shortened for display; the whole answer is at GET /v1/tasks/{taskId}.
        </p>
      ) : null}
    </>
  );
};

const WatchState: FC<{ w: WatchView }> = ({ w }) => {
  const badly = w.outcome !== null && w.outcome !== 'task.completed';
  return (
    <span class="state">
      <span class={`badge s-${w.status}${badly ? ' ended-badly' : ''}`} data-testid="status">
        {w.status}
      </span>
      {w.outcome ? (
        <span class={`badge ${OUTCOME_CLASS[w.outcome] ?? 'o-neutral'}`} data-testid="outcome">
          {w.outcome}
        </span>
      ) : null}
      {w.last_poll_error ? (
        <span class="badge s-pending" title={w.last_poll_error.message} data-testid="poll-error">
          polls failing
        </span>
      ) : null}
    </span>
  );
};

function httpStatus(status: number | null | undefined): Child {
  if (status === null || status === undefined) return <span class="muted">—</span>;
  return <span class={status >= 200 && status < 300 ? 'http-ok' : 'http-bad'}>{status}</span>;
}

const CsrfField: FC<{ token: string }> = ({ token }) => <input type="hidden" name="_csrf" value={token} />;

export interface Signed {
  tenantId: string;
  tenantName: string;
  csrf: string;
}

export const Layout: FC<PropsWithChildren<{ title: string; nonce: string; session?: Signed | undefined; flash?: Flash | undefined }>> = (p) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="referrer" content="no-referrer" />
      <title>{`${p.title} · taskhook`}</title>
      <style nonce={p.nonce}>{CSS}</style>
    </head>
    <body>
      <header>
        <a class="brand" href={BASE}>
          taskhook
        </a>
        {p.session ? (
          <>
            <span class="tenant">
              {p.session.tenantName} <span class="mono">({p.session.tenantId})</span>
            </span>
            <form method="post" action={`${BASE}/sign-out`}>
              <CsrfField token={p.session.csrf} />
              <button type="submit">Sign out</button>
            </form>
          </>
        ) : null}
      </header>
      <main>
        {p.flash ? (
          <div class={`flash ${p.flash.kind}`} role="status" data-testid="flash">
            {p.flash.text}
          </div>
        ) : null}
        {p.children}
      </main>
    </body>
  </html>
);

export const SignInPage: FC<{ nonce: string; csrf: string; error?: string | undefined; flash?: Flash | undefined }> = (p) => (
  <Layout title="Sign in" nonce={p.nonce} flash={p.flash}>
    <div class="signin card">
      <h1>Sign in to the dashboard</h1>
      <p class="muted">Use a gateway key (the <code>thk_…</code> key you call the API with). It is checked once and never stored in your browser.</p>
      {p.error ? (
        <div class="flash error" role="alert" data-testid="sign-in-error">
          {p.error}
        </div>
      ) : null}
      <form method="post" action={`${BASE}/sign-in`}>
        <CsrfField token={p.csrf} />
        <label for="api_key">Gateway key</label>
        <input id="api_key" name="api_key" type="password" autocomplete="off" spellcheck={false} required maxlength={512} />
        <button type="submit">Sign in</button>
      </form>
    </div>
  </Layout>
);

export interface ListFilter {
  status?: string | undefined;
  task_id?: string | undefined;
  cursor?: string | undefined;
}

export function listHref(f: ListFilter): string {
  const q = new URLSearchParams();
  if (f.status) q.set('status', f.status);
  if (f.task_id) q.set('task_id', f.task_id);
  if (f.cursor) q.set('cursor', f.cursor);
  const s = q.toString();
  return s ? `${BASE}?${s}` : BASE;
}

export const WatchesPage: FC<{
  nonce: string;
  session: Signed;
  counts: StatusCounts;
  watches: WatchView[];
  nextCursor: string | null;
  filter: ListFilter;
  error?: string | undefined;
}> = (p) => (
  <Layout title="Watches" nonce={p.nonce} session={p.session}>
    <h1>Watches</h1>
    <nav class="counts" aria-label="Watches per status">
      <a class={`count${p.filter.status ? '' : ' on'}`} href={listHref({ task_id: p.filter.task_id })} data-testid="count-all">
        <span class="n">{p.counts.total}</span>
        <span class="l">all</span>
      </a>
      {WATCH_STATUSES.map((s) => (
        <a class={`count${p.filter.status === s ? ' on' : ''}`} href={listHref({ status: s, task_id: p.filter.task_id })} data-testid={`count-${s}`}>
          <span class="n">{p.counts[s]}</span>
          <span class="l">{s}</span>
        </a>
      ))}
    </nav>
    {p.error ? (
      <div class="flash error" role="alert">
        {p.error}
      </div>
    ) : null}
    <form class="filters" method="get" action={BASE}>
      <select name="status" aria-label="Status">
        <option value="">any status</option>
        {WATCH_STATUSES.map((s) => (
          <option value={s} selected={p.filter.status === s}>
            {s}
          </option>
        ))}
      </select>
      <input type="text" name="task_id" placeholder="task_id (exact)" value={p.filter.task_id ?? ''} maxlength={256} aria-label="task_id" />
      <button type="submit" class="secondary">
        Filter
      </button>
      {p.filter.status || p.filter.task_id ? <a href={BASE}>clear</a> : null}
    </form>
    <table data-testid="watches">
      <thead>
        <tr>
          <th>Watch</th>
          <th>task_id</th>
          <th>Status</th>
          <th>Polls</th>
          <th>Last delivery</th>
          <th>Callback health</th>
          <th>Updated</th>
        </tr>
      </thead>
      <tbody>
        {p.watches.length === 0 ? (
          <tr>
            <td colspan={7} class="muted">
              No watches{p.filter.status || p.filter.task_id ? ' match this filter' : ' yet'}.
            </td>
          </tr>
        ) : (
          p.watches.map((w) => (
            <tr data-testid="watch-row" data-watch-id={w.id}>
              <td class="mono">
                <a href={`${BASE}/watches/${w.id}`}>{w.id}</a>
              </td>
              <td class="mono">{w.task_id}</td>
              <td>
                <WatchState w={w} />
              </td>
              <td>{w.polls}</td>
              <td>
                {w.last_delivery ? (
                  <>
                    <StatusBadge status={w.last_delivery.status} /> {httpStatus(w.last_delivery.last_response_status)}
                    <span class="muted small"> · {w.last_delivery.attempts} attempt{w.last_delivery.attempts === 1 ? '' : 's'}</span>
                  </>
                ) : (
                  <span class="muted">—</span>
                )}
              </td>
              <td>
                <EndpointHealthCell d={w.last_delivery} />
              </td>
              <td class="small">{when(w.updated_at)}</td>
            </tr>
          ))
        )}
      </tbody>
    </table>
    <div class="pager">
      {p.filter.cursor ? <a href={listHref({ ...p.filter, cursor: undefined })}>« newest</a> : null}
      {p.nextCursor ? (
        <a href={listHref({ ...p.filter, cursor: p.nextCursor })} data-testid="next-page">
          older »
        </a>
      ) : null}
    </div>
  </Layout>
);

function excerpt(text: string | null): Child {
  if (!text) return <span class="muted">—</span>;
  if (text.length <= 160) return <pre>{text}</pre>;
  return (
    <details>
      <summary>
        <code>{text.slice(0, 120)}…</code>
      </summary>
      <pre>{text}</pre>
    </details>
  );
}

/** How a watch came to be when it was submitted through taskhook (POST /v1/tasks). */
export interface Submission {
  path: string;
  upstream_status: number | null;
  upstream_body: string | null;
  capability: string | null;
  action: string | null;
  model: string | null;
  created_at: Date;
}

/** upstream's answer pretty-printed when it is JSON, as it came otherwise */
const pretty = (text: string | null): string => {
  if (text === null) return '';
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
};

export const WatchPage: FC<{ nonce: string; session: Signed; watch: WatchView; attempts: Attempt[]; submission?: Submission | undefined; flash?: Flash | undefined }> = (p) => {
  const w = p.watch;
  const sub = p.submission;
  const canCancel = w.status === 'watching' || w.status === 'delivering';
  const canRedeliver = w.status === 'delivered' || w.status === 'undeliverable' || w.status === 'delivering';
  return (
    <Layout title={w.id} nonce={p.nonce} session={p.session} flash={p.flash}>
      <p class="small">
        <a href={BASE}>« all watches</a>
      </p>
      <h1>
        <span class="mono">{w.id}</span> <WatchState w={w} />
      </h1>
      <div class="grid">
        <div class="card">
          <dl>
            <dt>task_id</dt>
            <dd class="mono">{w.task_id}</dd>
            <dt>callback_url</dt>
            <dd class="mono">{w.callback_url}</dd>
            <dt>events</dt>
            <dd class="mono">{w.events.join(', ')}</dd>
            <dt>origin</dt>
            <dd data-testid="origin">
              {sub ? (
                <>
                  submitted through taskhook: <span class="mono">POST {sub.path}</span> → HTTP {sub.upstream_status ?? '—'}{' '}
                  {sub.capability ? <span class="mono">({[sub.capability, sub.action, sub.model].filter(Boolean).join(' ')})</span> : null}{' '}
                  <span class="muted small">{when(sub.created_at.toISOString())}</span>
                </>
              ) : (
                <span class="muted">registered by task_id</span>
              )}
            </dd>
            <dt>outcome</dt>
            <dd class="mono">{w.outcome ?? <span class="muted">not decided</span>}</dd>
            {w.last_poll_error ? (
              <>
                <dt>polls failing</dt>
                <dd data-testid="poll-error-detail">
                  <span class="http-bad">{w.last_poll_error.message}</span> <span class="muted small">since {when(w.last_poll_error.at)}</span>
                </dd>
              </>
            ) : null}
            <dt>polls</dt>
            <dd>{w.polls}</dd>
            <dt>next poll</dt>
            <dd>{when(w.next_poll_at)}</dd>
            {w.eta ? (
              <>
                <dt>eta</dt>
                <dd data-testid="eta" title={`p90 ${w.eta.p90}`}>
                  {when(w.eta.p50)} <span class="muted small">p90 {when(w.eta.p90)}</span>
                </dd>
              </>
            ) : null}
            <dt>created</dt>
            <dd>{when(w.created_at)}</dd>
            <dt>updated</dt>
            <dd>{when(w.updated_at)}</dd>
            <dt>metadata</dt>
            <dd class="mono">{JSON.stringify(w.metadata)}</dd>
            <dt>callback health</dt>
            <dd>
              <EndpointHealthCell d={w.last_delivery} />
            </dd>
            <dt>last delivery</dt>
            <dd>
              {w.last_delivery ? (
                <>
                  <StatusBadge status={w.last_delivery.status} /> <span class="mono">{w.last_delivery.webhook_id}</span>
                  {w.last_delivery.last_error ? <div class="small muted">{w.last_delivery.last_error}</div> : null}
                </>
              ) : (
                <span class="muted">none yet</span>
              )}
            </dd>
          </dl>
          <div class="actions">
            <form method="post" action={`${BASE}/watches/${w.id}/redeliver`}>
              <CsrfField token={p.session.csrf} />
              <button type="submit" disabled={!canRedeliver} data-testid="redeliver">
                Redeliver
              </button>
            </form>
            <form method="post" action={`${BASE}/watches/${w.id}/cancel`}>
              <CsrfField token={p.session.csrf} />
              <button type="submit" class="danger" disabled={!canCancel} data-testid="cancel">
                Cancel watch
              </button>
            </form>
          </div>
        </div>
        {sub ? (
          <div class="card">
            <h2>Upstream's first answer</h2>
            <pre class="snapshot" data-testid="upstream-answer">
              {pretty(sub.upstream_body)}
            </pre>
          </div>
        ) : null}
        <div class="card">
          <h2>Task snapshot</h2>
          {w.task === null ? (
            <p class="muted">Not polled yet.</p>
          ) : (
            <Snapshot task={w.task} taskId={w.task_id} />
          )}
        </div>
      </div>
      <h2>
        Delivery attempts <span class="muted small">({p.attempts.length})</span>
      </h2>
      <table data-testid="attempts">
        <thead>
          <tr>
            <th>#</th>
            <th>Time</th>
            <th>Event</th>
            <th>Status</th>
            <th>Duration</th>
            <th>Error</th>
            <th>Response excerpt</th>
          </tr>
        </thead>
        <tbody>
          {p.attempts.length === 0 ? (
            <tr>
              <td colspan={7} class="muted">
                No delivery attempts yet.
              </td>
            </tr>
          ) : (
            p.attempts.map((a, i) => (
              <tr data-testid="attempt">
                <td>{i + 1}</td>
                <td class="small">{when(a.attempted_at)}</td>
                <td class="mono">{a.event_type}</td>
                <td>{httpStatus(a.response_status)}</td>
                <td>{a.duration_ms} ms</td>
                <td>{a.error ? <span class="http-bad">{a.error}</span> : <span class="muted">—</span>}</td>
                <td>{excerpt(a.response_excerpt)}</td>
              </tr>
            ))
          )}
        </tbody>
      </table>
    </Layout>
  );
};

export const ErrorPage: FC<{ nonce: string; status: number; title: string; message: string; session?: Signed | undefined }> = (p) => (
  <Layout title={p.title} nonce={p.nonce} session={p.session}>
    <div class="card">
      <h1>
        {p.status} · {p.title}
      </h1>
      <p>{p.message}</p>
      <p>
        <a href={BASE}>Back to the dashboard</a>
      </p>
    </div>
  </Layout>
);
