/**
 * The network entry points exactly as Node shipped them, captured once per
 * process (state.ts keeps the first capture, so a copy of the library loaded
 * after another one installed its patches still gets the real functions).
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as http from 'node:http';
import * as https from 'node:https';

export interface Originals {
  readonly netConnect: typeof net.connect;
  readonly netCreateConnection: typeof net.createConnection;
  readonly socketConnect: net.Socket['connect'];
  readonly tlsConnect: typeof tls.connect;
  readonly httpRequest: typeof http.request;
  readonly httpGet: typeof http.get;
  readonly httpsRequest: typeof https.request;
  readonly httpsGet: typeof https.get;
}

export function captureOriginals(): Originals {
  return Object.freeze({
    netConnect: net.connect,
    netCreateConnection: net.createConnection,
    socketConnect: net.Socket.prototype.connect,
    tlsConnect: tls.connect,
    httpRequest: http.request,
    httpGet: http.get,
    httpsRequest: https.request,
    httpsGet: https.get,
  });
}
