/**
 * Layer 2 — undici. A routing Dispatcher installed as the global dispatcher
 * under both symbols: `undici.globalDispatcher.1` (Node's bundled fetch and
 * WebSocket, npm undici 7) and `.2` (npm undici 7.27+/8). Per request it asks
 * the router (synchronously, in the caller's async context) and delegates to
 * the (account, proxy) pool, or to the previous dispatcher for direct
 * traffic. Another copy of undici can overwrite the symbols silently:
 * `reassert()` is called at the points we control.
 */
import { Agent, Dispatcher } from 'undici';
import type { ConnectionPools } from '../pools/connection-pools.js';
import type { Router } from '../routing/router.js';
import { BYPASS_ROUTE, targetFromUrl, withScheme } from '../routing/route.js';
import { foldRepeatedContentLength } from './undici-headers.js';
import { markPlumbing } from '../plumbing.js';
import { BYPASS_MARK, withDecided } from '../guard/route-mark.js';

const SYMBOLS = [Symbol.for('undici.globalDispatcher.1'), Symbol.for('undici.globalDispatcher.2')] as const;

type Handler = Parameters<Dispatcher['dispatch']>[1];
type Options = Parameters<Dispatcher['dispatch']>[0];

export class RoutingDispatcher extends Dispatcher {
  constructor(
    private readonly router: Router,
    private readonly pools: ConnectionPools,
    private readonly direct: Dispatcher,
  ) {
    super();
  }

  override dispatch(opts: Options, handler: Handler): boolean {
    const folded = foldRepeatedContentLength(opts);
    const origin = new URL(String(opts.origin));
    // The scheme is known here (rules may name one); Node's global WebSocket dispatches an upgrade.
    const target = withScheme(targetFromUrl(origin), origin.protocol === 'https:' || origin.protocol === 'wss:', opts.upgrade === 'websocket');
    const action = this.router.decide(target, 'undici');
    if (action.kind === 'tunnel') return this.pools.dispatcher(action.account, action.proxy).dispatch(folded, handler);
    if (action.kind === 'fail') return failingDispatcher(action.error).dispatch(folded, handler);
    // Passed: a connection the direct dispatcher opens now serves this route and is not decided again.
    const mark = action.route === BYPASS_ROUTE ? BYPASS_MARK : { route: action.route, account: this.router.currentAccount(), decided: true };
    return withDecided(mark, () => this.direct.dispatch(folded, handler));
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    // Pools are owned by the manager; closing the router closes nothing shared.
    const done = Promise.resolve();
    if (callback) void done.then(callback);
    else return done;
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: unknown, b?: unknown): Promise<void> | void {
    const callback = typeof a === 'function' ? a : typeof b === 'function' ? b : undefined;
    const done = Promise.resolve();
    if (callback) void done.then(callback as () => void);
    else return done;
  }
}

/** Fails the request through undici's own machinery (a connect error), so every handler style and client sees a normal error. */
function failingDispatcher(error: Error): Dispatcher {
  const agent = markPlumbing(new Agent({ connect: (_opts, cb) => cb(error, null) }));
  // The agent exists for this one request; drop its pool once it has failed.
  setImmediate(() => void agent.close().catch(() => undefined));
  return agent;
}

export class UndiciLayer {
  private readonly previous = SYMBOLS.map((s) => (globalThis as Record<symbol, unknown>)[s]);
  private readonly absent = SYMBOLS.map((s) => !Object.getOwnPropertyDescriptor(globalThis, s));

  constructor(readonly dispatcher: RoutingDispatcher) {}

  /**
   * The dispatcher that was global before install: direct traffic keeps using it.
   * Only the Agent made here is marked as plumbing. A previous global
   * dispatcher is the app's or undici's own object, which app code may also
   * hold and use from a scope (`getGlobalDispatcher()` captured at load): it
   * stays partitioned per route (guard/undici-partition.ts), so such a request
   * never rides one of its unscoped direct connections.
   */
  static previousDirect(): Dispatcher {
    const prev = (globalThis as Record<symbol, unknown>)[SYMBOLS[0]] as Dispatcher | undefined;
    return prev && typeof prev.dispatch === 'function' ? prev : markPlumbing(new Agent());
  }

  install(): () => void {
    this.reassert();
    return () => {
      SYMBOLS.forEach((s, i) => {
        // A slot we created goes away again; the `.1` slot is never left
        // empty (Node 20's next fetch would crash), so it gets a fresh Agent.
        if (this.absent[i] && i > 0 && Object.getOwnPropertyDescriptor(globalThis, s)?.configurable) {
          delete (globalThis as Record<symbol, unknown>)[s];
          return;
        }
        define(s, this.previous[i] ?? new Agent());
      });
    };
  }

  /** Puts the routing dispatcher back if another copy of undici replaced it. Returns true when it had to. */
  reassert(): boolean {
    let changed = false;
    for (const s of SYMBOLS) {
      if ((globalThis as Record<symbol, unknown>)[s] !== this.dispatcher) {
        define(s, this.dispatcher);
        changed = true;
      }
    }
    return changed;
  }
}

function define(symbol: symbol, value: unknown): void {
  const desc = Object.getOwnPropertyDescriptor(globalThis, symbol);
  if (!desc) {
    // Configurable, so that uninstall can remove a slot that did not exist before.
    Object.defineProperty(globalThis, symbol, { value, writable: true, enumerable: false, configurable: true });
  } else if (desc.configurable) {
    Object.defineProperty(globalThis, symbol, { value, writable: true, enumerable: false, configurable: true });
  } else {
    (globalThis as Record<symbol, unknown>)[symbol] = value;
  }
}
