/**
 * `session-proxy verify --config proxies.json`: for every account (and the
 * default pool), verify the egress IP through its active proxy; flag
 * accounts that egress from the same IP.
 */
import type { ConnectionOptions } from 'node:tls';
import { resolveConfig } from '../config/load.js';
import { DEFAULT_EGRESS_ENDPOINTS } from '../egress/verify.js';
import { endpointOf } from '../gateways/entry.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { ProxySpec } from '../options.js';
import { UsageError, parseArgs } from './args.js';
import { Scrubber, formatLatency, mapLimit, progress, table } from './output.js';
import { probe } from './probe.js';
import { checkEndpoint, readCa } from './check.js';
import type { CommandIO } from './io.js';
import { Trust } from '../trust/trust.js';

export const VERIFY_HELP = `Usage: session-proxy verify [--config proxies.json] [options]

For every account of the configuration (and the default pool, "default"),
connects through its active proxy (the first of its pool; with exclusive,
the first no earlier account holds, as the manager picks), asks an IP-echo
endpoint for the egress IP, and prints a table. Accounts that egress from
the same IP are flagged: an exchange would see them as one client.

The configuration is read like the preload reads it: --config (else
SESSION_PROXY_CONFIG), \${VAR} interpolation, proxyList files, and
SESSION_PROXY_URL / HTTPS_PROXY / … for the default proxy.

Options:
  -c, --config FILE   the JSON config file
  --endpoint URL      IP-echo endpoint (repeatable; default: the config's
                      egressEndpoints, else ${DEFAULT_EGRESS_ENDPOINTS[0]}, …)
  --concurrency N     accounts verified at once (default 10)
  --timeout MS        per request (default 10000)
  --ca FILE           extra CA (PEM) for https endpoints
  --json              machine-readable output on stdout
  -h, --help          this help

Exit status: 0 all verified and distinct, 1 any failure or shared IP,
2 usage or configuration error.
`;

export interface VerifyRow {
  account: string;
  proxy: string;
  protocol: string;
  ok: boolean;
  status: string;
  ip: string | null;
  latencyMs: number | null;
  endpoint: string | null;
  error: string | null;
  /** Other accounts egressing from the same IP (the name of verifyAll()'s field; `sharesIpWith` before 0.2). */
  sameIpAs: string[];
}

