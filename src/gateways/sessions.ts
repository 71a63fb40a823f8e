/**
 * Each account's session on each gateway of its pool. A session is minted
 * (or taken from the store, or pinned by the configuration) when the account
 * is configured, so accounts on one gateway URL get sessions — exit IPs — of
 * their own; its id is part of the endpoint's identity, so pools, exclusivity
 * and stats are per session. `renew()` mints the next one (rotate(), a failed
 * session, a lifetime about to end, an egress change); the caller swaps it
 * into the pool and drains the old one like any rotation.
 *
 * When the vendor's lifetime is known, a timer asks for the move shortly
 * before the session expires, so the IP changes at the app's moment, not the
 * vendor's. `session: 'per-connection'` gateways keep a sessionless entry in
 * the pool and get a fresh session for every connection (`perConnection`).
 *
 * Where sessions are kept is a SessionStore: in memory by default; the fleet
 * store (several processes sharing sessions across restarts) implements the
 * same interface. It holds secret-free keys and session ids only.
 */
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { GatewayDefinition } from './definition.js';

export interface StoredSession {
  readonly id: string;
  /** When it was minted (ms since the epoch): with the lifetime, when it ends. */
  readonly mintedAt: number;
}

/**
 * Where an account's session on a gateway is kept. Synchronous: a shared
 * store keeps a local view it synchronizes in the background (the next
 * issue's fleet store), so routing never waits on the network.
 */
export interface SessionStore {
  get(account: string, gateway: string): StoredSession | undefined;
  set(account: string, gateway: string, session: StoredSession): void;
  delete(account: string, gateway: string): void;
}

export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, StoredSession>();
  get(account: string, gateway: string): StoredSession | undefined {
    return this.sessions.get(`${account}\0${gateway}`);
  }
  set(account: string, gateway: string, session: StoredSession): void {
    this.sessions.set(`${account}\0${gateway}`, session);
  }
  delete(account: string, gateway: string): void {
    this.sessions.delete(`${account}\0${gateway}`);
  }
}

interface Binding {
  readonly account: string;
  readonly definition: GatewayDefinition;
  /** Replaced when the fleet says when the same session was minted (another process minted it). */
  session: StoredSession | undefined;
  timer?: NodeJS.Timeout;
}

export interface GatewaySessionEvents {
  /** `endpoint`'s session is about to end (its lifetime): move the account to a fresh one. */
  expiring(account: string, endpoint: ProxyEndpoint): void;
}

/** How long before a known expiry the account moves: a tenth of the lifetime, between 100 ms and 30 s. */
export function renewalMargin(lifetimeMs: number): number {
  return Math.min(30_000, Math.max(100, lifetimeMs / 10));
}

export class GatewaySessions {
  private readonly bindings = new WeakMap<ProxyEndpoint, Binding>();
  private readonly live = new Set<ProxyEndpoint>();
  private running = false;

  constructor(private readonly store: SessionStore, private readonly events: GatewaySessionEvents, private readonly now: () => number = Date.now) {}

  /** The pool entry of `account` on `definition`: its session's endpoint (sessionless for per-connection gateways). */
  open(account: string, definition: GatewayDefinition): ProxyEndpoint {
    if (definition.mode === 'per-connection') return this.bind(account, definition, undefined);
    const stored = this.store.get(account, definition.storeKey);
    const usable = stored && definition.acceptsSession(stored.id) && !this.expired(definition, stored) ? stored : undefined;
    const session = usable ?? { id: definition.pinnedSession ?? definition.mint(), mintedAt: this.now() };
    this.store.set(account, definition.storeKey, session);
    return this.bind(account, definition, session);
  }

  /** The gateway an entry belongs to, if it is a gateway's. */
  definitionOf(endpoint: ProxyEndpoint): GatewayDefinition | undefined {
    return this.bindings.get(endpoint)?.definition;
  }

  /** Is this a sticky gateway session, one that renew() can replace? */
  isSticky(endpoint: ProxyEndpoint): boolean {
    return this.bindings.get(endpoint)?.definition.mode === 'sticky';
  }

