import { isIPv6 } from 'node:net';

/** Where a tunnel goes: the host exactly as the caller named it (no local DNS), and the port. */
export interface TunnelTarget {
  readonly host: string;
  readonly port: number;
}

export function formatAuthority(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The proxy answered but refused the tunnel (translated to ProxyConnectError / ProxyAuthError by openTunnel). */
export class TunnelRefusal extends Error {
  constructor(message: string, readonly status?: number, readonly auth = false) {
    super(message);
  }
}
