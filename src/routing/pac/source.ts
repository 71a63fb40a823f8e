/**
 * Where a PAC script comes from: its text given inline, a `file://` path,
 * or an `http(s)://` URL fetched by the library's own plumbing (the original
 * `http(s).request` over a marked direct connection: no hook routes it, no
 * PAC decides it) with a timeout and a size bound. Redirects are not
 * followed: give the final URL.
 */
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ConnectionOptions } from 'node:tls';
import { state } from '../../state.js';
import { directConnect, directTlsConnect, markPlumbing } from '../../plumbing.js';
import type { PacSourceSpec } from './spec.js';

/** A PAC file larger than this is refused (bytes). */
export const MAX_PAC_BYTES = 1024 * 1024;

export async function loadPacText(source: PacSourceSpec, timeoutMs: number, tls?: ConnectionOptions): Promise<string> {
  if (source.kind === 'script') return source.text;
  const { url } = source;
  if (url.protocol === 'file:') {
    const file = fileURLToPath(url);
    if ((await stat(file)).size > MAX_PAC_BYTES) throw new Error(`the file is larger than ${MAX_PAC_BYTES} bytes`);
    return readFile(file, 'utf8');
  }
  return fetchText(url, timeoutMs, tls);
}

function fetchText(url: URL, timeoutMs: number, tls: ConnectionOptions | undefined): Promise<string> {
  const secure = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port) || (secure ? 443 : 80);
  const signal = AbortSignal.timeout(timeoutMs);
  return new Promise<string>((resolve, reject) => {
    const connect = (): import('node:net').Socket =>
      secure ? directTlsConnect({ ...tls, host, port, servername: tls?.servername ?? (/^[\d.]+$|:/.test(host) ? undefined : host), ALPNProtocols: ['http/1.1'] }) : directConnect({ host, port });
    const request = secure ? state.originals.httpsRequest : state.originals.httpRequest;
    const auth = url.username ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined;
    const req = request(
      markPlumbing({
        host,
        port,
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        auth,
        headers: { accept: 'application/x-ns-proxy-autoconfig, application/javascript, text/plain, */*', connection: 'close' },
        createConnection: connect,
        signal,
      }),
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`HTTP ${res.statusCode}${res.statusCode && res.statusCode >= 300 && res.statusCode < 400 ? ' (redirects are not followed: give the final URL)' : ''}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_PAC_BYTES) {
            req.destroy(new Error(`the PAC is larger than ${MAX_PAC_BYTES} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      },
    );
    req.on('error', (err: Error) => reject(signal.aborted ? new Error(`no answer within ${timeoutMs} ms (fetchTimeout)`) : err));
    req.end();
  });
}
