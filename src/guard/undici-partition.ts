/**
 * An app's own undici Pool/Agent (any copy; layers/undici-copies.ts finds
 * them) shared between accounts serves every route on connections of its own.
 *
 * Why: such a dispatcher pools connections by origin only. A Pool queues
 * requests while its clients are busy and dispatches them later from a
 * socket callback (the opener's async context), and fetch's handlers are not
 * AsyncResources, so the socket layer could only guess whose a request was:
 * requests left from another account's IP, or were refused.
 *
 * How: undici's `DispatcherBase.prototype.dispatch` calls `this[kDispatch]`
 * and delivers anything thrown there through `handler.onError`. The patched
 * `[kDispatch]` (on PoolBase, Agent and Client of each copy):
 *
 * 1. decides the request's route *now*, synchronously in the caller's
 *    context, and stamps it on a copy of `opts` (`kRoute`); an inner dispatch
 *    (Agent → Pool → Client, a Pool draining its queue into a client, a
 *    redirect or retry that spread the opts) carries the stamp and is never
 *    re-decided from whatever context it happens to run in;
 * 2. sends it to the dispatcher of that route: the dispatcher itself for its
 *    *home* route (the first route that used it), else a *twin* created
 *    lazily per route — same class of the same copy, same options — so each
 *    route has up to `connections` connections of its own;
 * 3. runs that dispatch in the route's scope, so every connection it opens
 *    (now, or later from its own sockets' callbacks, which inherit that
 *    context) is tunnelled by the socket layer for exactly that route.
 *
 * A `Client` is one connection by contract, and its constructor options are
 * not kept as a bag (each is stored in its own private field), so a twin
 * could not be rebuilt reliably: another route's request is refused with
 * LeakBlockedError through `onError`, and the home route's connection is left
 * alone. Classes this file cannot rebuild (subclasses, MockPool) are refused
 * the same way: never the wrong IP.
 *
 * Closing or destroying a dispatcher closes its twins; the twins' `connect`,
 * `disconnect`, `connectionError` and `drain` events are re-emitted by the
 * dispatcher the app holds, with it as the first target. The library's own
 * dispatchers are marked as plumbing and pass through untouched.
 *
 * Uninstall puts every prototype method back and closes the twins
 * gracefully (requests in flight on them finish); afterwards each dispatcher
 * serves everything on its own connections again, as without the library.
 */
import { LeakBlockedError } from '../errors.js';
import { isMarkedPlumbing } from '../plumbing.js';
import { BYPASS_ROUTE, DEFAULT_ROUTE, targetFromUrl, type RouteKey, type Target } from '../routing/route.js';
import { accountOfRoute, enterRoute } from './enter-route.js';
import { ruleLabel } from '../routing/rules.js';
import { dispatchOwners, installUndiciCopies, ownSymbol, type DispatchOwner, type UndiciExports } from '../layers/undici-copies.js';

export interface UndiciPartitionDeps {
  /** The route a request to `target` created now belongs to (Router.routeKey). */
  readonly routeKey: (target: Target) => RouteKey;
}

/** Stamped on the opts of every dispatch we decided; spreads (redirects, retries) carry it along. */
const kRoute = Symbol('session-proxy.route');
/** The stamp of the library's own dispatchers: never partitioned, nor anything inside them. */
const PLUMBING = '\0plumbing';
/** Home of a dispatcher that had live connections when first seen (opened before install): it serves no route. */
const UNKNOWN = '\0unknown';

type Opts = Record<string | symbol, unknown>;
type KDispatch = (this: AnyDispatcher, opts: Opts, handler: object) => boolean;
type KClose = (this: AnyDispatcher, ...args: unknown[]) => Promise<unknown>;

interface AnyDispatcher {
  readonly closed?: boolean;
  readonly destroyed?: boolean;
  dispatch(opts: Opts, handler: object): boolean;
  close(): Promise<void>;
  destroy(err?: Error | null): Promise<void>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  emit(event: string, ...args: unknown[]): boolean;
  [key: symbol]: unknown;
}

