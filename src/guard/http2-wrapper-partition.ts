/**
 * got's `http2: true` — http2-wrapper's Agent, its `globalAgent` unless the
 * app passes one — serves every route on sessions of its own.
 *
 * Why: the Agent pools sessions by `normalizeOptions(options)` and origin. A
 * request made while a session for its key is still connecting is queued on
 * that session's entry and resolved later from the session's
 * 'remoteSettings' / 'origin' listeners or a stream's 'close' — in the async
 * context of whoever created the session. So a bob request queued behind
 * alice's connecting session called `session.request()` in alice's context:
 * the http2 guard saw alice on alice's connection and let it through, and
 * bob's request left from alice's IP. Only `getSession` still runs in the
 * caller's context, so that is where the route is decided.
 *
 * How: every request enters `Agent.prototype.getSession(origin, options,
 * listeners)` synchronously from its caller (Agent#request, ClientRequest's
 * socket reuse, the agent's own re-queueing of listeners a session could not
 * take, which passes the same options on). Patched, it:
 * 1. decides the route now (Router.routeKey of the origin), unless the
 *    options already carry one, and passes on a copy of the options stamped
 *    with it (the agent's own `{...options}` copies keep symbol keys);
 * 2. `normalizeOptions` appends the stamp and this install's generation to
 *    the session key: each route has its own sessions, queue entries and TLS
 *    session cache (a resumed TLS session would link two routes too), and
 *    sessions of before the install, or of an earlier one, are never picked;
 * 3. the stamp is a route mark (guard/route-mark.ts) too, so a TLS connection
 *    the agent opens later — an entry deferred by `maxSessions` and run from
 *    another session's 'close' — is still decided for the stamped route;
 * 4. the call runs in the route's scope, and so does each listener's
 *    `resolve`: the `session.request()` it makes is checked by the http2
 *    guard against the route the request was made for, wherever the
 *    session's event fires.
 *
 * Limits: an Agent subclass whose own `normalizeOptions` drops the route
 * (does not call super) has its requests refused (LeakBlockedError). An
 * app's own `createConnection` (http2-wrapper's `proxies`) that
 * the agent runs deferred runs in another route's context; its connection
 * then serves that route, and the http2 guard refuses the request
 * (LeakBlockedError) — never the wrong IP. A copy whose Agent lacks
 * `getSession`/`normalizeOptions` is not understood: requests through it are
 * refused with LeakBlockedError, with a warning (code
 * SESSION_PROXY_HTTP2_WRAPPER_INTERNALS); the canary test fails on it.
 *
 * Uninstall puts the prototype methods back; sessions keyed by route stay in
 * the agent until they idle out, never picked by a later request.
 */
import { LeakBlockedError } from '../errors.js';
import { targetFromUrl, type RouteKey, type Target } from '../routing/route.js';
import { watchModules } from '../layers/module-watcher.js';
import { replaceMethod, type Restore } from '../layers/layer.js';
import { withRouteMark } from './route-mark.js';
import { accountOfRoute, enterRoute, installId } from './enter-route.js';

export interface Http2WrapperPartitionDeps {
  /** The route a request to `target` created now belongs to (Router.routeKey). */
  readonly routeKey: (target: Target) => RouteKey;
}

type Options = Record<string | symbol, unknown>;
interface Listener {
  resolve(session: unknown): void;
  reject(error: unknown): void;
  [kListenerRoute]?: RouteKey;
}
type GetSession = (this: object, origin: unknown, options?: Options, listeners?: Listener[]) => Promise<unknown>;
type Normalize = (this: object, options?: Options) => string;
type AgentClass = (abstract new (...args: never[]) => object) & { prototype: Record<string, unknown> };

/** Stamped on the options of every request whose route was decided. */
const kRoute = Symbol('session-proxy.http2-wrapper-route');
const kListenerRoute = Symbol('session-proxy.http2-wrapper-listener');
/** Counts installs: part of the session key, so an earlier install's sessions are never picked. */
/** http2-wrapper's index or its agent.js: an Agent class of its own (a static symbol, or the index's other exports). */
export function looksLikeHttp2Wrapper(e: Record<string, unknown>): boolean {
  if (typeof e.Agent !== 'function') return false;
  return typeof (e.Agent as { kCurrentStreamCount?: unknown }).kCurrentStreamCount === 'symbol' || (typeof e.auto === 'function' && typeof e.ClientRequest === 'function' && typeof e.globalAgent === 'object');
}

/** What this partition needs from a copy's Agent and does not find; empty when it can be partitioned. */
export function http2WrapperProblems(e: Record<string, unknown>): string[] {
  const proto = (e.Agent as AgentClass).prototype;
  const problems: string[] = [];
  if (typeof proto.getSession !== 'function') problems.push('Agent.prototype.getSession(origin, options, listeners) is gone');
  if (typeof proto.normalizeOptions !== 'function') problems.push('Agent.prototype.normalizeOptions(options) is gone');
  return problems;
}

export function installHttp2WrapperPartition(deps: Http2WrapperPartitionDeps): Restore {
  const partition = new Http2WrapperPartition(deps, installId());
  const unwatch = watchModules({ quick: (e) => typeof e.Agent === 'function', offer: (e, source) => partition.offer(e, source) });
  return () => {
    unwatch();
    partition.dispose();
  };
}

class Http2WrapperPartition {
  private active = true;
  private readonly seen = new WeakSet<object>();
  private readonly restores: Restore[] = [];
  /** The patched normalizeOptions of each copy: an Agent subclass that overrides it is checked per request. */
  private readonly ours = new WeakSet<object>();

