/**
 * The state several processes must agree on, behind one interface with two
 * implementations: `MemoryStore` (in-process, the reference semantics and
 * what `store: 'memory:'` selects) and `RedisStore` (a fleet: the same
 * operations as Lua scripts, each atomic on the server, with the server's
 * clock). Every operation is one round trip and idempotent enough to be
 * retried; none is on the request path (leases are checked against local
 * deadlines, see routing/fleet.ts).
 *
 * Times in replies are the store's clock (ms); callers never compare them
 * with their own clock, only with `now` from the same reply. Nothing secret
 * is ever passed in: proxies are fleet keys (store/identity.ts) and redacted
 * URLs.
 */

/** The lease timing every call carries: the fleet's processes share leaseTtl. */
export interface LeaseTiming {
  /** Lease time to live (ms). */
  readonly ttl: number;
  /** Safety margin (ms): local deadlines end this much before the lease, quarantine lasts this much after. */
  readonly margin: number;
}

/** A gateway session as the store keeps it: the id and when it was minted (ms since the epoch, the minter's clock). */
export interface SessionRecord {
  readonly id: string;
  readonly minted: number;
}

export interface Candidate {
  /** Fleet key (a gateway's: its slot, shared by all its sessions). */
  readonly key: string;
  /** Redacted URL, shown by `session-proxy fleet`. */
  readonly url: string;
  /**
   * A gateway slot: the session the caller proposes. The store keeps the
   * account's own session when it already has one on this slot (every
   * process, and a restarted one, gets the same), else takes this one. No
   * ownership is recorded for a session: ids are minted per account.
   */
  readonly session?: SessionRecord;
}

interface Call extends LeaseTiming {
  readonly instance: string;
  /** The epoch the caller knows ('' at first); an epoch id to create if the store has none. */
  readonly epoch: string;
  readonly newEpoch: string;
}

export interface AcquireRequest extends Call {
  readonly account: string;
  readonly exclusive: boolean;
  /** Preference order: the account's sticky proxy (if the store has it) wins over this order. */
  readonly candidates: readonly Candidate[];
}

export interface RenewRequest extends Call {
  readonly exclusive: boolean;
  /** The accounts this instance holds, with the assignment version it is on (its acknowledgement). */
  readonly accounts: ReadonlyArray<{ readonly account: string; readonly ack: number }>;
}

export interface MoveRequest extends Call {
  readonly account: string;
  readonly exclusive: boolean;
  /** The version the mover is on: a move from an older one is stale (another process moved first). */
  readonly fromVer: number;
  /** Why (shown in rotate events): manual, failover, or a gateway session's renewal (lifetime, session-failed, …). */
  readonly reason: string;
  /**
   * Proxies to move to, in the strategy's order. The current one is skipped,
   * unless it comes with another session (a new session on the same gateway).
   */
  readonly candidates: readonly Candidate[];
}

export interface ReleaseRequest extends Call {
  readonly account: string;
  readonly exclusive: boolean;
}

/** An account's assignment as the store has it. */
export interface Assignment {
  readonly account: string;
  readonly proxy: string;
  readonly ver: number;
  /** `moving`: a move's barrier is open (not every holder has acknowledged it yet). */
  readonly state: 'ready' | 'moving';
  readonly reason?: string;
  /** On a gateway slot: the account's session there. */
  readonly session?: SessionRecord;
}

export type AcquireReply =
  | ({ readonly status: 'ok'; readonly epoch: string; readonly now: number } & Assignment)
  /** The epoch is new (empty or restarted store): no acquisition until `retryIn` ms from now. */
  | { readonly status: 'settling'; readonly epoch: string; readonly now: number; readonly retryIn: number }
  /** Every candidate is down or held by another account (or quarantined). */
  | { readonly status: 'none'; readonly epoch: string; readonly now: number }
  /** The account is in use elsewhere on a proxy this caller's pool does not have. */
  | { readonly status: 'mismatch'; readonly epoch: string; readonly now: number; readonly proxy: string };