export async function runVerify(argv: readonly string[], io: CommandIO, env: NodeJS.ProcessEnv): Promise<number> {
  const { positionals, flags } = parseArgs(argv, {
    config: 'string',
    endpoint: 'strings',
    concurrency: 'number',
    timeout: 'number',
    ca: 'string',
    json: 'boolean',
    help: 'boolean',
  });
  if (flags.help) {
    io.out(VERIFY_HELP);
    return 0;
  }
  if (positionals.length) throw new UsageError(`verify takes no arguments (got ${JSON.stringify(positionals[0])}); use --config FILE`);
  const configFile = flags.config as string | undefined;
  if (configFile === undefined && !env.SESSION_PROXY_CONFIG && !env.SESSION_PROXY_CONFIG_REF && !env.SESSION_PROXY_CONFIG_JSON) throw new UsageError('verify needs --config FILE (or SESSION_PROXY_CONFIG)');
  const resolved = resolveConfig(configFile === undefined ? {} : { configFile }, env);
  const options = resolved.options;
  const pools: Array<[string, ProxySpec]> = [];
  if (options.proxy !== undefined) pools.push(['default', options.proxy]);
  for (const [name, spec] of Object.entries(options.accounts ?? {})) pools.push([name, spec]);
  if (pools.length === 0) throw new UsageError('the configuration has no proxies to verify');

  const scrub = new Scrubber();
  // The active proxy as the manager picks it: the first of each pool, or with
  // exclusive (the default when accounts exist) the first one no account
  // before it (in configuration order, the default pool first) holds.
  const exclusive = (options as { exclusive?: boolean }).exclusive ?? Object.keys(options.accounts ?? {}).length > 0;
  const taken = new Set<string>();
  const targets = pools.map(([account, spec]) => {
    const list = (Array.isArray(spec) ? spec : [spec]).map((p) => endpointOf(p, { defaultProtocol: options.defaultProtocol }));
    for (const p of list) scrub.add(p.getPassword());
    const proxy: ProxyEndpoint = (exclusive ? list.find((p) => !taken.has(p.identityKey)) : undefined) ?? list[0]!;
    taken.add(proxy.identityKey);
    return { account, proxy };
  });
  const configured = (options as { egressEndpoints?: readonly string[] }).egressEndpoints;
  const endpoints = (flags.endpoint as string[] | undefined) ?? configured ?? DEFAULT_EGRESS_ENDPOINTS;
  for (const e of endpoints) checkEndpoint(e);
  const timeoutMs = (flags.timeout as number | undefined) ?? 10_000;
  const concurrency = Math.floor((flags.concurrency as number | undefined) ?? 10) || 1;
  const ca = flags.ca === undefined ? undefined : readCa(flags.ca as string);
  const trust = new Trust(options.systemCa ?? false);
  const requestTls: ConnectionOptions | undefined = trust.forTarget(ca ? { ...options.requestTls, ca } : options.requestTls);

  const bar = flags.json ? progress(0) : progress(targets.length, io.stderrStream);
  const results = await mapLimit(targets, concurrency, async (t) => {
    const r = await probe(t.proxy, { endpoints, timeoutMs, requestTls, account: t.account, trust });
    bar.tick(r.ok);
    return r;
  });
  bar.done();

  const byIp = new Map<string, string[]>();
  results.forEach((r, i) => {
    if (r.ip) byIp.set(r.ip, [...(byIp.get(r.ip) ?? []), targets[i]!.account]);
  });
  const rows: VerifyRow[] = targets.map((t, i) => {
    const r = results[i]!;
    const sharing = r.ip ? byIp.get(r.ip)!.filter((a) => a !== t.account) : [];
    return {
      account: t.account,
      proxy: t.proxy.url,
      protocol: t.proxy.protocol,
      ok: r.ok && sharing.length === 0,
      status: r.ok ? (sharing.length ? 'duplicate' : 'ok') : r.status,
      ip: r.ip ?? null,
      latencyMs: r.latencyMs ?? null,
      endpoint: r.endpoint ?? null,
      error: r.error ?? null,
      sameIpAs: sharing,
    };
  });
  const duplicates = [...byIp].filter(([, accounts]) => accounts.length > 1).map(([ip, accounts]) => ({ ip, accounts }));
  const failed = rows.filter((r) => r.status !== 'ok' && r.status !== 'duplicate').length;
  const summary = { total: rows.length, ok: rows.filter((r) => r.ok).length, failed, duplicates: duplicates.length };
  if (flags.json) {
    io.out(scrub.scrub(JSON.stringify({ accounts: rows, duplicates, summary }, null, 2)) + '\n');
  } else {
    const body = table(
      ['ACCOUNT', 'PROXY', 'PROTOCOL', 'EGRESS IP', 'LATENCY', 'STATUS'],
      rows.map((r) => [r.account, r.proxy, r.protocol, r.ip ?? '-', formatLatency(r.latencyMs ?? undefined), r.status === 'duplicate' ? `duplicate (same IP as ${r.sameIpAs.join(', ')})` : r.status]),
    );
    const lines = [body, '', `${rows.length} ${rows.length === 1 ? 'account' : 'accounts'}: ${summary.ok} ok, ${failed} failed, ${duplicates.length} shared ${duplicates.length === 1 ? 'IP' : 'IPs'}`];
    for (const d of duplicates) lines.push(`  ${d.ip} is the egress of ${d.accounts.join(', ')}`);
    const errors = rows.filter((r) => r.error).map((r) => `  ${r.account} ${r.proxy}: ${r.error}`);
    if (errors.length) lines.push('', 'Failures:', ...errors);
    io.out(scrub.scrub(lines.join('\n')) + '\n');
  }
  return failed || duplicates.length ? 1 : 0;
}
