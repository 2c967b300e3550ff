// The soak's upstream, in a process of its own: the simulated upstream of
// src/sim/server.ts with its /_sim admin routes on (fault windows, poll log).
// Usage: SIM_API_KEYS=k1,k2 node --import tsx soak/upstream.ts; prints `READY {"url"}`.
import { startSimUpstream } from '../src/sim/server.js';
import { raisePriority } from './priority.js';

// It stands for another company's servers, not for a process on the gateway's box.
raisePriority();

const sim = await startSimUpstream({ host: '127.0.0.1', apiKeys: (process.env.SIM_API_KEYS ?? 'sk_test').split(','), admin: true });
const stop = () => void sim.close().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
process.stdout.write(`READY ${JSON.stringify({ url: sim.url })}\n`);
