/** The `session-proxy` command: check, verify, env, fleet. */
import { ConfigError, SessionProxyError } from '../errors.js';
import { redactUrl } from '../proxy/redact.js';
import { UsageError } from './args.js';
import { CHECK_HELP, runCheck } from './check.js';
import { ENV_HELP, runEnv } from './env.js';
import { VERIFY_HELP, runVerify } from './verify.js';
import { FLEET_HELP, runFleet } from './fleet.js';
import type { CommandIO } from './io.js';

declare const __SESSION_PROXY_VERSION__: string | undefined;

export const HELP = `Usage: session-proxy <command> [options]

Commands:
  check <proxy | file>...      test proxies: egress IP, latency, status
  verify --config FILE         verify every account's egress; flag shared IPs
  env <account> --config FILE  print export lines for an account's proxy
  fleet --store redis://…      the fleet sharing a store: accounts, proxies, holders, leases

Run "session-proxy <command> --help" for a command's options.

To route a Node app through the configured proxies without code changes:
  SESSION_PROXY_CONFIG=./proxies.json node --import session-proxy/register app.js
`;

const COMMANDS: Record<string, { help: string; run: (argv: readonly string[], io: CommandIO, env: NodeJS.ProcessEnv) => Promise<number> }> = {
  check: { help: CHECK_HELP, run: (argv, io) => runCheck(argv, io) },
  verify: { help: VERIFY_HELP, run: runVerify },
  env: { help: ENV_HELP, run: runEnv },
  fleet: { help: FLEET_HELP, run: runFleet },
};

/** Runs the CLI; resolves with the exit status (0 ok, 1 failures found, 2 usage or configuration error). */
export async function main(argv: readonly string[], io: CommandIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h') {
    io.out(HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === 'help') {
    const topic = rest[0] === undefined ? undefined : COMMANDS[rest[0]];
    io.out(topic ? topic.help : HELP);
    return rest[0] === undefined || topic ? 0 : 2;
  }
  if (command === '--version' || command === '-v') {
    io.out(`${typeof __SESSION_PROXY_VERSION__ === 'string' ? __SESSION_PROXY_VERSION__ : 'unknown'}\n`);
    return 0;
  }
  const cmd = COMMANDS[command];
  if (!cmd) {
    io.err(`session-proxy: unknown command "${command}"\n\n${HELP}`);
    return 2;
  }
  try {
    return await cmd.run(rest, io, env);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`session-proxy ${command}: ${err.message}\nRun "session-proxy ${command} --help" for usage.\n`);
      return 2;
    }
    if (err instanceof ConfigError || err instanceof SessionProxyError) {
      io.err(`session-proxy ${command}: ${err.name}: ${redactUrl(err.message)}\n`);
      return 2;
    }
    io.err(`session-proxy ${command}: ${redactUrl(String((err as Error)?.stack ?? err))}\n`);
    return 1;
  }
}
