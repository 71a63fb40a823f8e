/**
 * Egress verification: ask IP-echo endpoints over the way the account's
 * traffic really leaves and report the address they saw. The manager hands
 * in a path from the router's decision for that scope (so a probe cannot
 * pass while the app's requests go elsewhere); the CLI goes straight
 * through a proxy. The HTTP exchange uses the original request function
 * over that socket, marked as plumbing, so no hook routes it again.
 */
import { isIP, type Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { state } from '../state.js';
import { EgressMismatchError, EgressUnavailableError, ProxyAuthError, messageWithout } from '../errors.js';
import { redactUrl } from '../proxy/redact.js';
import type { ProxyEndpoint, ProxyInfo } from '../proxy/endpoint.js';
import { openTunnel } from '../tunnel/open-tunnel.js';
import { formatAuthority } from '../tunnel/target.js';
import { secureTunnel } from '../tunnel/secure.js';
import { targetFromUrl, type Target } from '../routing/route.js';
import { directConnect, markPlumbing } from '../plumbing.js';
import type { Trust } from '../trust/trust.js';

/** Public services that answer with the caller's IP, as text or JSON. */
export const DEFAULT_EGRESS_ENDPOINTS: readonly string[] = [
  'https://api.ipify.org?format=json',
  'https://checkip.amazonaws.com/',
  'https://icanhazip.com/',
  'https://ifconfig.me/ip',
];

export interface EgressOptions {
  /** IP-echo endpoints, tried in order until one answers. @default DEFAULT_EGRESS_ENDPOINTS */
  endpoints?: readonly string[];
  /** Fail with EgressMismatchError unless the egress IP equals this. */
  expectedIp?: string;
  /** Per endpoint. @default 10000 */
  timeoutMs?: number;
  /** TLS options for the endpoints (e.g. a test CA). */
  requestTls?: ConnectionOptions;
}

export interface EgressResult {
  readonly account: string;
  readonly proxy: ProxyInfo;
  readonly ip: string;
  readonly endpoint: string;
  readonly latencyMs: number;
}

/** How a probe reaches an endpoint: a tunnel through a proxy, or a direct connection. */
export type EgressPath = (target: Target, signal: AbortSignal) => Promise<Socket>;

/** Straight through `proxy` with the tunnel primitive (the CLI's probes; no health, no gate). */
export const throughProxy = (proxy: ProxyEndpoint, account: string | undefined, trust?: Trust): EgressPath => (target, signal) => openTunnel(proxy, target, { account, signal, trust });

/** No proxy at all (compareDirect): the library's own plumbing. */
export const directPath: EgressPath = (target, signal) => connectDirect(target, signal);

/**
 * Asks the endpoints in order over `path` and reports the first IP seen.
 * `proxy` names the account's active proxy in the result and errors.
 * @throws EgressUnavailableError when none answers (each endpoint's error in `errors`;
 *   after a ProxyAuthError the remaining endpoints are not tried)
 */
export async function probeEgress(account: string, proxy: ProxyEndpoint, path: EgressPath, options: EgressOptions = {}): Promise<EgressResult> {
  const endpoints = options.endpoints ?? DEFAULT_EGRESS_ENDPOINTS;
  const errors: unknown[] = [];
  for (const endpoint of endpoints) {
    const started = performance.now();
    try {
      const ip = await askIp(endpoint, path, options);
      const result: EgressResult = { account, proxy: proxy.info(), ip, endpoint, latencyMs: Math.round(performance.now() - started) };
      if (options.expectedIp !== undefined && ip !== options.expectedIp) {
        throw new EgressMismatchError(`egress IP ${ip} does not match the expected ${options.expectedIp}`, { account, proxy });
      }
      return result;
    } catch (err) {
      if (err instanceof EgressMismatchError) throw err;
      errors.push(err);
      // The proxy refused the credentials: every endpoint would get the same answer (and count against its health).
      if (err instanceof ProxyAuthError) break;
    }
  }
  // Our errors are redacted already; the others (sockets, HTTP) are scrubbed in case one quotes a URL.
  const failures = errors.map((err, i) => {
    const { host, port } = targetFromUrl(endpoints[i]!);
    return `${endpoints[i]}: ${redactUrl(messageWithout(err, { account, proxy, target: formatAuthority(host, port) }))}`;
  });
  const untried = endpoints.length - errors.length;
  const rest = untried > 0 ? ` (the proxy refused the credentials: ${untried} other endpoint${untried === 1 ? ' was' : 's were'} not tried)` : '';
  throw new EgressUnavailableError(`no egress endpoint answered: ${failures.join('; ')}${rest}`, { account, proxy, errors });
}

/** One endpoint, over `path`. */
export async function askIp(endpoint: string, path: EgressPath, options: EgressOptions): Promise<string> {
  const url = new URL(endpoint);
  const secure = url.protocol === 'https:';
  const target = targetFromUrl(url);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const signal = AbortSignal.timeout(timeoutMs);
  const raw = await path(target, signal);
  const socket = secure ? secureTunnel(raw, target.host, { ...options.requestTls, ALPNProtocols: ['http/1.1'] }) : raw;
  const body = await new Promise<string>((resolve, reject) => {
    const req = state.originals.httpRequest(
      markPlumbing({
        host: target.host,
        port: target.port,
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        headers: { accept: 'application/json, text/plain', connection: 'close', host: url.host },
        createConnection: () => socket,
        signal,
      }),
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { if (text.length < 4096) text += c; });
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`HTTP ${res.statusCode}`))));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  }).finally(() => socket.destroy());
  return parseIp(body);
}

function connectDirect(target: Target, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = directConnect({ host: target.host, port: target.port, signal });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Text (`1.2.3.4\n`) or JSON (`{"ip": …}`, `{"origin": …}`, `{"query": …}`). */
export function parseIp(body: string): string {
  const text = body.trim();
  let candidate = text;
  if (text.startsWith('{')) {
    const json = JSON.parse(text) as Record<string, unknown>;
    candidate = String(json.ip ?? json.origin ?? json.query ?? json.address ?? '');
  }
  candidate = candidate.replace(/^::ffff:/, '');
  if (!isIP(candidate)) throw new Error(`endpoint answered something that is not an IP address: ${JSON.stringify(text.slice(0, 60))}`);
  return candidate;
}

