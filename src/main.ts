// The taskhook command: see src/cli/program.ts for the commands. Server commands keep
// the process running until SIGTERM/SIGINT; the others end with their exit code.
import { runCli } from './cli/program.js';

const code = await runCli(process.argv.slice(2));
if (code !== undefined) {
  // a client's keep-alive sockets must not hold the process open
  process.exitCode = code;
  if (code !== 0) process.exit(code);
}
