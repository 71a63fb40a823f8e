/**
 * An undici `connect` function that reaches every origin through one proxy:
 * CONNECT or SOCKS via openTunnel, then TLS to the origin inside the tunnel
 * for https/wss. Tunnelling plain http too (rather than forwarding
 * absolute-URI requests) keeps one code path and lets ws:// upgrades through.
 */
import type { ConnectionOptions } from 'node:tls';
import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';
import type { TunnelOpener } from '../routing/account-tunnels.js';
import { secureTunnel } from '../tunnel/secure.js';
import { defaultPort, unbracket } from '../routing/route.js';

export interface TunnelConnectorOptions {
  readonly open: TunnelOpener;
  /** TLS options for the origin (ca, rejectUnauthorized, …), like undici ProxyAgent's `requestTls`. */
  readonly requestTls?: ConnectionOptions;
  /** Called with every socket handed to undici (for stats and rotate's closeExisting). */
  readonly onSocket?: (socket: Socket) => void;
}

export function tunnelConnector(o: TunnelConnectorOptions): buildConnector.connector {
  return (opts, callback) => {
    const host = unbracket(opts.hostname);
    const port = Number(opts.port) || defaultPort(opts.protocol);
    o.open({ host, port }).then(
      (raw) => {
        if (opts.protocol !== 'https:' && opts.protocol !== 'wss:') {
          o.onSocket?.(raw);
          callback(null, raw);
          return;
        }
        const alpn = (opts as { allowH2?: boolean }).allowH2 ? ['h2', 'http/1.1'] : ['http/1.1'];
        const secure = secureTunnel(raw, host, { ALPNProtocols: alpn, ...o.requestTls, servername: opts.servername ?? o.requestTls?.servername });
        const onError = (err: Error): void => {
          secure.destroy();
          callback(err, null);
        };
        secure.once('error', onError);
        secure.once('secureConnect', () => {
          secure.removeListener('error', onError);
          o.onSocket?.(secure);
          callback(null, secure);
        });
      },
      (err: Error) => callback(err, null),
    );
  };
}
