/**
 * The fleet store on Redis, through node-redis (`redis` on npm, an optional
 * peer dependency loaded only when `store` is set). node-redis rather than
 * ioredis: it is the client Redis itself maintains (ioredis is in
 * maintenance mode and points new projects to it), promise-native and typed,
 * with Cluster (`createCluster`) and Sentinel (`createSentinel`) in the same
 * package, and it resubscribes pub/sub channels on reconnect by itself.
 *
 * Every operation is one EVALSHA of a script in store/scripts.ts (atomic,
 * server clock). Commands are never queued while disconnected
 * (`disableOfflineQueue`): a call fails at once, and the lease layer fails
 * closed when its local deadlines run out. The client's sockets are the
 * library's plumbing (marked, so the socket layer never routes them through
 * a proxy, whichever scope opens or reconnects them).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.js';
import { kBackground, kPlumbing } from '../plumbing.js';
import { SCRIPTS, type ScriptName } from './scripts.js';
import { describeTarget, parseStoreTarget, type StoreTarget } from './target.js';
import type {
  AcquireReply,
  AcquireRequest,
  FleetMessage,
  FleetSnapshot,
  FleetStore,
  HealthReply,
  InstanceInfo,
  LeaseTiming,
  MoveReply,
  MoveRequest,
  PollReply,
  ReleaseRequest,
  RenewReply,
  RenewRequest,
  StatsRow,
} from './types.js';

export const REDIS_PACKAGE_HINT = 'npm install redis (node-redis 5 or 6, an optional peer dependency of session-proxy)';

/** The parts of node-redis's clients used here (v5 and v6 alike). */
interface Emitter {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  connect(): Promise<unknown>;
  destroy?(): void;
  disconnect?(): Promise<void>;
  readonly isReady: boolean;
}
interface SingleClient extends Emitter {
  duplicate(): SingleClient;
  sendCommand(args: string[]): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
}
interface ClusterClient extends Emitter {
  sendCommand(firstKey: string, isReadonly: boolean, args: string[]): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
}
interface SentinelClient extends Emitter {
  sendCommand(isReadonly: boolean, args: string[]): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
}
interface RedisModule {
  createClient(o: object): SingleClient;
  createCluster(o: object): ClusterClient;
  createSentinel(o: object): SentinelClient;
}

/** One store connection, whatever the deployment: commands on the fleet's slot, the events channel, close. */
interface Connection {
  send(args: string[]): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<void>;
  readonly isReady: boolean;
  close(): void;
}

declare const __filename: string | undefined;

function here(): string {
  if (typeof __filename === 'string') return __filename;
  try {
    return fileURLToPath(import.meta.url);
  } catch {
    return `${process.cwd()}/index.js`;
  }
}

/** Is node-redis installed where this library (or the app) can load it? */
export function redisAvailable(): boolean {
  for (const from of [here(), `${process.cwd()}/noop.js`]) {
    try {
      createRequire(from).resolve('redis');
      return true;
    } catch {
      // try the next place
    }
  }
  return false;
}

export interface RedisStoreOptions {
  /** Where the store is (resolveStore parses it); or `url`, one Redis. */
  readonly target?: StoreTarget;
  readonly url?: string;
  readonly prefix: string;
  /** Per command: a store slower than this counts as down (ms). */
  readonly timeoutMs: number;
}

export class RedisStore implements FleetStore {
  readonly kind = 'redis' as const;
  readonly where: string;
  private readonly target: Exclude<StoreTarget, { kind: 'memory' }>;
  private client: Connection | undefined;
  private readonly tag: string;
  private readonly epochKey: string;
  private readonly shas = new Map<ScriptName, string>();
  private readonly stateListeners = new Set<(state: 'up' | 'down', error?: Error) => void>();
  private state: 'up' | 'down' | 'new' = 'new';
  private closed = false;
  private connecting: Promise<void> | undefined;
  /** The connection while it is first being made (closed on close()). */
  private opening: Connection | undefined;

  constructor(private readonly o: RedisStoreOptions) {
    const target = o.target ?? (o.url !== undefined ? parseStoreTarget(o.url) : undefined);
    if (!target || target.kind === 'memory') throw new ConfigError('RedisStore: expected a Redis target');
    this.target = target;
    this.where = describeTarget(target);
    this.tag = `{${o.prefix}}`;
    this.epochKey = `${this.tag}:epoch`;
    for (const [name, text] of Object.entries(SCRIPTS)) this.shas.set(name as ScriptName, createHash('sha1').update(text).digest('hex'));
  }

  connect(): Promise<void> {
    return (this.connecting ??= this.open());
  }

