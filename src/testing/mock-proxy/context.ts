/**
 * What every protocol handler of one mock proxy shares: its options, faults,
 * log, and the registry of open sockets that lets `close()` leave no handle
 * behind (vitest only exits when nothing holds the event loop).
 */
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultState } from './faults.js';
import type { MockProxyLogEntry, MockProxyOptions, MockProxyProtocol } from './types.js';

export interface ResolvedOptions {
  readonly host: string;
  readonly protocols: ReadonlySet<MockProxyProtocol>;
  readonly auth: { readonly username: string; readonly password: string } | undefined;
  readonly egressIp: string | undefined;
  /** Keys lower-cased: hostnames are case-insensitive. */
  readonly hosts: ReadonlyMap<string, string>;
}

const ALL_PROTOCOLS: readonly MockProxyProtocol[] = ['http', 'connect', 'socks4', 'socks5'];

export function resolveOptions(options: MockProxyOptions): ResolvedOptions {
  const protocols = options.protocols ?? ALL_PROTOCOLS;
  for (const p of protocols) {
    if (!ALL_PROTOCOLS.includes(p)) throw new TypeError(`unknown mock proxy protocol: ${String(p)}`);
  }
  if (protocols.length === 0) throw new TypeError('protocols must name at least one protocol');
  if (options.egressIp !== undefined && net.isIP(options.egressIp) === 0) {
    throw new TypeError(`egressIp must be an IP address, got ${options.egressIp}`);
  }
  const hosts = new Map<string, string>();
  for (const [name, address] of Object.entries(options.hosts ?? {})) {
    if (net.isIP(address) === 0) throw new TypeError(`hosts["${name}"] must be an IP address, got ${address}`);
    hosts.set(name.toLowerCase(), address);
  }
  return {
    host: options.host ?? '127.0.0.1',
    protocols: new Set(protocols),
    auth: options.auth ? { username: options.auth.username, password: options.auth.password } : undefined,
    egressIp: options.egressIp,
    hosts,
  };
}

export type EntryInit = Pick<MockProxyLogEntry, 'protocol' | 'targetHost' | 'targetPort' | 'username' | 'rawHead'>;

export class ProxyContext {
  readonly log: MockProxyLogEntry[] = [];
  private nextId = 1;
  /** Client connections accepted since the start (refused and stalled ones included). */
  accepted = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly clients = new Set<net.Socket>();
  private readonly shutdown = new AbortController();

  constructor(
    readonly options: ResolvedOptions,
    readonly faults: FaultState,
  ) {}

  get closed(): boolean {
    return this.shutdown.signal.aborted;
  }

  /** Registers a socket so close() can destroy it; errors are expected here (resets are a feature). */
  track(socket: net.Socket, client = false): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    if (client) {
      this.clients.add(socket);
      this.accepted++;
    }
    socket.on('error', () => {
      // Handled by whoever reads the socket; this listener only keeps an
      // unexpected reset from becoming an uncaught 'error' event.
    });
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.clients.delete(socket);
    });
  }

  openConnections(): number {
    return this.clients.size;
  }

  openEntry(init: EntryInit): MockProxyLogEntry {
    const entry: MockProxyLogEntry = {
      id: this.nextId++,
      protocol: init.protocol,
      targetHost: init.targetHost,
      targetPort: init.targetPort,
      rawHead: init.rawHead,
      status: 'open',
      bytesIn: 0,
      bytesOut: 0,
      openedAt: Date.now(),
    };
    // Only set when known, so `toEqual` in tests need not spell out `username: undefined`.
    if (init.username !== undefined) entry.username = init.username;
    this.log.push(entry);
    return entry;
  }

  /** Final status of an entry; the first settlement wins (a reset is not later overwritten by 'ok'). */
  settle(entry: MockProxyLogEntry, status: Exclude<MockProxyLogEntry['status'], 'open'>, error?: string): void {
    if (entry.status !== 'open') return;
    entry.status = status;
    entry.closedAt = Date.now();
    if (error !== undefined) entry.error = error;
  }

  /** The latency fault; rejects (AbortError) when the proxy closes, so no timer outlives it. */
  async delay(): Promise<void> {
    const ms = this.faults.latencyMs;
    if (ms > 0) await sleep(ms, undefined, { signal: this.shutdown.signal });
  }

  /**
   * Destroys every socket and waits until each has emitted 'close', so the
   * tunnels have settled their entries by the time this resolves. Entries
   * still open after that (a handshake cut short) are settled as errors.
   */
  async close(): Promise<void> {
    this.shutdown.abort();
    const closing = [...this.sockets].map(
      (socket) => new Promise<void>((resolve) => (socket.closed ? resolve() : socket.once('close', () => resolve()))),
    );
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(closing);
    for (const entry of this.log) this.settle(entry, 'error', 'mock proxy closed');
  }
}
