/**
 * `session-proxy env <account> --config proxies.json`: shell `export` lines
 * that send a non-Node tool (curl, git, pip…) through an account's proxy:
 *
 *   eval "$(session-proxy env alice --config proxies.json)"
 */
import { resolveConfig } from '../config/load.js';
import { LOOPBACK_NO_PROXY, NoProxyMatcher } from '../proxy/no-proxy.js';
import { endpointOf } from '../gateways/entry.js';
import { UsageError, parseArgs } from './args.js';
import type { CommandIO } from './io.js';

export const ENV_HELP = `Usage: session-proxy env <account> [--config proxies.json]

Prints POSIX shell lines exporting the account's active proxy (the first of
its pool) as HTTP_PROXY, HTTPS_PROXY and ALL_PROXY (both cases) and the
configuration's noProxy as NO_PROXY / no_proxy, single-quoted:

  eval "$(session-proxy env alice --config proxies.json)"

The proxy URL includes its password: that is what the variables are for.
"default" names the default pool (the "proxy" key).

Options:
  -c, --config FILE   the JSON config file (else SESSION_PROXY_CONFIG)
  -h, --help          this help
`;

const PROXY_VARS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'];

/** POSIX single quoting: 'it'\''s'. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export async function runEnv(argv: readonly string[], io: CommandIO, env: NodeJS.ProcessEnv): Promise<number> {
  const { positionals, flags } = parseArgs(argv, { config: 'string', help: 'boolean' });
  if (flags.help) {
    io.out(ENV_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length ? 'env takes one account name' : 'env needs an account name');
  const account = positionals[0]!;
  const configFile = flags.config as string | undefined;
  if (configFile === undefined && !env.SESSION_PROXY_CONFIG && !env.SESSION_PROXY_CONFIG_REF && !env.SESSION_PROXY_CONFIG_JSON) throw new UsageError('env needs --config FILE (or SESSION_PROXY_CONFIG)');
  const { options } = resolveConfig(configFile === undefined ? {} : { configFile }, env);
  const accounts = options.accounts ?? {};
  // Own keys only: `env constructor` must not find an inherited function.
  const spec = account === 'default' ? options.proxy : Object.hasOwn(accounts, account) ? accounts[account] : undefined;
  if (spec === undefined) {
    const names = [...(options.proxy !== undefined ? ['default'] : []), ...Object.keys(options.accounts ?? {})];
    throw new UsageError(`unknown account "${account}" (configured: ${names.map((n) => `"${n}"`).join(', ') || 'none'})`);
  }
  const first = Array.isArray(spec) ? spec[0] : spec;
  // A gateway: a fresh session of its own for the shell's programs.
  const url = endpointOf(first, { defaultProtocol: options.defaultProtocol }).toEnvUrl();
  const noProxy = new NoProxyMatcher(options.noProxy ?? LOOPBACK_NO_PROXY).entries.join(',');
  const lines = PROXY_VARS.map((name) => `export ${name}=${shellQuote(url)}`);
  if (noProxy) lines.push(`export NO_PROXY=${shellQuote(noProxy)}`, `export no_proxy=${shellQuote(noProxy)}`);
  else lines.push('unset NO_PROXY no_proxy');
  io.out(lines.join('\n') + '\n');
  return 0;
}
