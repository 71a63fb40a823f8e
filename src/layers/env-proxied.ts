/**
 * Requests an env-reading client (axios, grpc-js, anything on proxy-from-env)
 * addressed to a configured proxy *itself*, because we exported the default
 * proxy in HTTP(S)_PROXY. Inside an account scope that would leave through the
 * default proxy; outside, through a tunnel inside a tunnel. Like
 * global-agent's addRequest, recover the real target — from the absolute URI
 * (`GET http://target/path`) or the CONNECT authority — and route *that*.
 */
import type { RequestOptions } from './http-args.js';
import { withoutHeaders } from './http-args.js';
import { unbracket } from '../routing/route.js';

export type Recovered =
  | { kind: 'absolute'; options: RequestOptions; secure: boolean }
  | { kind: 'connect'; host: string; port: number }
  | { kind: 'none' };

export function recoverProxiedTarget(options: RequestOptions): Recovered {
  const method = String(options.method ?? 'GET').toUpperCase();
  const path = String(options.path ?? '/');
  if (method === 'CONNECT') {
    const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(path);
    return m ? { kind: 'connect', host: unbracket(m[1]), port: Number(m[2]) } : { kind: 'none' };
  }
  if (!/^https?:\/\//i.test(path)) return { kind: 'none' };
  let url: URL;
  try {
    url = new URL(path);
  } catch {
    return { kind: 'none' };
  }
  const secure = url.protocol === 'https:';
  const rewritten: RequestOptions = {
    ...withoutHeaders(options, ['proxy-authorization']),
    protocol: url.protocol,
    host: url.hostname,
    hostname: url.hostname,
    port: url.port ? Number(url.port) : secure ? 443 : 80,
    path: `${url.pathname}${url.search}`,
  };
  delete (rewritten as { auth?: unknown }).auth;
  return { kind: 'absolute', options: rewritten, secure };
}
