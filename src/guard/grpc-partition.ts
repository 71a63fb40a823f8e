/**
 * A grpc-js channel (a Client's, or `new grpc.Channel()`) shared by several
 * routes serves each on channels and connections of its own.
 *
 * Why: grpc-js keeps a process-wide subchannel pool keyed by target, channel
 * options and credentials, so two clients of one target share a connection,
 * and one client shared by alice and bob has one connection anyway. Calls
 * started while it connects wait in the channel's pick queue and are started
 * later from a connectivity-state callback — in the context of whoever opened
 * the connection. The http2 guard then saw that opener's route on the
 * opener's connection and let the call through: bob's call left from alice's
 * IP. Only `createCall` still runs in the caller's context.
 *
 * How (patched on each copy's `ChannelImplementation` and
 * `Http2SubchannelConnector`, found by layers/module-watcher.ts):
 * 1. `ChannelImplementation.prototype.createCall` decides the call's route
 *    now (Router.routeKey of the channel's target — the real one, also when
 *    grpc-js maps it onto HTTPS_PROXY) and hands the call to the channel's
 *    *twin* for that route: a ChannelImplementation of the same copy, target,
 *    credentials and options, plus the option `session-proxy.route`, created
 *    lazily. The app's own channel becomes a front that never carries a call.
 *    That option is part of the subchannel pool's key, so every route of
 *    every client has subchannels (connections) of its own, and twins of two
 *    clients share one only within one route, as the pool intends;
 * 2. the twin's work runs in the route's scope, and
 *    `Http2SubchannelConnector.prototype.connect` — which receives the
 *    subchannel's options — opens every connection in the route its option
 *    names, whichever timer or callback starts it. Through HTTPS_PROXY that
 *    is the http.request CONNECT the env-CONNECT stand-in answers
 *    (layers/connect-rewrite.ts), otherwise the socket hook. A connection
 *    whose options name no route of this install is refused
 *    (LeakBlockedError): its channel was not partitioned;
 * 3. `getConnectivityState` and `watchConnectivityState` answer for the
 *    caller's route (its twin), so `waitForReady` waits for the connection
 *    the caller's calls will use; `close` closes the twins too.
 *
 * Every call of one route is thus queued, picked and started on connections
 * of that route only; the http2 guard still checks each stream.
 *
 * Limits: a channel that is not a ChannelImplementation (an app's own Channel
 * implementation passed as `channelOverride`), or a copy whose
 * ChannelImplementation has no createCall, is not partitioned, and the
 * connections of its subchannels are refused (point 2). A
 * ChannelImplementation without the internals a twin is built from
 * (`internalChannel` with getOptions/getTarget/credentials) refuses calls
 * with LeakBlockedError. Without `Http2SubchannelConnector.prototype.connect`
 * a twin's connection is routed by the context that starts it (a warning
 * says so). The canary test fails on any of these.
 * Calls in flight when uninstall closes the twins are ended by grpc-js's
 * graceful close.
 */
import { LeakBlockedError } from '../errors.js';
import { state } from '../state.js';
import { BYPASS_ROUTE, DEFAULT_ROUTE, unbracket, type RouteKey, type Target } from '../routing/route.js';
import { watchModules } from '../layers/module-watcher.js';
import { replaceMethod, type Restore } from '../layers/layer.js';
import { enterRoute, installId } from './enter-route.js';

export interface GrpcPartitionDeps {
  /** The route a call to `target` created now belongs to (Router.routeKey). */
  readonly routeKey: (target: Target) => RouteKey;
}

/** The channel option naming a twin's route: `<install id>:<route>`. */
export const ROUTE_OPTION = 'session-proxy.route';
/** Options grpc-js adds itself when it maps the target onto HTTPS_PROXY (http_proxy.js, mapProxyName). */
const PROXY_MAPPED = ['grpc.http_connect_target', 'grpc.http_connect_creds'] as const;
/** grpc-js's DEFAULT_PORT (resolver-dns.js). */
const GRPC_DEFAULT_PORT = 443;

type Fn = (this: unknown, ...args: unknown[]) => unknown;
type ChannelClass = (new (target: string, credentials: unknown, options: Record<string, unknown>) => Channel) & { prototype: Record<string, unknown> };

interface InternalChannel {
  getOptions(): Record<string, unknown>;
  getTarget(): string;
  readonly credentials: unknown;
}

interface Channel {
  readonly internalChannel?: InternalChannel;
  createCall(...args: unknown[]): unknown;
  getConnectivityState(tryToConnect: boolean): unknown;
  watchConnectivityState(...args: unknown[]): void;
  close(): void;
}

interface Front {
  /** The hosts the channel's calls go to; empty when its target names none (unix:, an unknown resolver). */
  readonly targets: Target[];
  readonly twins: Map<RouteKey, Channel>;
  closed: boolean;
}

/** The methods of ChannelImplementation the partition replaces; createCall is the one it cannot do without. */
const ROUTED_METHODS = ['createCall', 'getConnectivityState', 'watchConnectivityState'] as const;

