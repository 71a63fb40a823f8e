/**
 * `session-proxy check <proxy | file>...`: connect through each proxy, ask an
 * IP-echo endpoint, print protocol, egress IP, latency and status per proxy.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { ProxyUrlError, messageWithout } from '../errors.js';
import { DEFAULT_EGRESS_ENDPOINTS } from '../egress/verify.js';
import { PROXY_PROTOCOLS, isProxyProtocol, type ProxyEndpoint, type ProxyProtocol } from '../proxy/endpoint.js';
import { parseProxy } from '../proxy/parse.js';
import { UsageError, parseArgs } from './args.js';
import { Scrubber, formatLatency, mapLimit, progress, table } from './output.js';
import { probe, type ProbeResult } from './probe.js';
import type { CommandIO } from './io.js';

export const CHECK_HELP = `Usage: session-proxy check <proxy | file>... [options]

Connects through each proxy, asks an IP-echo endpoint what address it sees,
and prints the proxy (password masked), protocol, egress IP, latency and
status. A file holds one proxy per line: a URL (http://user:pass@host:port,
socks5h://…), host:port or host:port:user:pass; blank lines and lines
starting with # are skipped. "-" reads the list from stdin.

Options:
  --endpoint URL      IP-echo endpoint, answering with the caller's IP as text
                      or JSON; repeat to try several in order
                      (default: ${DEFAULT_EGRESS_ENDPOINTS.join(', ')})
  --concurrency N     proxies checked at once (default 10)
  --timeout MS        per proxy connect and per endpoint request (default 10000)
  --ca FILE           extra CA (PEM) for https endpoints and https proxies
  --protocol P        scheme of host:port lines: ${PROXY_PROTOCOLS.join(', ')} (default http)
  --json              machine-readable output on stdout
  -h, --help          this help

Exit status: 0 all proxies work, 1 any failed, 2 usage error.
`;

interface Entry {
  /** Where it came from: "arg 1", "proxies.txt:3". */
  source: string;
  proxy?: ProxyEndpoint;
  /** Redacted text for an entry that did not parse. */
  shown?: string;
  invalid?: string;
}

export interface CheckRow {
  source: string;
  proxy: string;
  protocol: string | null;
  host: string | null;
  port: number | null;
  label: string | null;
  ok: boolean;
  status: string;
  ip: string | null;
  latencyMs: number | null;
  endpoint: string | null;
  error: string | null;
}

