/**
 * The socket layer's open tunnels, by account and proxy, so that
 * rotate(account, { closeExisting: true }) can cut the ones inside other
 * libraries' pools (ccxt's agent, an app's undici.Pool, http2 sessions).
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

  /** Destroys the account's tunnels through `proxy`; returns how many. */
  close(account: string, proxy: ProxyEndpoint): number {
    let n = 0;
    for (const [socket, through] of this.byAccount.get(account) ?? []) {
      if (through.identityKey !== proxy.identityKey) continue;
      socket.destroy();
      n++;
    }
    return n;
  }
}