/** What a copy's channel.js must have for the partition; empty when it can be patched. */
export function grpcChannelProblems(e: Record<string, unknown>): string[] {
  const proto = (e.ChannelImplementation as ChannelClass).prototype;
  return [...ROUTED_METHODS, 'close'].filter((m) => typeof proto[m] !== 'function').map((m) => `ChannelImplementation.prototype.${m} is gone`);
}

/** What a copy's transport.js must have; empty when it can be patched. */
export function grpcTransportProblems(e: Record<string, unknown>): string[] {
  const C = e.Http2SubchannelConnector as { prototype: Record<string, unknown> };
  return typeof C.prototype.connect === 'function' ? [] : ['Http2SubchannelConnector.prototype.connect(address, secureConnector, options) is gone'];
}

/** What an instance must have to be twinned; empty when it can be. */
export function grpcInstanceProblems(channel: object): string[] {
  const ic = (channel as Channel).internalChannel;
  if (!ic || typeof ic !== 'object') return ['a ChannelImplementation has no internalChannel'];
  const problems: string[] = [];
  if (typeof ic.getOptions !== 'function') problems.push('InternalChannel.getOptions() is gone');
  if (typeof ic.getTarget !== 'function') problems.push('InternalChannel.getTarget() is gone');
  if (!ic.credentials || typeof ic.credentials !== 'object') problems.push('InternalChannel.credentials is gone');
  return problems;
}

export function installGrpcPartition(deps: GrpcPartitionDeps): Restore {
  const partition = new GrpcPartition(deps, installId());
  const unwatch = watchModules({
    quick: (e) => typeof e.ChannelImplementation === 'function' || typeof e.Http2SubchannelConnector === 'function',
    offer: (e, source) => partition.offer(e, source),
  });
  return () => {
    unwatch();
    partition.dispose();
  };
}

class GrpcPartition {
  private active = true;
  private readonly seen = new WeakSet<object>();
  private readonly restores: Restore[] = [];
  private readonly fronts = new WeakMap<object, Front>();
  private readonly twinSet = new WeakSet<object>();
  /** Every twin alive, for uninstall; weak, so a channel the app dropped without closing is still collected. */
  private readonly twins = new Set<WeakRef<Channel>>();
  private readonly collected = new FinalizationRegistry<WeakRef<Channel>>((ref) => this.twins.delete(ref));

  constructor(
    private readonly deps: GrpcPartitionDeps,
    private readonly generation: string,
  ) {}

  offer(e: Record<string, unknown>, source: string): void {
    if (typeof e.ChannelImplementation === 'function') this.patchChannel(e.ChannelImplementation as ChannelClass, e, source);
    if (typeof e.Http2SubchannelConnector === 'function') this.patchConnector(e.Http2SubchannelConnector as { prototype: Record<string, unknown> }, e, source);
  }

  dispose(): void {
    this.active = false;
    for (const restore of this.restores.reverse()) restore();
    this.restores.length = 0;
    for (const ref of this.twins) ref.deref()?.close();
    this.twins.clear();
  }

  private patchChannel(C: ChannelClass, e: Record<string, unknown>, source: string): void {
    if (this.seen.has(C)) return;
    this.seen.add(C);
    const problems = grpcChannelProblems(e);
    if (problems.length) {
      process.emitWarning(
        `grpc-js at ${source}: ${problems.join('; ')}. ` +
          (typeof C.prototype.createCall === 'function' ? 'Calls are still partitioned per route.' : 'Its calls cannot be partitioned: its connections are refused (LeakBlockedError).'),
        { code: 'SESSION_PROXY_GRPC_INTERNALS' },
      );
    }
    const self = this;
    // Calls and connectivity questions go to the caller's route's twin.
    for (const m of ROUTED_METHODS) {
      const original = C.prototype[m] as Fn | undefined;
      if (typeof original !== 'function') continue;
      this.restores.push(
        replaceMethod(C.prototype, m, function routed(this: Channel, ...args: unknown[]) {
          if (!self.active || self.twinSet.has(this) || self.fronts.get(this)?.closed) return original.apply(this, args);
          const { route, twin } = self.twinFor(C, this);
          return enterRoute(route, () => (twin[m] as Fn).apply(twin, args));
        }),
      );
    }
    const close = C.prototype.close as Fn | undefined;
    if (typeof close !== 'function') return;
    this.restores.push(
      replaceMethod(C.prototype, 'close', function closeWithTwins(this: Channel) {
        const front = self.fronts.get(this);
        if (front) {
          front.closed = true;
          for (const twin of front.twins.values()) twin.close();
          front.twins.clear();
        }
        return close.call(this);
      }),
    );
  }

