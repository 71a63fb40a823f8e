/**
 * Layer 3 — http / https. `request` and `get` of both modules are replaced
 * (and `syncBuiltinESMExports()` makes ESM named imports see it). Each call
 * is routed when it is created, in the caller's async context:
 * - proxy → the (account, proxy) keep-alive agent is *forced* in, replacing
 *   any agent the caller passed and defeating `createConnection` (ws passes
 *   one); every connection, upgrades included, is a CONNECT/SOCKS tunnel;
 * - direct → the call goes through untouched;
 * - blocked → the request fails with LeakBlockedError through its agent, so
 *   the caller sees an ordinary `error` event.
 * Requests addressed to a configured proxy itself (env-reading clients) are
 * first turned back into requests for their real target (env-proxied.ts).
 */
// Default imports: the real module objects (a namespace import is read-only in
// ESM and a copy in the CJS build, so patching it would reach nobody).
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { state } from '../state.js';
import { isMarkedPlumbing } from '../plumbing.js';
import type { ConnectionPools } from '../pools/connection-pools.js';
import type { Router } from '../routing/router.js';
import { BYPASS_ROUTE, withScheme, type Target } from '../routing/route.js';
import { isRuleRoute } from '../routing/rules.js';
import { normalizeRequestArgs, requestTarget, type RequestOptions, type ResponseCallback } from './http-args.js';
import { recoverProxiedTarget } from './env-proxied.js';
import { connectViaAccountProxy } from './connect-rewrite.js';
import { BYPASS_MARK, withDecided, withRouteMark } from '../guard/route-mark.js';
import { patch, restoreAll, type Restore } from './layer.js';
import type { Trust } from '../trust/trust.js';

export interface HttpLayerDeps {
  readonly router: Router;
  readonly pools: ConnectionPools;
  /** Is a configured proxy (of any account) listening at this address? */
  readonly isProxyAddress: (target: Target) => boolean;
  /** TLS options for targets, used last when the agent we force in replaces the caller's (see inheritAgentTls). */
  readonly requestTls?: import('node:tls').ConnectionOptions;
  /** `systemCa`: adds the OS's CAs to what an https request trusts (trust.ts). */
  readonly trust?: Trust;
  /** Called on every routed request (re-asserts the undici dispatcher). */
  readonly onRequest?: () => void;
}

type RequestFn = typeof http.request;

export function installHttp(deps: HttpLayerDeps): Restore {
  const o = state.originals;
  const originalFor = (secure: boolean): RequestFn => (secure ? o.httpsRequest : o.httpRequest) as RequestFn;

  const route = (secure: boolean, args: unknown[]): http.ClientRequest => {
    if (isMarkedPlumbing(args[0]) || isMarkedPlumbing(args[1])) return (originalFor(secure) as (...a: unknown[]) => http.ClientRequest)(...args);
    deps.onRequest?.();
    let { options, callback } = normalizeRequestArgs(args);
    if (options.socketPath) return originalFor(secure)(options, callback);

    let target = requestTarget(options, secure);
    if (deps.isProxyAddress(target)) {
      const recovered = recoverProxiedTarget(options);
      if (recovered.kind === 'absolute') {
        options = recovered.options;
        secure = recovered.secure;
        target = requestTarget(options, secure);
      } else if (recovered.kind === 'connect') {
        return connectViaAccountProxy(deps, options, callback, { host: recovered.host, port: recovered.port });
      }
    }
    return send(deps, originalFor(secure), secure, options, callback, target);
  };

  const patchedHttpRequest = function request(...args: unknown[]) { return route(false, args); } as RequestFn;
  const patchedHttpsRequest = function request(...args: unknown[]) { return route(true, args); } as RequestFn;
  const getVia = (request: RequestFn): RequestFn =>
    function get(...args: unknown[]) {
      const req = (request as (...a: unknown[]) => http.ClientRequest)(...args);
      req.end();
      return req;
    } as RequestFn;

  return restoreAll([
    patch(http, 'request', patchedHttpRequest, { esm: true }),
    patch(http, 'get', getVia(patchedHttpRequest), { esm: true }),
    patch(https, 'request', patchedHttpsRequest, { esm: true }),
    patch(https, 'get', getVia(patchedHttpsRequest), { esm: true }),
  ]);
}