interface Partition {
  home: RouteKey;
  twins?: Map<RouteKey, AnyDispatcher>;
}

/** Builds a twin of a dispatcher: same class, same options. Throws when the internals are not the expected ones. */
type Recipe = (d: AnyDispatcher) => AnyDispatcher;

const FORWARDED_EVENTS = ['connect', 'disconnect', 'connectionError', 'drain'] as const;

export function installUndiciPartition(deps: UndiciPartitionDeps): () => void {
  const partition = new UndiciPartition(deps);
  const restoreCopies = installUndiciCopies((copy, source) => partition.patch(copy, source));
  return () => {
    restoreCopies();
    partition.dispose();
  };
}

class UndiciPartition {
  private active = true;
  private readonly partitions = new WeakMap<object, Partition>();
  private readonly recipes = new WeakMap<object, Recipe>();
  /** Every twin alive, for uninstall; weak, so a Pool the app dropped without closing is still collected. */
  private readonly twins = new Set<WeakRef<AnyDispatcher>>();
  private readonly collected = new FinalizationRegistry<WeakRef<AnyDispatcher>>((ref) => this.twins.delete(ref));
  /** Per prototype: the own symbol holding a dispatcher's origin (Pool, Client), or null (Agent). */
  private readonly urlKeys = new WeakMap<object, symbol | null>();

  constructor(private readonly deps: UndiciPartitionDeps) {}

  patch(copy: UndiciExports, source: string): (() => void) | undefined {
    const { owners, problems } = dispatchOwners(copy);
    if (problems.length) {
      process.emitWarning(
        `undici at ${source}: ${problems.join('; ')}. Its dispatchers are guarded at the socket level only (a request of another account on a shared connection is refused).`,
        { code: 'SESSION_PROXY_UNDICI_INTERNALS' },
      );
    }
    if (owners.length === 0) return undefined;
    for (const cls of [copy.Pool, copy.RoundRobinPool]) if (cls) this.recipes.set(cls, poolTwin);
    if (copy.BalancedPool) this.recipes.set(copy.BalancedPool, balancedPoolTwin);
    this.recipes.set(copy.Agent, agentTwin);
    const undo = owners.map((o) => this.patchOwner(o));
    return () => {
      for (const u of undo.reverse()) u();
    };
  }

  dispose(): void {
    this.active = false;
    for (const ref of this.twins) ref.deref()?.close().catch(() => undefined);
    this.twins.clear();
  }

  private patchOwner(o: DispatchOwner): () => void {
    const self = this;
    const dispatch = o.proto[o.kDispatch] as KDispatch;
    const close = o.proto[o.kClose] as KClose;
    const destroy = o.proto[o.kDestroy] as KClose;
    const patched: Array<[symbol, PropertyDescriptor, unknown]> = [];
    const replace = (key: symbol, fn: unknown): void => {
      const desc = Object.getOwnPropertyDescriptor(o.proto, key)!;
      Object.defineProperty(o.proto, key, { ...desc, value: fn });
      patched.push([key, desc, fn]);
    };
    replace(o.kDispatch, function partitionedDispatch(this: AnyDispatcher, opts: Opts, handler: object): boolean {
      return self.active ? self.dispatch(this, dispatch, opts, handler) : dispatch.call(this, opts, handler);
    });
    replace(o.kClose, function closeWithTwins(this: AnyDispatcher, ...args: unknown[]): Promise<unknown> {
      return self.alongTwins(this, close.apply(this, args), (t) => t.close());
    });
    replace(o.kDestroy, function destroyWithTwins(this: AnyDispatcher, ...args: unknown[]): Promise<unknown> {
      return self.alongTwins(this, destroy.apply(this, args), (t) => t.destroy((args[0] as Error | null | undefined) ?? null));
    });
    return () => {
      for (const [key, desc, fn] of patched.reverse()) {
        // Wrapped again by someone else since: leave their wrapper; ours is inert once inactive.
        if (o.proto[key] === fn) Object.defineProperty(o.proto, key, desc);
      }
    };
  }