export type RenewReply =
  | {
      readonly status: 'ok';
      readonly epoch: string;
      readonly now: number;
      /** `held: false`: this instance's lease is gone (expired, or the store forgot it). */
      readonly accounts: ReadonlyArray<({ readonly held: true } & Assignment) | { readonly account: string; readonly held: false }>;
    }
  /** The store's epoch is not the caller's: every lease of the caller is gone. */
  | { readonly status: 'epoch'; readonly epoch: string; readonly now: number; readonly retryIn: number };

export type MoveReply =
  | ({ readonly status: 'ok' | 'stale'; readonly epoch: string; readonly now: number } & Assignment)
  | { readonly status: 'none' | 'lost'; readonly epoch: string; readonly now: number }
  | { readonly status: 'epoch' | 'settling'; readonly epoch: string; readonly now: number; readonly retryIn: number };

export interface InstanceInfo {
  readonly instance: string;
  readonly host: string;
  readonly pid: number;
  /** Configuration fingerprint. */
  readonly fp: string;
  readonly started: number;
  readonly seen?: number;
}

export interface ProxyHealthRecord {
  /** Store time until which the proxy is in cooldown fleet-wide (0: up). */
  readonly down: number;
  readonly error?: string;
  /** The instance holding the probe, while it holds it. */
  readonly probe?: string;
}

export interface HealthReply {
  readonly now: number;
  readonly proxies: Readonly<Record<string, ProxyHealthRecord>>;
}

export interface PollReply {
  readonly epoch: string;
  /** Assignment and health versions: a change means something moved or a proxy went down or up. */
  readonly av: number;
  readonly hv: number;
  readonly now: number;
}

export interface StatsRow {
  readonly account: string;
  readonly key: string;
  readonly url: string;
  readonly requests: number;
  readonly failures: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
}

/** Everything the store has, for `session-proxy fleet` and `stats({ fleet: true })`. */
export interface FleetSnapshot {
  readonly now: number;
  readonly epoch: string;
  readonly accounts: ReadonlyArray<Assignment & { readonly barrierUntil: number; readonly holders: ReadonlyArray<{ readonly instance: string; readonly expiry: number; readonly ack: number }> }>;
  readonly proxies: ReadonlyArray<{ readonly key: string; readonly url?: string; readonly owner?: string; readonly until: number; readonly down: number; readonly error?: string }>;
  readonly instances: readonly InstanceInfo[];
  readonly stats: readonly StatsRow[];
}

/** A message on the fleet's channel (best effort: every receiver also polls). */
export type FleetMessage =
  | { readonly t: 'move'; readonly a: string; readonly v: number }
  | { readonly t: 'ready'; readonly a: string; readonly v: number }
  | { readonly t: 'health'; readonly k: string };

export interface FleetStore {
  readonly kind: 'memory' | 'redis';
  /** Where it is, for messages (credentials redacted). */
  readonly where: string;
  /** Starts connecting; resolves when connected (or rejects on the first failure; it keeps retrying). */
  connect(): Promise<void>;
  close(): Promise<void>;
  /** Connection state changes: `down` with the error, `up` when commands work again. */
  onState(listener: (state: 'up' | 'down', error?: Error) => void): void;
  subscribe(listener: (message: FleetMessage) => void): Promise<void>;
  hello(info: InstanceInfo, timing: LeaseTiming): Promise<InstanceInfo[]>;
  acquire(r: AcquireRequest): Promise<AcquireReply>;
  renew(r: RenewRequest): Promise<RenewReply>;
  move(r: MoveRequest): Promise<MoveReply>;
  release(r: ReleaseRequest): Promise<void>;
  /** Puts a proxy in cooldown fleet-wide for `durationMs` (the later end wins). */
  down(key: string, durationMs: number, error: string | undefined): Promise<void>;
  up(key: string): Promise<void>;
  /** The one probe for the fleet: true when this instance holds it for `leaseMs`. */
  claimProbe(key: string, instance: string, leaseMs: number): Promise<boolean>;
  health(keys: readonly string[]): Promise<HealthReply>;
  poll(): Promise<PollReply>;
  addStats(rows: readonly StatsRow[]): Promise<void>;
  snapshot(): Promise<FleetSnapshot>;
}