function send(deps: HttpLayerDeps, original: RequestFn, secure: boolean, options: RequestOptions, callback: ResponseCallback | undefined, target: Target): http.ClientRequest {
  // The scheme is known here (rules may name one): ws sends an Upgrade: websocket request.
  const action = deps.router.decide(withScheme(target, secure, isWebSocketUpgrade(options)), 'http');
  if (action.kind === 'fail') return failWith(original, options, callback, action.error);
  if (action.kind === 'pass') {
    // Bypass connections serve everyone: nothing to record. Otherwise marked as decided, so the
    // socket hook only records the route the connection serves.
    // The Agent partition and the socket hook read the decided mark from the synchronous slot.
    if (action.route === BYPASS_ROUTE) return withDecided(BYPASS_MARK, () => original(options, callback));
    return original(withRouteMark(options, { route: action.route, account: deps.router.currentAccount(), decided: true }), callback);
  }
  const tlsOptions = inheritAgentTls(options, secure, deps.requestTls);
  let routed: RequestOptions = { ...(secure && deps.trust ? deps.trust.forTarget(tlsOptions as import('node:tls').ConnectionOptions) : tlsOptions), agent: deps.pools.agent(action.account, action.proxy, secure) };
  delete (routed as { createConnection?: unknown }).createConnection;
  // A rule's route may depend on the scheme, which the Agent partition cannot see: tag the request with it.
  if (isRuleRoute(action.route)) routed = withRouteMark(routed, { route: action.route, account: deps.router.currentAccount(), decided: true });
  return original(routed, callback);
}

function isWebSocketUpgrade(options: RequestOptions): boolean {
  const headers = options.headers as Record<string, unknown> | readonly unknown[] | undefined;
  if (!headers) return false;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === 'upgrade' && /websocket/i.test(String(headers[i + 1]))) return true;
    return false;
  }
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === 'upgrade' && /websocket/i.test(String(v))) return true;
  return false;
}

const AGENT_TLS_KEYS = ['ca', 'secureContext', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername', 'ciphers', 'minVersion', 'maxVersion', 'checkServerIdentity'] as const;

/**
 * The agent we force in replaces the caller's, but not its TLS settings: a
 * caller's `new https.Agent({ ca })` (node-fetch) keeps trusting its CA. The
 * caller's agent may also sit in follow-redirects' `agents` (axios puts the
 * user's httpsAgent there and an env-proxy tunnelling agent in `agent`).
 * Request options win over either agent's; the manager's `requestTls` comes
 * last (env-proxy tunnelling agents such as axios's keep the user's CA in a
 * closure no one can read). `ca` and `secureContext` decide trust together:
 * the first source that sets either gives both, so a later `secureContext`
 * (which tls.connect prefers) can never silently replace an earlier `ca`.
 */
function inheritAgentTls(options: RequestOptions, secure: boolean, requestTls: object | undefined): RequestOptions {
  const agents = (options as { agents?: Record<string, unknown> }).agents;
  const candidates = [options.agent, agents?.[secure ? 'https' : 'http'], secure ? { options: requestTls } : undefined];
  const out: Record<string, unknown> = { ...options };
  for (const agent of candidates) {
    const agentOptions = (agent as { options?: Record<string, unknown> } | undefined)?.options;
    if (!agentOptions) continue;
    const trustSet = out.ca !== undefined || out.secureContext !== undefined;
    for (const k of AGENT_TLS_KEYS) {
      if (out[k] !== undefined || agentOptions[k] === undefined) continue;
      if (trustSet && (k === 'ca' || k === 'secureContext')) continue;
      out[k] = agentOptions[k];
    }
  }
  return out as RequestOptions;
}

/** An agent whose every connection fails with `error`: the request emits it as an ordinary 'error'. */
class FailingAgent extends http.Agent {
  constructor(private readonly error: Error) {
    super({ keepAlive: false });
  }
  override createConnection(_options: unknown, cb?: (err: Error | null, socket: Socket) => void): undefined {
    process.nextTick(() => cb?.(this.error, undefined as never));
    return undefined;
  }
}

function failWith(original: RequestFn, options: RequestOptions, callback: ResponseCallback | undefined, error: Error): http.ClientRequest {
  const agent = new FailingAgent(error);
  (agent as { protocol?: string }).protocol = (original === state.originals.httpsRequest ? 'https:' : 'http:');
  const routed: RequestOptions = { ...options, agent };
  delete (routed as { createConnection?: unknown }).createConnection;
  return original(routed, callback);
}
