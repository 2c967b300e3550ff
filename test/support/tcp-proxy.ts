// A TCP proxy that can be cut: one process's connection to Postgres goes through it, and
// `cut()` resets every connection and refuses new ones (the worker is partitioned from the
// database while everyone else still reaches it) until `restore()`. `hold()`: on each
// connection, the next statement that updates rows runs and commits, and its answer and
// everything after it on that connection are dropped — the process never learns of the
// commit (a connection lost between a commit and its answer) until cut() resets the
// connections. The server's side is read as protocol messages (a type byte, an int32
// length): a statement's rows ('D') are held back until its CommandComplete ('C'), whose
// tag ("UPDATE 25") says whether it changed anything; every other answer goes through.
import net from 'node:net';

export interface TcpProxy {
  port: number;
  cut(): void;
  /** each connection's next statement that updates rows commits unanswered (until cut) */
  hold(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(host: string, port: number): Promise<TcpProxy> {
  let open = true;
  let held = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (!open) return void client.resetAndDestroy();
    const upstream = net.connect(port, host);
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    let pending: Buffer = Buffer.alloc(0);
    let rows: Buffer[] = [];
    let dropping = false;
    upstream.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let at = 0;
      while (!dropping && pending.length - at >= 5) {
        const end = at + 1 + pending.readInt32BE(at + 1);
        if (pending.length < end) break;
        const msg = pending.subarray(at, end);
        at = end;
        const type = String.fromCharCode(msg[0]!);
        if (held && type === 'D') {
          rows.push(Buffer.from(msg));
          continue;
        }
        if (held && type === 'C' && /^UPDATE [1-9]/.test(msg.subarray(5, msg.length - 1).toString())) {
          dropping = true;
          break;
        }
        for (const r of rows) client.write(r);
        rows = [];
        client.write(msg);
      }
      pending = dropping ? Buffer.alloc(0) : Buffer.from(pending.subarray(at));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      open = false;
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
    },
    hold() {
      held = true;
    },
    restore() {
      open = true;
      held = false;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
