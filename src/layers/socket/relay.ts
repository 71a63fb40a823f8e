/**
 * The socket layer's relay: a loopback listener inside the process. A
 * connection the socket hook decides to tunnel is redirected here (the
 * caller keeps its own, genuine net.Socket — TLS, http2 and every socket
 * option work natively on it), and the relay joins it to a tunnel opened
 * through the account's proxy. Bytes the caller writes before the tunnel is
 * up wait in the relay; none reach anyone else.
 *
 * Pairing: the caller's socket registers under its local port when its TCP
 * connection to the relay is up; the relay's accepted socket has that port
 * as remotePort. Whichever side arrives first waits for the other.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import type { Target } from '../../routing/route.js';
import type { TunnelOpener } from '../../routing/account-tunnels.js';

export interface RelayEntry {
  readonly caller: Socket;
  readonly open: TunnelOpener;
  readonly target: Target;
}

const PAIRING_TIMEOUT_MS = 10_000;

export class Relay {
  private readonly server = net.createServer({ pauseOnConnect: true, noDelay: true });
  private readonly waitingCallers = new Map<number, RelayEntry>();
  private readonly waitingAccepted = new Map<number, Socket>();
  private readonly open = new Set<Socket>();
  /** The relay's port once it listens (listen() with a host completes asynchronously). */
  port: number | undefined;
  readonly ready: Promise<number>;

  constructor() {
    this.server.on('connection', (accepted) => this.onAccepted(accepted));
    this.ready = new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = (this.server.address() as net.AddressInfo).port;
        resolve(this.port);
      });
    });
    this.ready.catch(() => undefined);
    this.server.unref();
  }

  /** Called when the caller's socket has connected to the relay. */
  register(localPort: number, entry: RelayEntry): void {
    const accepted = this.waitingAccepted.get(localPort);
    if (accepted) {
      this.waitingAccepted.delete(localPort);
      this.join(accepted, entry);
    } else {
      this.waitingCallers.set(localPort, entry);
      setTimeout(() => this.waitingCallers.delete(localPort), PAIRING_TIMEOUT_MS).unref();
    }
  }

  private onAccepted(accepted: Socket): void {
    this.open.add(accepted);
    accepted.once('close', () => this.open.delete(accepted));
    accepted.on('error', () => undefined);
    const port = accepted.remotePort!;
    const entry = this.waitingCallers.get(port);
    if (entry) {
      this.waitingCallers.delete(port);
      this.join(accepted, entry);
      return;
    }
    this.waitingAccepted.set(port, accepted);
    setTimeout(() => {
      if (this.waitingAccepted.get(port) === accepted) {
        this.waitingAccepted.delete(port);
        accepted.destroy();
      }
    }, PAIRING_TIMEOUT_MS).unref();
  }

  private join(accepted: Socket, entry: RelayEntry): void {
    entry.open(entry.target).then(
      (tunnel) => {
        if (accepted.destroyed || entry.caller.destroyed) {
          tunnel.destroy();
          return;
        }
        this.open.add(tunnel);
        tunnel.once('close', () => this.open.delete(tunnel));
        tunnel.setNoDelay(true);
        tunnel.on('error', (err) => entry.caller.destroy(err));
        accepted.on('close', () => tunnel.destroy());
        tunnel.on('close', () => accepted.destroy());
        accepted.pipe(tunnel);
        tunnel.pipe(accepted);
        accepted.resume();
      },
      (err: Error) => {
        // The caller sees the typed error as its own socket's error.
        entry.caller.destroy(err);
        accepted.destroy();
      },
    );
  }

  close(): void {
    for (const s of this.open) s.destroy();
    this.server.close();
  }
}
