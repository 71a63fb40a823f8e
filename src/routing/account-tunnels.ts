/**
 * Opening a tunnel for an account — the one place every layer's connection
 * goes through (undici pools, http agents, the socket relay, egress probes):
 * - waits for the account's egress verification gate (verifyOnStart,
 *   verifyOnRotate) and refuses quarantined accounts;
 * - records the proxy's health and the account's traffic;
 * - on a failure before any byte of the request left (the proxy refused the
 *   connection or the handshake), lets failover move the account, and
 *   retries once on the account's *new* active proxy. A request whose bytes
 *   may have reached the target is never replayed: a tunnel that was
 *   established is never retried here.
 */
import type { Socket } from 'node:net';
import { ProxyConnectError } from '../errors.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import { openTunnel } from '../tunnel/open-tunnel.js';
import type { TunnelTarget } from '../tunnel/target.js';
import type { Trust } from '../trust/trust.js';

export interface AccountTunnelDeps {
  /** Resolves when the account may open tunnels (verification gate); rejects when quarantined. */
  readonly gate: (account: string) => Promise<void> | undefined;
  readonly opened: (account: string, proxy: ProxyEndpoint, socket: Socket, latencyMs: number) => void;
  /** Records the failure; returns the account's active proxy afterwards (a different one if it failed over). */
  readonly failed: (account: string, proxy: ProxyEndpoint, error: Error) => ProxyEndpoint | undefined;
  /** The endpoint one connection of `proxy` really dials, if not `proxy` itself (a per-connection gateway's fresh session). */
  readonly via?: (proxy: ProxyEndpoint) => ProxyEndpoint | undefined;
  /** `systemCa` for https proxies. */
  readonly trust?: Trust;
  /** In a fleet: resolves when the account holds its lease (probes too); undefined while it holds. */
  readonly lease?: (account: string) => Promise<void> | undefined;
  /** In a fleet: the proxy the account leaves through once the lease is there (its first assignment may differ). */
  readonly current?: (account: string) => ProxyEndpoint | undefined;
}

export type TunnelOpener = (target: TunnelTarget, signal?: AbortSignal) => Promise<Socket>;

export class AccountTunnels {
  constructor(private readonly deps: AccountTunnelDeps) {}

  /** The opener for one (account, proxy) pool; a `probe`'s (verifyEgress: what lifts the gate) skips the egress gate. */
  opener(account: string, proxy: ProxyEndpoint, probe = false): TunnelOpener {
    return (target, signal) => this.open(account, proxy, target, signal, true, probe);
  }

  private async open(account: string, proxy: ProxyEndpoint, target: TunnelTarget, signal: AbortSignal | undefined, mayRetry: boolean, probe: boolean): Promise<Socket> {
    const gate = probe ? undefined : this.deps.gate(account);
    if (gate) await gate;
    const lease = this.deps.lease?.(account);
    if (lease) await lease;
    const now = this.deps.current?.(account);
    if (now && now.identityKey !== proxy.identityKey) proxy = now;
    const started = performance.now();
    const via = this.deps.via?.(proxy);
    try {
      const socket = await openTunnel(via ?? proxy, target, { account, signal, trust: this.deps.trust });
      this.deps.opened(account, proxy, socket, Math.round(performance.now() - started));
      return socket;
    } catch (err) {
      if (!(err instanceof ProxyConnectError)) throw err;
      const now = this.deps.failed(account, proxy, err);
      // A per-connection gateway's retry is a fresh session on the same entry.
      if (mayRetry && now && (now.identityKey !== proxy.identityKey || via !== undefined) && !signal?.aborted) {
        return this.open(account, now, target, signal, false, probe);
      }
      throw err;
    }
  }
}