export async function runCheck(argv: readonly string[], io: CommandIO): Promise<number> {
  const { positionals, flags } = parseArgs(argv, {
    endpoint: 'strings',
    concurrency: 'number',
    timeout: 'number',
    ca: 'string',
    protocol: 'string',
    json: 'boolean',
    help: 'boolean',
  });
  if (flags.help) {
    io.out(CHECK_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('check needs at least one proxy or file');
  const protocol = flags.protocol as string | undefined;
  if (protocol !== undefined && !isProxyProtocol(protocol)) throw new UsageError(`--protocol must be one of ${PROXY_PROTOCOLS.join(', ')}`);
  const timeoutMs = (flags.timeout as number | undefined) ?? 10_000;
  const concurrency = Math.floor((flags.concurrency as number | undefined) ?? 10) || 1;
  const endpoints = (flags.endpoint as string[] | undefined) ?? DEFAULT_EGRESS_ENDPOINTS;
  for (const e of endpoints) checkEndpoint(e);
  const ca = flags.ca === undefined ? undefined : readCa(flags.ca as string);
  const scrub = new Scrubber();
  const parse = (input: string): ProxyEndpoint =>
    parseProxy(ca ? { url: input, tls: { ca } } : input, { defaultProtocol: (protocol as ProxyProtocol | undefined) ?? 'http', connectTimeout: timeoutMs });

  const entries: Entry[] = [];
  for (const [i, arg] of positionals.entries()) {
    const isStdin = arg === '-';
    const isFile = !isStdin && !arg.includes('://') && existsSync(arg) && statSync(arg).isFile();
    if (isStdin || isFile) {
      const text = isStdin ? await io.readStdin() : readFileSync(arg, 'utf8');
      const name = isStdin ? 'stdin' : arg;
      text.split(/\r\n|\r|\n/).forEach((line, n) => {
        if (line.trim() === '' || line.trimStart().startsWith('#')) return;
        const source = `${name}:${n + 1}`;
        try {
          const proxy = parse(line);
          scrub.add(proxy.getPassword());
          entries.push({ source, proxy });
        } catch (err) {
          if (!(err instanceof ProxyUrlError)) throw err;
          entries.push({ source, shown: err.proxy ?? source, invalid: messageWithout(err, { proxy: err.proxy }) });
        }
      });
      continue;
    }
    if (!arg.includes('://') && /[\\/]|\.(txt|list|csv)$/i.test(arg)) throw new UsageError(`no such file: ${arg}`);
    try {
      const proxy = parse(arg);
      scrub.add(proxy.getPassword());
      entries.push({ source: `arg ${i + 1}`, proxy });
    } catch (err) {
      if (err instanceof ProxyUrlError) throw new UsageError(`argument ${i + 1} is neither a file nor a proxy: ${err.message}`);
      throw err;
    }
  }
  if (entries.length === 0) throw new UsageError('no proxies to check (the files hold none)');

  const bar = flags.json ? progress(0) : progress(entries.length, io.stderrStream);
  const requestTls = ca ? { ca } : undefined;
  const results = await mapLimit(entries, concurrency, async (entry): Promise<ProbeResult | undefined> => {
    if (!entry.proxy) {
      bar.tick(false);
      return undefined;
    }
    // No account: these proxies belong to no account, and the user named none.
    const r = await probe(entry.proxy, { endpoints, timeoutMs, requestTls });
    bar.tick(r.ok);
    return r;
  });
  bar.done();

  const rows: CheckRow[] = entries.map((entry, i) => {
    const r = results[i];
    if (!entry.proxy || !r) {
      return { source: entry.source, proxy: entry.shown ?? entry.source, protocol: null, host: null, port: null, label: null, ok: false, status: 'invalid', ip: null, latencyMs: null, endpoint: null, error: entry.invalid ?? 'invalid' };
    }
    const p = entry.proxy;
    return { source: entry.source, proxy: p.url, protocol: p.protocol, host: p.host, port: p.port, label: p.label, ok: r.ok, status: r.status, ip: r.ip ?? null, latencyMs: r.latencyMs ?? null, endpoint: r.endpoint ?? null, error: r.error ?? null };
  });
  const failed = rows.filter((r) => !r.ok).length;
  if (flags.json) {
    io.out(scrub.scrub(JSON.stringify({ results: rows, summary: { total: rows.length, ok: rows.length - failed, failed } }, null, 2)) + '\n');
  } else {
    const body = table(
      ['PROXY', 'PROTOCOL', 'EGRESS IP', 'LATENCY', 'STATUS'],
      rows.map((r) => [r.proxy, r.protocol ?? '-', r.ip ?? '-', formatLatency(r.latencyMs ?? undefined), r.status]),
    );
    const errors = rows.filter((r) => r.error).map((r) => `  ${r.proxy} (${r.source}): ${r.error}`);
    const summary = `${rows.length} ${rows.length === 1 ? 'proxy' : 'proxies'}: ${rows.length - failed} ok, ${failed} failed`;
    io.out(scrub.scrub([body, '', summary, ...(errors.length ? ['', 'Failures:', ...errors] : [])].join('\n')) + '\n');
  }
  return failed ? 1 : 0;
}

export function checkEndpoint(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`--endpoint must be an http(s) URL, got ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--endpoint must be an http(s) URL, got ${JSON.stringify(url)}`);
}

export function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--ca ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`);
  }
}
