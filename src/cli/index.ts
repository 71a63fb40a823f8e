/**
 * Entry point of the `session-proxy` bin (dist/cli.mjs, shebang added by
 * tsup). Output is flushed before exiting, so piped output is never cut.
 */
import { main } from './main.js';
import { readAll, type CommandIO } from './io.js';

const io: CommandIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  stderrStream: process.stderr,
  readStdin: () => readAll(process.stdin),
};

main(process.argv.slice(2), io).then(
  (code) => exit(code),
  (err: unknown) => {
    process.stderr.write(`session-proxy: ${String((err as Error)?.message ?? err)}\n`);
    exit(1);
  },
);

function exit(code: number): void {
  // Exit once both streams are flushed; nothing else should keep the process alive.
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}