  /** A new session for the account's entry `from` (never the same id); undefined if `from` is no sticky session. */
  renew(from: ProxyEndpoint): ProxyEndpoint | undefined {
    const session = this.fresh(from);
    return session && this.adopt(from, session);
  }

  /** A new session id for the entry `from`, not yet in use (the fleet proposes it before adopting it); undefined if `from` is no sticky session. */
  fresh(from: ProxyEndpoint): StoredSession | undefined {
    const b = this.bindings.get(from);
    if (!b || b.definition.mode !== 'sticky') return undefined;
    let id = b.definition.mint();
    for (let i = 0; i < 8 && id === b.session?.id; i++) id = b.definition.mint();
    return { id, mintedAt: this.now() };
  }

  /** The session an entry is on, if it is a sticky gateway session. */
  sessionOf(endpoint: ProxyEndpoint): StoredSession | undefined {
    const b = this.bindings.get(endpoint);
    return b?.definition.mode === 'sticky' ? b.session : undefined;
  }

  /**
   * The account's entry `from` moved to `session` (a new one, or the one the
   * fleet has the account on): its endpoint, replacing `from` (`from` itself
   * when only the mint time differs). Undefined when `from` is no sticky
   * session or the gateway refuses that id.
   */
  adopt(from: ProxyEndpoint, session: StoredSession): ProxyEndpoint | undefined {
    const b = this.bindings.get(from);
    if (!b || b.definition.mode !== 'sticky' || !b.definition.acceptsSession(session.id)) return undefined;
    this.store.set(b.account, b.definition.storeKey, session);
    if (b.session?.id === session.id) {
      // The same session, minted elsewhere at another time: same endpoint, its lifetime timer from then.
      b.session = session;
      this.schedule(from);
      return from;
    }
    this.retire(from);
    return this.bind(b.account, b.definition, session);
  }

  /** For a per-connection gateway's entry: the endpoint of a fresh session for one connection. */
  perConnection(endpoint: ProxyEndpoint): ProxyEndpoint | undefined {
    const b = this.bindings.get(endpoint);
    if (!b || b.definition.mode !== 'per-connection' || !b.definition.hasSessions) return undefined;
    return b.definition.endpoint(b.definition.mint());
  }

  /** When the session of `endpoint` is due to end (ms since the epoch), if its lifetime is known. */
  expiresAt(endpoint: ProxyEndpoint): number | undefined {
    const b = this.bindings.get(endpoint);
    const after = b?.definition.expiresAfterMs;
    return b?.session && after !== undefined ? b.session.mintedAt + after : undefined;
  }

  /** Forgets an entry that left its pool (replaced account, removed account). */
  retire(endpoint: ProxyEndpoint): void {
    const b = this.bindings.get(endpoint);
    if (b?.timer) clearTimeout(b.timer);
    this.live.delete(endpoint);
  }

  /** Lifetime timers run while the manager is installed. */
  start(): void {
    this.running = true;
    for (const endpoint of this.live) this.schedule(endpoint);
  }

  stop(): void {
    this.running = false;
    for (const endpoint of this.live) {
      const b = this.bindings.get(endpoint);
      if (b?.timer) clearTimeout(b.timer);
    }
  }

  private bind(account: string, definition: GatewayDefinition, session: StoredSession | undefined): ProxyEndpoint {
    const endpoint = definition.endpoint(session?.id);
    this.bindings.set(endpoint, { account, definition, session });
    this.live.add(endpoint);
    this.schedule(endpoint);
    return endpoint;
  }

  private schedule(endpoint: ProxyEndpoint): void {
    const b = this.bindings.get(endpoint);
    const ends = this.expiresAt(endpoint);
    if (!this.running || !b || ends === undefined) return;
    if (b.timer) clearTimeout(b.timer);
    const due = ends - renewalMargin(b.definition.expiresAfterMs!) - this.now();
    b.timer = setTimeout(() => {
      b.timer = undefined;
      if (this.live.has(endpoint)) this.events.expiring(b.account, endpoint);
    }, Math.max(0, due));
    b.timer.unref();
  }

  private expired(definition: GatewayDefinition, session: StoredSession): boolean {
    const after = definition.expiresAfterMs;
    return after !== undefined && this.now() >= session.mintedAt + after - renewalMargin(after);
  }
}