  private dispatch(d: AnyDispatcher, original: KDispatch, opts: Opts, handler: object): boolean {
    const carried = opts[kRoute] as RouteKey | undefined;
    if (carried === PLUMBING) return original.call(d, opts, handler);
    if (carried === undefined && isMarkedPlumbing(d)) return original.call(d, { ...opts, [kRoute]: PLUMBING }, handler);
    const route = carried ?? this.routeOf(d, opts);
    // No target to route by: undici refuses such opts itself (Agent without origin).
    if (route === undefined) return original.call(d, opts, handler);
    const stamped = carried === undefined ? { ...opts, [kRoute]: route } : opts;
    const to = this.serving(d, route);
    return enterRoute(route, () => (to === d ? original.call(d, stamped, handler) : to.dispatch(stamped, handler)));
  }

  /**
   * The route of a request to `d`: by the dispatcher's own origin when it has
   * one (a Pool or Client ignores opts.origin), else by opts.origin. A
   * BalancedPool's upstreams may differ in noProxy-ness: the account route
   * wins, since a noProxy upstream goes direct from any scope anyway.
   */
  private routeOf(d: AnyDispatcher, opts: Opts): RouteKey | undefined {
    const targets: Array<URL | string> = [];
    const urlKey = this.urlKeyOf(d);
    const upstreams = (d as { upstreams?: unknown }).upstreams;
    if (urlKey && d[urlKey]) targets.push(d[urlKey] as URL);
    else if (Array.isArray(upstreams) && upstreams.length) targets.push(...(upstreams as string[]));
    else if (typeof opts.origin === 'string' || opts.origin instanceof URL) targets.push(opts.origin);
    let route: RouteKey | undefined;
    for (const t of targets) {
      let target: Target;
      try {
        target = targetFromUrl(t);
      } catch {
        continue;
      }
      route = this.deps.routeKey(target);
      if (route !== BYPASS_ROUTE) break;
    }
    return route;
  }

  private urlKeyOf(d: AnyDispatcher): symbol | undefined {
    const proto = Object.getPrototypeOf(d) as object;
    let key = this.urlKeys.get(proto);
    if (key === undefined) {
      const found = ownSymbol(d, 'url');
      key = found && d[found] instanceof URL ? found : null;
      this.urlKeys.set(proto, key);
    }
    return key ?? undefined;
  }

  /** The dispatcher that serves `route` for `d`: itself, a twin, or none (throws LeakBlockedError). */
  private serving(d: AnyDispatcher, route: RouteKey): AnyDispatcher {
    let p = this.partitions.get(d);
    if (!p) {
      p = { home: hasLiveSockets(d) ? UNKNOWN : route };
      this.partitions.set(d, p);
    }
    if (p.home === route) return d;
    const existing = p.twins?.get(route);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const twin = this.twin(d, p.home, route);
    (p.twins ??= new Map()).set(route, twin);
    return twin;
  }

  private twin(d: AnyDispatcher, home: RouteKey, route: RouteKey): AnyDispatcher {
    const name = (d.constructor as { name?: string }).name ?? 'dispatcher';
    const recipe = this.recipes.get(d.constructor);
    const account = accountOfRoute(route);
    if (!recipe) {
      const why = home === UNKNOWN ? 'was connected before session-proxy was installed, so its connection serves an unknown route' : `already serves ${describe(home)}`;
      throw new LeakBlockedError(
        `this undici ${name} ${why}; it holds its own connection, so a request of ${describe(route)} is refused rather than sent from another route's IP. Use a Pool or an Agent (partitioned per route), or one ${name} per account`,
        { account },
      );
    }
    let twin: AnyDispatcher;
    try {
      twin = recipe(d);
    } catch (cause) {
      throw new LeakBlockedError(`could not create a copy of this undici ${name} for ${describe(route)}: ${(cause as Error).message}`, { account, cause });
    }
    this.partitions.set(twin, { home: route });
    for (const event of FORWARDED_EVENTS) {
      twin.on(event, (...args: unknown[]) => {
        if (Array.isArray(args[1])) args[1] = [d, ...(args[1] as unknown[]).slice(1)];
        d.emit(event, ...args);
      });
    }
    const ref = new WeakRef(twin);
    this.twins.add(ref);
    this.collected.register(twin, ref);
    return twin;
  }