  constructor(
    private readonly deps: Http2WrapperPartitionDeps,
    private readonly generation: string,
  ) {}

  offer(e: Record<string, unknown>, source: string): void {
    if (!looksLikeHttp2Wrapper(e)) return;
    const Agent = e.Agent as AgentClass;
    // The index and agent.js export one class: patch it once.
    if (this.seen.has(Agent)) return;
    this.seen.add(Agent);
    const problems = http2WrapperProblems(e);
    if (problems.length) return this.refuseAll(Agent, source, problems);
    const self = this;
    const getSession = Agent.prototype.getSession as GetSession;
    const normalize = Agent.prototype.normalizeOptions as Normalize;
    const routedNormalizeOptions = function routedNormalizeOptions(this: object, options?: Options): string {
      const key = normalize.call(this, options);
      const route = self.active ? (options?.[kRoute] as RouteKey | undefined) : undefined;
      return route === undefined ? key : key + self.suffix(route);
    };
    this.ours.add(routedNormalizeOptions);
    this.restores.push(
      replaceMethod(Agent.prototype, 'getSession', function routedGetSession(this: object, origin: unknown, options?: Options, listeners?: Listener[]) {
        return self.active ? self.getSession(this, getSession, origin, options, listeners) : getSession.call(this, origin, options, listeners);
      }),
      replaceMethod(Agent.prototype, 'normalizeOptions', routedNormalizeOptions),
    );
  }

  /** What the route adds to a session key. */
  private suffix(route: RouteKey): string {
    return `:session-proxy#${this.generation}:${JSON.stringify(route)}`;
  }

  dispose(): void {
    this.active = false;
    for (const restore of this.restores.reverse()) restore();
    this.restores.length = 0;
  }

  private getSession(agent: object, original: GetSession, origin: unknown, options: Options | undefined, listeners: Listener[] | undefined): Promise<unknown> {
    let route = options?.[kRoute] as RouteKey | undefined;
    if (route === undefined) {
      const target = targetOf(origin);
      // An origin it cannot parse: the agent rejects it itself.
      if (!target) return original.call(agent, origin, options, listeners);
      route = this.deps.routeKey(target);
      options = withRouteMark({ ...options, [kRoute]: route }, { route, account: accountOfRoute(route), decided: false });
    }
    const r = route;
    const normalize = (agent as { normalizeOptions?: unknown }).normalizeOptions;
    if (typeof normalize === 'function' && !this.ours.has(normalize) && !String((normalize as Normalize).call(agent, options)).includes(this.suffix(r))) {
      // An Agent subclass whose own normalizeOptions drops the route: its sessions would be shared between routes.
      const error = new LeakBlockedError(
        `this http2-wrapper Agent (${agent.constructor.name}) overrides normalizeOptions without the route session-proxy keys its sessions by, so routes would share its sessions; the request is refused. Call super.normalizeOptions(options) in the override, or use one Agent per account`,
        { account: accountOfRoute(r) },
      );
      return refuse(error, listeners);
    }
    const routed = Array.isArray(listeners) ? listeners.map((l) => inRoute(l, r)) : listeners;
    return enterRoute(r, () => original.call(agent, origin, options, routed));
  }

  /** A copy this file does not understand: never guess whose a queued request is. */
  private refuseAll(Agent: AgentClass, source: string, problems: string[]): void {
    const why = `http2-wrapper at ${source} is not the one session-proxy knows (${problems.join('; ')})`;
    process.emitWarning(`${why}: requests through its Agent (got http2: true) are refused rather than risk leaving from another account's IP.`, {
      code: 'SESSION_PROXY_HTTP2_WRAPPER_INTERNALS',
    });
    for (const key of ['request', 'getSession'] as const) {
      const original = Agent.prototype[key];
      if (typeof original !== 'function') continue;
      const self = this;
      this.restores.push(
        replaceMethod(Agent.prototype, key, function refused(this: object, ...args: unknown[]) {
          if (!self.active) return (original as (...a: unknown[]) => unknown).apply(this, args);
          const error = new LeakBlockedError(`${why}; its queued requests could leave from another route's connection, so they are refused. Use got without http2, or one http2-wrapper Agent per account`);
          return refuse(error, key === 'getSession' ? (args[2] as Listener[] | undefined) : undefined);
        }),
      );
    }
  }
}

/**
 * getSession's way of failing: through the listeners it was given (their
 * caller ignores the promise it returns, so a rejection there would be
 * unhandled), else through that promise.
 */
function refuse(error: Error, listeners: Listener[] | undefined): Promise<never> | Promise<void> {
  if (!Array.isArray(listeners) || listeners.length === 0) return Promise.reject(error);
  for (const l of listeners) l.reject(error);
  return Promise.resolve();
}

/** `listener`, resolved in `route`'s scope: its `session.request()` is the route's, whichever session event runs it. */
function inRoute(listener: Listener, route: RouteKey): Listener {
  if (listener[kListenerRoute] === route) return listener;
  return {
    resolve: (session: unknown) => enterRoute(route, () => listener.resolve(session)),
    reject: (error: unknown) => listener.reject(error),
    [kListenerRoute]: route,
  };
}

function targetOf(origin: unknown): Target | undefined {
  try {
    if (typeof origin === 'string' || origin instanceof URL) return targetFromUrl(origin);
  } catch {
    // not a URL
  }
  return undefined;
}
