/**
 * The socket layer's open tunnels, by account and proxy, so that rotate()
 * can move the ones inside other libraries' pools (ccxt's agent, an app's
 * undici.Pool, http2 sessions): drain them (pools/drain.ts), or cut them at
 * once with `closeExisting: true`.
 */
import type { Socket } from 'node:net';
import type { ProxyEndpoint } from '../../proxy/endpoint.js';

export class SocketTunnelRegistry {
  private readonly byAccount = new Map<string, Map<Socket, ProxyEndpoint>>();

  track(socket: Socket, account: string, proxy: ProxyEndpoint): void {
    let sockets = this.byAccount.get(account);
    if (!sockets) this.byAccount.set(account, (sockets = new Map()));
    const own = sockets;
    own.set(socket, proxy);
    socket.once('close', () => {
      own.delete(socket);
      if (own.size === 0 && this.byAccount.get(account) === own) this.byAccount.delete(account);
    });
  }

  /** The account's open tunnels through `proxy`. */
  sockets(account: string, proxy: ProxyEndpoint): Socket[] {
    const out: Socket[] = [];
    for (const [socket, through] of this.byAccount.get(account) ?? []) if (through.identityKey === proxy.identityKey) out.push(socket);
    return out;
  }

  /** Destroys the account's tunnels through `proxy`; returns how many. */
  close(account: string, proxy: ProxyEndpoint): number {
    const sockets = this.sockets(account, proxy);
    for (const socket of sockets) socket.destroy();
    return sockets.length;
  }
}