  /** `done`, settled once the twins of `d` have been closed (or destroyed) too. */
  private alongTwins(d: AnyDispatcher, done: Promise<unknown>, end: (twin: AnyDispatcher) => Promise<unknown>): Promise<unknown> {
    const twins = this.partitions.get(d)?.twins;
    if (!twins?.size) return done;
    const ended = [...twins.values()].map((t) => end(t).catch(() => undefined));
    return Promise.all([done, ...ended]).then(() => done);
  }
}

function describe(route: RouteKey): string {
  if (route === DEFAULT_ROUTE) return 'the default route (outside any withProxy scope)';
  if (route === BYPASS_ROUTE) return 'the noProxy route';
  if (route === UNKNOWN) return 'an unknown route';
  return ruleLabel(route) ?? `account "${route}"`;
}

/**
 * Connections opened before install were routed by nobody: a dispatcher
 * holding one (directly, or through its pools' clients) must not give it to
 * whichever route comes first.
 */
function hasLiveSockets(d: object, depth = 0): boolean {
  const socketKey = ownSymbol(d, 'socket');
  const socket = socketKey ? ((d as Record<symbol, unknown>)[socketKey] as { destroyed?: boolean } | null) : null;
  if (socket && !socket.destroyed) return true;
  if (depth >= 3) return false;
  const clientsKey = ownSymbol(d, 'clients');
  const clients = clientsKey ? (d as Record<symbol, unknown>)[clientsKey] : undefined;
  const children: unknown[] = Array.isArray(clients)
    ? clients
    : clients instanceof Map
      ? [...clients.values()].map((v) => (v && typeof v === 'object' && 'dispatcher' in v ? (v as { dispatcher: unknown }).dispatcher : v))
      : [];
  return children.some((c) => !!c && typeof c === 'object' && hasLiveSockets(c, depth + 1));
}

/** `d[description]` for a private symbol that must exist exactly once. */
function field(d: AnyDispatcher, description: string): unknown {
  const key = ownSymbol(d, description);
  if (!key) throw new Error(`undici internals changed: no unique [Symbol('${description}')] on ${(d.constructor as { name?: string }).name}`);
  return d[key];
}

type DispatcherCtor = new (...args: unknown[]) => AnyDispatcher;

/** Pool, RoundRobinPool: `new C(origin, { ...kOptions, connections, factory })` (the connector in kOptions is already built). */
export const poolTwin: Recipe = (d) => {
  const C = d.constructor as DispatcherCtor;
  const options = field(d, 'options') as object;
  return new C(field(d, 'url'), { ...options, connections: field(d, 'connections'), factory: field(d, 'factory') });
};

/** BalancedPool: `new C(upstreams, { ...kOptions, factory })`, with the upstreams it has now. */
export const balancedPoolTwin: Recipe = (d) => {
  const C = d.constructor as DispatcherCtor;
  const options = field(d, 'options') as object;
  return new C([...((d as unknown as { upstreams: string[] }).upstreams ?? [])], { ...options, factory: field(d, 'factory') });
};

/** Agent: `new C({ ...kOptions, factory })` (kOptions keeps maxOrigins, connect, tls). */
export const agentTwin: Recipe = (d) => {
  const C = d.constructor as DispatcherCtor;
  const options = field(d, 'options') as object;
  return new C({ ...options, factory: field(d, 'factory') });
};
