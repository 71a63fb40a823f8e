/**
 * TLS to an https:// proxy itself: the options every connection to it uses
 * (the tunnel and the health probe alike), and what a refused client
 * certificate looks like. A proxy that wants a client certificate (mutual
 * TLS) and does not like ours answers with a TLS alert: during the handshake
 * under TLS 1.2, and under TLS 1.3 after it — the client's handshake is
 * complete before the server has checked the certificate — as an error on
 * the first read, which is the CONNECT response. Both end up in the tunnel's
 * translation, which turns them into ProxyAuthError: the proxy refused our
 * credentials, like a 407.
 */
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { Trust } from '../trust/trust.js';

/** ca, servername, rejectUnauthorized and the client certificate of an https proxy; with `systemCa`, a cached context carrying the OS's CAs too. */
export function proxyTlsOptions(proxy: ProxyEndpoint, trust?: Trust): ConnectionOptions {
  const t = proxy.tls;
  const secret = proxy.getTlsKey();
  const options: ConnectionOptions = {
    servername: t?.servername ?? (isIP(proxy.host) ? undefined : proxy.host),
    ca: t?.ca,
    rejectUnauthorized: t?.rejectUnauthorized,
    cert: t?.cert,
    key: secret?.key,
    passphrase: secret?.passphrase,
  };
  for (const k of Object.keys(options) as (keyof ConnectionOptions)[]) if (options[k] === undefined) delete options[k];
  return trust ? trust.forProxy(proxy, options) : options;
}

// Alerts a TLS server sends about the certificate it received — only a client sends one, so they are about ours.
// The prefix is OpenSSL's and moves between versions (3.0 `SSLV3_ALERT_…`, 3.5 `SSL/TLS_ALERT_…`; `TLSV1_`, `TLSV13_`).
const CERTIFICATE_ALERT = /^ERR_SSL_[A-Z0-9/]+_ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED|CERTIFICATE_UNKNOWN|UNKNOWN_CA|ACCESS_DENIED)$/;
const HANDSHAKE_FAILURE = /^ERR_SSL_[A-Z0-9/]+_ALERT_HANDSHAKE_FAILURE$/;

/**
 * The message of a ProxyAuthError when `err` is an https proxy refusing our
 * client certificate (or the lack of one); undefined otherwise. Under TLS 1.2
 * an OpenSSL server that gets no certificate answers `handshake failure`, an
 * alert that can also mean no common cipher: it counts as a missing
 * certificate only when none is configured.
 */
export function clientCertificateRefusal(err: unknown, proxy: ProxyEndpoint): string | undefined {
  if (proxy.protocol !== 'https') return undefined;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  const sent = proxy.tls?.cert !== undefined;
  const alert = CERTIFICATE_ALERT.exec(code)?.[1];
  if (alert) {
    const name = alert.toLowerCase().replace(/_/g, ' ');
    return sent
      ? `proxy refused the client certificate (TLS alert: ${name})`
      : `proxy requires a client certificate and none is configured (TLS alert: ${name}); give the proxy tls: { cert, key }`;
  }
  if (HANDSHAKE_FAILURE.test(code) && !sent) {
    return 'proxy ended the TLS handshake (TLS alert: handshake failure), as a proxy that requires a client certificate does when none is sent; give the proxy tls: { cert, key }';
  }
  return undefined;
}
