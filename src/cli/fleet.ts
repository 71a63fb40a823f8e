/**
 * `session-proxy fleet --store redis://…` (or a Cluster's `redis+cluster://…`,
 * a Sentinel set's `redis+sentinel://…/name`): the fleet as its store has it —
 * each account's proxy (redacted: the store holds no password), the
 * instances holding its lease and the time left, health, traffic, and
 * configuration fingerprints that disagree.
 */
import { ConfigError } from '../errors.js';
import { STORE_ENV, readFleet, resolveStore, type FleetStats, type ResolvedStore } from '../store/index.js';
import { targetSecrets } from '../store/target.js';
import { redactUrl } from '../proxy/redact.js';
import { UsageError, parseArgs } from './args.js';
import { table } from './output.js';
import type { CommandIO } from './io.js';

export const FLEET_HELP = `Usage: session-proxy fleet [--store URL] [options]

Prints the fleet sharing a store: every account with the proxy it is on
(password never shown: the store has none), the processes holding its lease
(instance id, host, pid) and the lease time left, each proxy's health,
requests and bytes summed over the fleet, and processes whose account/pool
configuration differs (fingerprint).

Options:
  --store URL       redis://host:port[/db] or rediss://…; a Cluster:
                    redis+cluster://host:port,host:port; a Sentinel set:
                    redis+sentinel://host:port,host:port/name[/db]
                    (rediss+… for TLS; default: $${STORE_ENV})
  --prefix P        the fleet's key prefix (default session-proxy)
  --timeout MS      connect and read timeout (default 5000)
  --json            machine-readable output on stdout
  -h, --help        this help

Exit status: 0 one configuration in the fleet, 1 processes disagree on it, 2 usage error or store unreachable.
`;

export async function runFleet(argv: readonly string[], io: CommandIO, env: NodeJS.ProcessEnv): Promise<number> {
  const { positionals, flags } = parseArgs(argv, { store: 'string', prefix: 'string', timeout: 'number', json: 'boolean', help: 'boolean' });
  if (flags.help) {
    io.out(FLEET_HELP);
    return 0;
  }
  if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const url = (flags.store as string | undefined) ?? env[STORE_ENV];
  if (!url) throw new UsageError(`fleet needs --store URL (or ${STORE_ENV})`);
  const spec = { url, prefix: (flags.prefix as string | undefined) ?? undefined };
  const usage = '--store must be a redis://, rediss://, redis+cluster:// or redis+sentinel:// URL';
  let store: ResolvedStore;
  try {
    store = resolveStore(spec);
  } catch (err) {
    // The message names what is wrong, never the value.
    if (err instanceof ConfigError) throw new UsageError(`${usage} (${err.message.replace(/^store: /, '')})`);
    throw err;
  }
  if (store.target.kind === 'memory') throw new UsageError(`${usage} (memory: is one process's own)`);
  let stats: FleetStats;
  try {
    stats = await readFleet(spec, { timeoutMs: (flags.timeout as number | undefined) ?? 5000 });
  } catch (err) {
    io.err(`session-proxy fleet: ${redactUrl(String((err as Error)?.message ?? err), targetSecrets(store.target))}\n`);
    return 2;
  }
  const mismatch = stats.fingerprints.length > 1;
  if (flags.json) {
    io.out(`${JSON.stringify(stats, null, 2)}\n`);
    return mismatch ? 1 : 0;
  }
  const ms = (n: number): string => (n >= 1000 ? `${(n / 1000).toFixed(1)} s` : `${n} ms`);
  const bytes = (n: number): string => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
  const out: string[] = [`fleet ${store.where} (epoch ${stats.epoch || 'none'}): ${stats.accounts.length} accounts, ${stats.proxies.length} proxies, ${stats.instances.length} processes`, ''];
  out.push(
    table(
      ['ACCOUNT', 'PROXY', 'STATE', 'HOLDERS (instance host pid, lease left)', 'REQUESTS', 'FAILURES', 'SENT', 'RECEIVED'],
      stats.accounts.map((a) => [
        a.account,
        a.session ? `${a.proxy} session ${a.session}` : a.proxy,
        a.state === 'moving' ? `moving (v${a.version})` : `v${a.version}`,
        a.holders.map((h) => `${h.instance.slice(0, 8)} ${h.host ?? '?'} ${h.pid ?? '?'} ${ms(h.leaseLeftMs)}${h.acked ? '' : ' (not acked)'}`).join('; ') || '-',
        String(a.requests),
        String(a.failures),
        bytes(a.bytesSent),
        bytes(a.bytesReceived),
      ]),
    ),
    '',
    table(
      ['PROXY', 'ACCOUNT', 'HEALTH', 'HELD FOR', 'REQUESTS', 'FAILURES', 'SENT', 'RECEIVED'],
      stats.proxies.map((p) => [p.proxy, p.account ?? '-', p.status === 'up' ? 'up' : `cooldown ${ms(p.cooldownLeftMs)}${p.error ? ` (${p.error})` : ''}`, p.heldForMs ? ms(p.heldForMs) : '-', String(p.requests), String(p.failures), bytes(p.bytesSent), bytes(p.bytesReceived)]),
    ),
    '',
    table(
      ['INSTANCE', 'HOST', 'PID', 'FINGERPRINT', 'SEEN'],
      stats.instances.map((i) => [i.instance, i.host, String(i.pid), i.fingerprint, `${ms(i.seenMsAgo)} ago`]),
    ),
    '',
    mismatch ? `configuration mismatch: ${stats.fingerprints.length} fingerprints in the fleet (${stats.fingerprints.join(', ')}); each process only leases proxies its own pools have` : 'one configuration in the fleet',
  );
  io.out(`${out.join('\n')}\n`);
  return mismatch ? 1 : 0;
}
