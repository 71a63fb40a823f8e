/**
 * An env-reading client (grpc-js, an SDK using proxy-from-env) sent
 * `CONNECT target` to a configured proxy because we exported it in
 * HTTPS_PROXY. Route the *target* by the table instead: the client gets a
 * stand-in socket that answers its CONNECT with 200 once the real tunnel is
 * up through the proxy the table names (any protocol, SOCKS included) — or,
 * when the table lets the target go (noProxy, a 'direct' rule), once a
 * direct connection is up — then relays bytes. The client's own proxy credentials never leave the process.
 */
import type * as http from 'node:http';
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { state } from '../state.js';
import type { Target } from '../routing/route.js';
import type { HttpLayerDeps } from './http.js';
import type { RequestOptions, ResponseCallback } from './http-args.js';
import { claim } from '../guard/ownership.js';
import { directConnect } from '../plumbing.js';

function connectDirect(target: Target): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = directConnect({ host: target.host, port: target.port });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
  });
}

export function connectViaAccountProxy(deps: HttpLayerDeps, options: RequestOptions, callback: ResponseCallback | undefined, target: Target): http.ClientRequest {
  const action = deps.router.decide(target, 'http');
  // Passed (noProxy, a 'direct' rule, a direct default route): straight to the target, never through
  // the proxy the client addressed (the default route's, which a rule or a scope may not want).
  const tunnel = action.kind === 'tunnel' ? action.open(target) : action.kind === 'pass' ? connectDirect(target) : Promise.reject(action.error);
  const stand = new TunnelStandIn(tunnel);
  // The client gets the stand-in as its CONNECT socket: it serves the route the tunnel was opened for.
  claim(stand as unknown as Socket, action.route);
  return state.originals.httpRequest({ ...options, agent: undefined, createConnection: () => stand as unknown as Socket }, callback);
}

/** Swallows the client's CONNECT request head, answers 200 when the tunnel is up, then relays. */
class TunnelStandIn extends Duplex {
  private tunnel: Socket | undefined;
  private headSeen = false;
  private pending: Buffer[] = [];

  constructor(tunnel: Promise<Socket>) {
    super();
    tunnel.then(
      (socket) => {
        this.tunnel = socket;
        socket.on('data', (chunk: Buffer) => { if (!this.push(chunk)) socket.pause(); });
        socket.on('end', () => this.push(null));
        socket.on('error', (err) => this.destroy(err));
        socket.on('close', () => this.destroy());
        this.push(Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n'));
        for (const chunk of this.pending) socket.write(chunk);
        this.pending = [];
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _read(): void {
    this.tunnel?.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (!this.headSeen) {
      // The first write is the CONNECT request head, meant for the proxy we replace.
      const end = chunk.indexOf('\r\n\r\n');
      if (end === -1) return done();
      this.headSeen = true;
      chunk = chunk.subarray(end + 4);
      if (!chunk.length) return done();
    }
    if (this.tunnel) this.tunnel.write(chunk, () => done());
    else {
      this.pending.push(chunk);
      done();
    }
  }

  override _final(done: (err?: Error | null) => void): void {
    this.tunnel?.end();
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.tunnel?.destroy();
    done(err);
  }

  setNoDelay(): this { this.tunnel?.setNoDelay(true); return this; }
  setKeepAlive(): this { return this; }
  setTimeout(): this { return this; }
  ref(): this { return this; }
  unref(): this { return this; }
}
