// Found by the chaos soak's long run (bench/README.md, "Soak"): a second watch of a
// task, registered while a poll of that task was in flight, stayed `watching` forever.
// The poll's finishing statement waited on the row lock the registration held, then —
// its snapshot older than the registration's commit — removed the task from the
// schedule without seeing the new watch. The finish now locks the task's row first and
// reads the watches in a second statement of its transaction (src/poller/sql.ts lockOwned),
// so it sees every watch whose registration committed before its lock; a registration that
// comes after waits for it, and schedules the task afresh. (With leases, registering took
// the in-flight poll's lease away instead.) The race is made deterministic here: the worker freezes itself between the
// upstream's terminal answer and its commit, and a trigger holds the registration's
// transaction open while the worker finishes.
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_API_KEY } from './support/env.js';
import { startFleet, type Fleet } from './support/fleet.js';
import { processState, type GatewayProcess } from './support/process.js';

let f: Fleet | undefined;
afterEach(async () => {
  await f?.close();
  f = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const register = (api: GatewayProcess, taskId: string, callback: string) =>
  fetch(`${api.url}/v1/watches`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ task_id: taskId, callback_url: callback }),
  });

describe('a watch registered while its task is being finished', () => {
  it('is not left watching: the in-flight poll loses its lease, the task is polled again, both watches end', async () => {
    f = await startFleet({ LOG_LEVEL: 'warn' });
    // the registration of the /slow watch stays uncommitted for 2 s after it has locked the schedule row
    await f.db.sql.unsafe(`
      create function soak_slow_registration() returns trigger language plpgsql as $$
      begin
        if new.callback_url like '%/slow' then perform pg_sleep(2); end if;
        return new;
      end $$;
      create trigger soak_slow_registration after insert on watches for each row execute function soak_slow_registration();`);
    const api = await f.gateway({ TASKHOOK_ROLE: 'api' });
    const worker = await f.gateway({ TASKHOOK_ROLE: 'worker', TASKHOOK_FAULTS: 'poll.before-commit=stop@1' });
    const task = f.upstream.createTask({ durationMs: 0, processingAfterMs: 0 });

    expect((await register(api, task.task_id, `${f.receiver.url}/first`)).status).toBe(201);
    // the worker polls, hears `completed`, and freezes before it records it
    await until(() => processState(worker.child.pid!) === 'T', 'the worker to freeze after the poll');
    const second = register(api, task.task_id, `${f.receiver.url}/slow`);
    await until(async () => {
      const rows = await f!.db.sql`select 1 from pg_stat_activity where datname = current_database() and query like '%soak_slow%' or wait_event = 'PgSleep'`;
      return rows.length > 0;
    }, 'the registration to hold its lock');
    worker.child.kill('SIGCONT'); // finishes the task while the registration is still uncommitted
    expect((await second).status).toBe(201);

    await until(async () => {
      const rows = await f!.db.sql<{ status: string }[]>`select status from watches`;
      return rows.length === 2 && rows.every((r) => r.status === 'delivered');
    }, 'both watches to be delivered', 20_000).catch(async (err: Error) => {
      const rows = await f!.db.sql`select w.callback_url, w.status, u.id is not null as scheduled from watches w left join upstream_tasks u using (tenant_id, task_id)`;
      throw new Error(`${err.message}: ${JSON.stringify(rows)}`);
    });
    const paths = f.receiver.received.map((r) => r.path).sort();
    expect(paths).toEqual(['/first', '/slow']);
  });
});