  private patchConnector(C: { prototype: Record<string, unknown> }, e: Record<string, unknown>, source: string): void {
    if (this.seen.has(C)) return;
    this.seen.add(C);
    const problems = grpcTransportProblems(e);
    if (problems.length) {
      process.emitWarning(`grpc-js at ${source}: ${problems.join('; ')}. A connection is then routed by the context that starts it.`, { code: 'SESSION_PROXY_GRPC_INTERNALS' });
      return;
    }
    const self = this;
    const connect = C.prototype.connect as Fn;
    this.restores.push(
      replaceMethod(C.prototype, 'connect', function connectInRoute(this: unknown, ...args: unknown[]) {
        if (!self.active) return connect.apply(this, args);
        const route = self.routeOfOptions(args[2]);
        if (route !== undefined) return enterRoute(route, () => connect.apply(this, args));
        // Not a twin's subchannel: a channel this file could not partition, whose calls may start from any route's callbacks.
        return Promise.reject(
          new LeakBlockedError(
            'refused a grpc-js connection that serves no single route: its channel was not partitioned by session-proxy (grpc-js internals changed, or a Channel of its own), so calls of several accounts could share it',
            { account: state.scopes.getStore()?.account },
          ),
        );
      }),
    );
  }

  /** The route a subchannel's options name, if a twin of this install made it. */
  private routeOfOptions(options: unknown): RouteKey | undefined {
    const value = options && typeof options === 'object' ? (options as Record<string, unknown>)[ROUTE_OPTION] : undefined;
    if (typeof value !== 'string') return undefined;
    const colon = value.indexOf(':');
    return value.slice(0, colon) === this.generation ? value.slice(colon + 1) : undefined;
  }

  /** The caller's route for `channel`, and the twin that serves it (created now if need be). */
  private twinFor(C: ChannelClass, channel: Channel): { route: RouteKey; twin: Channel } {
    let front = this.fronts.get(channel);
    if (!front) {
      const problems = grpcInstanceProblems(channel);
      if (problems.length) {
        throw new LeakBlockedError(
          `this grpc-js channel cannot be given connections of its own per route (grpc-js internals changed: ${problems.join('; ')}); the call is refused rather than queued on another route's connection`,
          { account: state.scopes.getStore()?.account },
        );
      }
      front = { targets: channelTargets(channel.internalChannel!), twins: new Map(), closed: false };
      this.fronts.set(channel, front);
    }
    const route = this.routeOf(front);
    let twin = front.twins.get(route);
    if (!twin) {
      twin = this.twin(C, channel.internalChannel!, route);
      front.twins.set(route, twin);
    }
    return { route, twin };
  }

  /** By the channel's hosts (the first that is not bypassed wins, as for a BalancedPool); without one, by the caller's scope. */
  private routeOf(front: Front): RouteKey {
    let route: RouteKey | undefined;
    for (const t of front.targets) {
      route = this.deps.routeKey(t);
      if (route !== BYPASS_ROUTE) return route;
    }
    return route ?? state.scopes.getStore()?.account ?? DEFAULT_ROUTE;
  }

  private twin(C: ChannelClass, ic: InternalChannel, route: RouteKey): Channel {
    const options = { ...ic.getOptions() };
    const mapped = options['grpc.http_connect_target'];
    for (const key of PROXY_MAPPED) delete options[key];
    options[ROUTE_OPTION] = `${this.generation}:${route}`;
    // The twin maps its target onto HTTPS_PROXY again itself, as the app's channel did.
    const twin = new C(typeof mapped === 'string' ? mapped : ic.getTarget(), ic.credentials, options);
    this.twinSet.add(twin);
    const ref = new WeakRef(twin);
    this.twins.add(ref);
    this.collected.register(twin, ref);
    return twin;
  }
}

/**
 * The hosts a grpc target names: `dns:host:port`, `dns://authority/host:port`,
 * `ipv4:a:p,b:p`, `ipv6:[::1]:p` (getTarget() always has a scheme). unix:
 * and resolvers of unknown syntax name none.
 */
export function channelTargets(ic: InternalChannel): Target[] {
  const mapped = ic.getOptions()['grpc.http_connect_target'];
  const uri = typeof mapped === 'string' ? mapped : ic.getTarget();
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(uri);
  if (!m) return [];
  const scheme = m[1]!.toLowerCase();
  let rest = m[2]!;
  if (!['dns', 'ipv4', 'ipv6'].includes(scheme)) return [];
  if (rest.startsWith('//')) rest = rest.slice(Math.max(rest.indexOf('/', 2) + 1, 2));
  const targets: Target[] = [];
  for (const part of scheme === 'dns' ? [rest] : rest.split(',')) {
    const t = hostPort(part.trim());
    if (t) targets.push(t);
  }
  return targets;
}

function hostPort(s: string): Target | undefined {
  if (!s) return undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] ? Number(bracketed[2]) : GRPC_DEFAULT_PORT };
  const colons = s.split(':').length - 1;
  if (colons === 1) {
    const [host, port] = s.split(':') as [string, string];
    return host ? { host: unbracket(host), port: port ? Number(port) : GRPC_DEFAULT_PORT } : undefined;
  }
  // No port, or a bare IPv6 literal.
  return { host: s, port: GRPC_DEFAULT_PORT };
}
