/**
 * http.Agent / https.Agent that open every connection through one proxy, with
 * keep-alive. One pair per (account, proxy identity), so a pooled socket can
 * never carry another account's request or another proxy's credentials.
 * Node's Agent accepts an asynchronous createConnection(options, callback):
 * the request waits for the tunnel; nothing is written before it is up.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import type { TunnelOpener } from '../routing/account-tunnels.js';
import { secureTunnel } from '../tunnel/secure.js';
import { unbracket } from '../routing/route.js';

type Callback = (err: Error | null, socket: Socket) => void;

export interface TunnelAgentOptions {
  readonly open: TunnelOpener;
  readonly onSocket?: (socket: Socket) => void;
}

const AGENT_DEFAULTS = { keepAlive: true, scheduling: 'lifo' as const };

function connectThrough(o: TunnelAgentOptions, secure: boolean, options: https.RequestOptions, cb: Callback): void {
  const host = unbracket(String(options.host ?? options.hostname ?? 'localhost'));
  const port = Number(options.port) || (secure ? 443 : 80);
  o.open({ host, port }, options.signal ?? undefined).then(
    (raw) => {
      // Returned before the TLS handshake completes, as https.Agent's own createConnection does.
      const socket = secure ? secureTunnel(raw, host, tlsOptionsOf(options)) : raw;
      // Agent puts its keep-alive settings on the options it hands createConnection.
      const ka = options as { keepAlive?: boolean; keepAliveInitialDelay?: number };
      if (ka.keepAlive) socket.setKeepAlive(true, Number(ka.keepAliveInitialDelay) || 0);
      o.onSocket?.(socket);
      cb(null, socket);
    },
    (err: Error) => cb(err, undefined as never),
  );
}

/** The TLS-relevant request options Node passes to createConnection. */
function tlsOptionsOf(o: https.RequestOptions): import('node:tls').ConnectionOptions {
  const { ca, secureContext, cert, key, pfx, passphrase, rejectUnauthorized, servername, ciphers, ecdhCurve, minVersion, maxVersion, secureOptions, secureProtocol, sessionIdContext, crl, sigalgs, honorCipherOrder, checkServerIdentity } = o as https.RequestOptions & Record<string, never>;
  const picked = { ca, secureContext, cert, key, pfx, passphrase, rejectUnauthorized, servername, ciphers, ecdhCurve, minVersion, maxVersion, secureOptions, secureProtocol, sessionIdContext, crl, sigalgs, honorCipherOrder, checkServerIdentity, ALPNProtocols: ['http/1.1'] };
  for (const k of Object.keys(picked) as (keyof typeof picked)[]) if (picked[k] === undefined) delete picked[k];
  return picked;
}

export class HttpTunnelAgent extends http.Agent {
  constructor(readonly tunnel: TunnelAgentOptions) {
    super(AGENT_DEFAULTS);
  }
  override createConnection(options: http.ClientRequestArgs, cb?: Callback): undefined {
    connectThrough(this.tunnel, false, options as https.RequestOptions, cb!);
    return undefined;
  }
}

export class HttpsTunnelAgent extends https.Agent {
  constructor(readonly tunnel: TunnelAgentOptions) {
    super(AGENT_DEFAULTS);
  }
  override createConnection(options: http.ClientRequestArgs, cb?: Callback): undefined {
    connectThrough(this.tunnel, true, options as https.RequestOptions, cb!);
    return undefined;
  }
}
