/**
 * Traffic counters per (account, proxy): requests, failures, open tunnels,
 * bytes through the tunnels (what proxies bill by the GB), last latency.
 * Bytes are read off the raw tunnel sockets, so they include TLS and HTTP
 * framing — what the proxy carried.
 */
import type { Socket } from 'node:net';

export interface TrafficCounters {
  requests: number;
  failures: number;
  openConnections: number;
  bytesSent: number;
  bytesReceived: number;
  lastLatencyMs: number | undefined;
}

export function emptyCounters(): TrafficCounters {
  return { requests: 0, failures: 0, openConnections: 0, bytesSent: 0, bytesReceived: 0, lastLatencyMs: undefined };
}

export class TrafficStats {
  private readonly counters = new Map<string, TrafficCounters>();
  private readonly live = new Map<string, Set<Socket>>();
  private readonly perProxy = new Map<string, number>();

  private key(account: string, proxyKey: string): string {
    return `${account}\0${proxyKey}`;
  }

  of(account: string, proxyKey: string): TrafficCounters {
    const k = this.key(account, proxyKey);
    let c = this.counters.get(k);
    if (!c) this.counters.set(k, (c = emptyCounters()));
    return c;
  }

  request(account: string, proxyKey: string): void {
    this.of(account, proxyKey).requests++;
    this.perProxy.set(proxyKey, (this.perProxy.get(proxyKey) ?? 0) + 1);
  }

  /** Requests routed through a proxy, all accounts together (the `least-used` strategy asks on every move). */
  requestsThrough(proxyKey: string): number {
    return this.perProxy.get(proxyKey) ?? 0;
  }

  failure(account: string, proxyKey: string): void {
    this.of(account, proxyKey).failures++;
  }

  /** Counts a tunnel's bytes while it is open and after it closes. */
  tunnel(account: string, proxyKey: string, socket: Socket, latencyMs: number): void {
    const k = this.key(account, proxyKey);
    const c = this.of(account, proxyKey);
    c.lastLatencyMs = latencyMs;
    c.openConnections++;
    let set = this.live.get(k);
    if (!set) this.live.set(k, (set = new Set()));
    set.add(socket);
    socket.once('close', () => {
      set.delete(socket);
      if (set.size === 0 && this.live.get(k) === set) this.live.delete(k);
      c.openConnections--;
      c.bytesSent += socket.bytesWritten;
      c.bytesReceived += socket.bytesRead;
    });
  }

  /** Drops a removed account's counters. */
  forget(account: string): void {
    for (const k of this.counters.keys()) if (k.startsWith(`${account}\0`)) this.counters.delete(k);
  }

  /** A snapshot: closed tunnels' totals plus the open ones' so far. */
  snapshot(): Array<{ account: string; proxyKey: string } & TrafficCounters> {
    const out: Array<{ account: string; proxyKey: string } & TrafficCounters> = [];
    for (const [k, c] of this.counters) {
      const [account, proxyKey] = k.split('\0');
      let sent = c.bytesSent;
      let received = c.bytesReceived;
      for (const s of this.live.get(k) ?? []) {
        sent += s.bytesWritten;
        received += s.bytesRead;
      }
      out.push({ account, proxyKey, ...c, bytesSent: sent, bytesReceived: received });
    }
    return out;
  }
}