  private async open(): Promise<void> {
    let mod: RedisModule;
    try {
      mod = (await import('redis')) as unknown as RedisModule;
    } catch (err) {
      throw new ConfigError(`store ${this.where}: the Redis client is not installed: ${REDIS_PACKAGE_HINT}`, { cause: err });
    }
    const connection = connect(mod, this.target, {
      // An enumerable marker: node-redis spreads these options into the ones net/tls.connect
      // receive (for a Cluster's discovered nodes through `defaults`, for a Sentinel set's
      // sentinels, primary, replicas and pub/sub client through its client options), where the
      // socket layer recognises the library's own connections.
      // Background: idle, the store's connections do not keep the process alive (routing/fleet.ts holds it open while a request waits on the store).
      socket: { [kPlumbing]: true, [kBackground]: true, connectTimeout: Math.max(1000, this.o.timeoutMs), reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1000) },
      slotKey: this.epochKey,
      down: (err) => this.setState('down', err),
      up: () => this.setState('up'),
      // A connection made again (a reconnect, a new primary): messages sent meanwhile are lost, so resync.
      resync: () => this.setState('up', undefined, true),
    });
    this.opening = connection;
    await connection.ready;
    this.client = connection;
    this.setState('up');
  }

  onState(listener: (state: 'up' | 'down', error?: Error) => void): void {
    this.stateListeners.add(listener);
  }

  async subscribe(listener: (message: FleetMessage) => void): Promise<void> {
    if (!this.client) throw new Error('not connected');
    await this.client.subscribe(`${this.tag}:events`, (message) => {
      try {
        listener(JSON.parse(message) as FleetMessage);
      } catch {
        // not ours
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    try {
      (this.client ?? this.opening)?.close();
    } catch {
      // already gone
    }
  }

  hello(info: InstanceInfo, t: LeaseTiming): Promise<InstanceInfo[]> {
    return this.run<{ others: InstanceInfo[] | Record<string, never> }>('hello', { info, ttl: t.ttl, newEpoch: randomUUID() }).then((r) => list(r.others));
  }

  acquire(r: AcquireRequest): Promise<AcquireReply> {
    return this.run<AcquireReply>('acquire', r).then(clean);
  }

  renew(r: RenewRequest): Promise<RenewReply> {
    return this.run<RenewReply>('renew', r).then((reply) => (reply.status === 'ok' ? { ...reply, accounts: list(reply.accounts).map(clean) } : reply));
  }

  move(r: MoveRequest): Promise<MoveReply> {
    return this.run<MoveReply>('move', r).then(clean);
  }

  async release(r: ReleaseRequest): Promise<void> {
    await this.run('release', r);
  }

  async down(key: string, durationMs: number, error: string | undefined): Promise<void> {
    await this.run('down', { key, ms: Math.max(0, Math.round(durationMs)), error: error?.slice(0, 300) });
  }

  async up(key: string): Promise<void> {
    await this.run('up', { key });
  }

  async claimProbe(key: string, instance: string, leaseMs: number): Promise<boolean> {
    return (await this.run<{ ok: boolean }>('claimProbe', { key, instance, lease: Math.round(leaseMs) })).ok;
  }

  async health(keys: readonly string[]): Promise<HealthReply> {
    const r = await this.run<HealthReply>('health', { keys });
    return { now: r.now, proxies: Array.isArray(r.proxies) ? {} : r.proxies };
  }

  poll(): Promise<PollReply> {
    return this.run<PollReply>('poll', {});
  }

  async addStats(rows: readonly StatsRow[]): Promise<void> {
    if (rows.length) await this.run('stats', { rows });
  }

  async snapshot(): Promise<FleetSnapshot> {
    const r = await this.run<FleetSnapshot>('snapshot', {});
    return {
      ...r,
      accounts: list(r.accounts).map((a) => clean({ ...a, holders: list(a.holders) })),
      proxies: list(r.proxies),
      instances: list(r.instances),
      stats: list(r.stats),
    };
  }

  /** One script call: EVALSHA, loading the script on NOSCRIPT (a restarted Redis forgot it); bounded by timeoutMs. */
  private async run<T>(name: ScriptName, request: object): Promise<T> {
    if (this.closed) throw new Error(`store ${this.where} is closed`);
    if (!this.client) {
      // Still loading the client or making the first connection: wait for it, as long as a command may take.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.connect(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`store ${this.where} is not connected yet`)), this.o.timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
    }
    const client = this.client!;
    const args = ['1', this.epochKey, this.tag, JSON.stringify(request)];
    const call = async (): Promise<unknown> => {
      try {
        return await client.send(['EVALSHA', this.shas.get(name)!, ...args]);
      } catch (err) {
        if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
        return client.send(['EVAL', SCRIPTS[name], ...args]);
      }
    };
    let timer: NodeJS.Timeout | undefined;
    try {
      const raw = await Promise.race([
        call(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`store ${this.where} did not answer within ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
        }),
      ]);
      this.setState('up');
      return JSON.parse(String(raw)) as T;
    } catch (err) {
      // A script error (a bug, or a wrong Redis) is not an outage; everything else is.
      if (!/^(ERR|WRONGTYPE|NOSCRIPT)/.test(String((err as Error)?.message))) this.setState('down', err as Error);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private setState(state: 'up' | 'down', error?: Error, resync = false): void {
    if (this.closed) return;
    if (state === this.state && !resync) return;
    if (state === 'up' && this.client && !this.client.isReady) return;
    this.state = state;
    for (const l of this.stateListeners) l(state, error);
  }
}

/** cjson writes an empty array as `{}`. */
function list<T>(v: readonly T[] | Record<string, never> | undefined): T[] {
  return Array.isArray(v) ? [...v] : [];
}

/** cjson writes a missing reason as nothing and an empty one as ''. */
function clean<T>(v: T): T {
  const o = v as { reason?: string };
  if (o && typeof o === 'object' && o.reason === '') delete o.reason;
  return v;
}

interface ConnectOptions {
  /** Socket options every connection gets (the plumbing marker, timeouts, reconnects). */
  readonly socket: Record<string | symbol, unknown>;
  /** A key of the fleet's slot: a Cluster routes every command by it. */
  readonly slotKey: string;
  readonly down: (err: Error) => void;
  readonly up: () => void;
  readonly resync: () => void;
}

/** Creates the node-redis client for the target; `ready` resolves once it can take commands. */
function connect(mod: RedisModule, t: Exclude<StoreTarget, { kind: 'memory' }>, o: ConnectOptions): Connection & { ready: Promise<void> } {
  const destroy = (...clients: Array<Emitter | undefined>): void => {
    for (const c of clients) {
      if (!c) continue;
      try {
        if (c.destroy) c.destroy();
        else void c.disconnect?.().catch(() => undefined);
      } catch {
        // already gone
      }
    }
  };
  const error = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

  if (t.kind === 'single') {
    const client = mod.createClient({ url: t.url, disableOfflineQueue: true, socket: o.socket });
    client.on('error', (err) => o.down(error(err)));
    client.on('end', () => o.down(new Error('connection closed')));
    client.on('ready', () => o.up());
    let sub: SingleClient | undefined;
    return {
      ready: client.connect().then(() => undefined),
      send: (args) => client.sendCommand(args),
      async subscribe(channel, listener) {
        sub = client.duplicate();
        sub.on('error', () => undefined); // the main client reports the state
        // After a reconnect node-redis resubscribes; messages sent meanwhile are lost.
        sub.on('ready', () => o.resync());
        await sub.connect();
        await sub.subscribe(channel, listener);
      },
      get isReady() {
        return client.isReady;
      },
      close: () => destroy(sub, client),
    };
  }

  const node = { username: t.auth.username, password: t.auth.password, disableOfflineQueue: true, socket: { ...o.socket, ...(t.tls ? { tls: true } : {}) } };
  if (t.kind === 'cluster') {
    const cluster = mod.createCluster({
      rootNodes: t.nodes.map((n) => ({ socket: { host: n.host, port: n.port } })),
      // Every connection, to the root nodes and to the nodes discovered from them, is made from these.
      defaults: node,
      // Connect to the nodes a command needs (the fleet's slot, the pub/sub node), not to all of them.
      minimizeConnections: true,
    });
    cluster.on('error', (err) => o.down(error(err)));
    let ready = false;
    // A node's client that connected again: a reconnect, or a replica promoted and rediscovered.
    cluster.on('node-ready', () => ready && o.resync());
    return {
      ready: cluster.connect().then(() => {
        ready = true;
      }),
      // Every fleet key is in the slot of `{prefix}`: the command goes to that slot's primary.
      send: (args) => cluster.sendCommand(o.slotKey, false, args),
      // Classic pub/sub: the scripts PUBLISH, which a Cluster delivers on every node.
      subscribe: (channel, listener) => cluster.subscribe(channel, listener).then(() => undefined),
      get isReady() {
        return cluster.isReady;
      },
      close: () => destroy(cluster),
    };
  }

  const sentinel = mod.createSentinel({
    name: t.name,
    sentinelRootNodes: t.nodes.map((n) => ({ host: n.host, port: n.port })),
    nodeClientOptions: { ...node, ...(t.database !== undefined ? { database: t.database } : {}) },
    // The sentinels get the marker and timeouts, not the data nodes' credentials.
    sentinelClientOptions: { socket: node.socket },
    masterPoolSize: 1,
  });
  sentinel.on('error', (err) => o.down(error(err)));
  let ready = false;
  // `ready` again after a reconfiguration (a new primary): resync.
  sentinel.on('ready', () => ready && o.resync());
  return {
    ready: sentinel.connect().then(() => {
      ready = true;
    }),
    send: (args) => sentinel.sendCommand(false, args),
    subscribe: (channel, listener) => sentinel.subscribe(channel, listener).then(() => undefined),
    get isReady() {
      return sentinel.isReady;
    },
    close: () => destroy(sentinel),
  };
}
