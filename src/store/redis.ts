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
import { kPlumbing } from '../plumbing.js';
import { redactUrl } from '../proxy/redact.js';
import { SCRIPTS, type ScriptName } from './scripts.js';
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

/** The subset of a node-redis client used here (v5 and v6 alike). */
interface Client {
  connect(): Promise<unknown>;
  destroy?(): void;
  disconnect?(): Promise<void>;
  quit?(): Promise<unknown>;
  close?(): Promise<unknown>;
  duplicate(): Client;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  sendCommand(args: string[]): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  readonly isReady: boolean;
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
  readonly url: string;
  readonly prefix: string;
  /** Per command: a store slower than this counts as down (ms). */
  readonly timeoutMs: number;
}

export class RedisStore implements FleetStore {
  readonly kind = 'redis' as const;
  readonly where: string;
  private client: Client | undefined;
  private sub: Client | undefined;
  private readonly tag: string;
  private readonly epochKey: string;
  private readonly shas = new Map<ScriptName, string>();
  private readonly stateListeners = new Set<(state: 'up' | 'down', error?: Error) => void>();
  private state: 'up' | 'down' | 'new' = 'new';
  private closed = false;
  private connecting: Promise<void> | undefined;
  /** The client while its first connection is being made (closed on close()). */
  private opening: Client | undefined;

  constructor(private readonly o: RedisStoreOptions) {
    this.where = redactUrl(o.url);
    this.tag = `{${o.prefix}}`;
    this.epochKey = `${this.tag}:epoch`;
    for (const [name, text] of Object.entries(SCRIPTS)) this.shas.set(name as ScriptName, createHash('sha1').update(text).digest('hex'));
  }

  connect(): Promise<void> {
    return (this.connecting ??= this.open());
  }

  private async open(): Promise<void> {
    let mod: { createClient: (o: object) => Client };
    try {
      mod = (await import('redis')) as unknown as { createClient: (o: object) => Client };
    } catch (err) {
      throw new ConfigError(`store ${this.where}: the Redis client is not installed: ${REDIS_PACKAGE_HINT}`, { cause: err });
    }
    const client = mod.createClient({
      url: this.o.url,
      disableOfflineQueue: true,
      // An enumerable marker: node-redis spreads these options into the ones net/tls.connect
      // receive, where the socket layer recognises the library's own connections.
      socket: { [kPlumbing]: true, connectTimeout: Math.max(1000, this.o.timeoutMs), reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1000) },
    });
    client.on('error', (err) => this.setState('down', err as Error));
    client.on('end', () => this.setState('down', new Error('connection closed')));
    client.on('ready', () => this.setState('up'));
    this.opening = client;
    await client.connect();
    this.client = client;
    this.setState('up');
  }

  onState(listener: (state: 'up' | 'down', error?: Error) => void): void {
    this.stateListeners.add(listener);
  }

  async subscribe(listener: (message: FleetMessage) => void): Promise<void> {
    if (!this.client) throw new Error('not connected');
    const sub = this.client.duplicate();
    sub.on('error', () => undefined); // the main client reports the state
    // After a reconnect node-redis resubscribes; messages sent meanwhile are lost, so resync.
    sub.on('ready', () => this.setState('up', undefined, true));
    this.sub = sub;
    await sub.connect();
    await sub.subscribe(`${this.tag}:events`, (message) => {
      try {
        listener(JSON.parse(message) as FleetMessage);
      } catch {
        // not ours
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of [this.sub, this.client ?? this.opening]) {
      if (!c) continue;
      try {
        if (c.destroy) c.destroy();
        else await c.disconnect?.();
      } catch {
        // already gone
      }
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
        return await client.sendCommand(['EVALSHA', this.shas.get(name)!, ...args]);
      } catch (err) {
        if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
        return client.sendCommand(['EVAL', SCRIPTS[name], ...args]);
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
