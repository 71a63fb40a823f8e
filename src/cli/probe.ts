/**
 * One egress probe through one proxy, for check and verify: the IP-echo
 * endpoints are asked through the proxy in order (verify.ts's askIp, the
 * primitive probeEgress uses) so a failure keeps its type and can be told
 * apart: auth failed, refused, unreachable, timeout, bad answer.
 */
import type { ConnectionOptions } from 'node:tls';
import { askIp, throughProxy } from '../egress/verify.js';
import type { Trust } from '../trust/trust.js';
import { ProxyAuthError, ProxyConnectError, SessionProxyError, messageWithout } from '../errors.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';

export type ProbeStatus = 'ok' | 'auth-failed' | 'refused' | 'unreachable' | 'timeout' | 'proxy-error' | 'bad-answer' | 'error';

export interface ProbeResult {
  readonly ok: boolean;
  readonly status: ProbeStatus;
  readonly ip: string | undefined;
  readonly latencyMs: number | undefined;
  /** The endpoint that answered (or the last one tried). */
  readonly endpoint: string | undefined;
  /** Redacted failure message, without the account and proxy the row already names. */
  readonly error: string | undefined;
}

export interface ProbeOptions {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
  readonly requestTls?: ConnectionOptions;
  readonly account?: string;
  /** `systemCa` of the configuration: for https proxies (requestTls comes with it already). */
  readonly trust?: Trust;
}

export async function probe(proxy: ProxyEndpoint, o: ProbeOptions): Promise<ProbeResult> {
  let last: { status: ProbeStatus; error: string; endpoint: string } | undefined;
  for (const endpoint of o.endpoints) {
    const started = performance.now();
    try {
      const ip = await askIp(endpoint, throughProxy(proxy, o.account, o.trust), { timeoutMs: o.timeoutMs, requestTls: o.requestTls });
      return { ok: true, status: 'ok', ip, latencyMs: Math.round(performance.now() - started), endpoint, error: undefined };
    } catch (err) {
      last = { status: classify(err), error: describe(err, o.account, proxy), endpoint };
      // The proxy itself failed: other endpoints would fail the same way.
      if (last.status === 'auth-failed' || last.status === 'unreachable') break;
    }
  }
  return { ok: false, status: last?.status ?? 'error', ip: undefined, latencyMs: undefined, endpoint: last?.endpoint, error: last?.error ?? 'no endpoint to ask' };
}

export function classify(err: unknown): ProbeStatus {
  if (err instanceof ProxyAuthError) return 'auth-failed';
  const name = (err as Error)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return 'timeout';
  if (err instanceof ProxyConnectError) {
    if (/within \d+ ms/.test(err.message)) return 'timeout';
    if (err.status !== undefined) return 'refused';
    const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EAI_AGAIN') return 'unreachable';
    return 'proxy-error';
  }
  if (err instanceof SessionProxyError) return 'error';
  const message = String((err as Error)?.message ?? err);
  if (/^HTTP \d+/.test(message) || /not an IP address/.test(message)) return 'bad-answer';
  return 'error';
}

function describe(err: unknown, account: string | undefined, proxy: ProxyEndpoint): string {
  if (err instanceof SessionProxyError) return messageWithout(err, { account, proxy });
  const e = err as Error;
  if (e?.name === 'TimeoutError') return 'timed out';
  return e?.message ? String(e.message) : String(err);
}
