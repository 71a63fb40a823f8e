/**
 * `systemCa: true`: the OS's CA certificates trusted in addition to Node's
 * roots by the connections the library makes itself — TLS to targets from
 * the undici and http layers (fetch, http/https, ws, global WebSocket,
 * egress probes) and TLS to https:// proxies. Connections the library only
 * relays (an app's own undici Pool, http2, grpc-js, raw tls) keep the app's
 * own TLS settings; `--use-system-ca` reaches those.
 *
 * What is trusted: the connection's `ca` if it has one (a `ca` replaces
 * Node's roots), else Node's default CAs, plus the OS's. A SecureContext
 * with a few hundred CAs takes tens of milliseconds to build (66 ms on Node
 * 20), so it is built once per distinct set of TLS options and handed to
 * tls.connect as `secureContext`; the options themselves stay on the request
 * (Node's https.Agent keys its pooled sockets by them). Options that cannot
 * be compared (a KeyObject, functions) get the CA list itself, per
 * connection. A connection that brings its own `secureContext` is left
 * alone: nothing can be added to it.
 *
 * Off (the default), every method returns its argument unchanged.
 */
import { createHash } from 'node:crypto';
import * as tls from 'node:tls';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import { nodeDefaultCertificates, readSystemStore } from './system-ca.js';

/** The tls.connect options tls.createSecureContext() reads. */
const CONTEXT_KEYS = [
  'ca', 'cert', 'key', 'pfx', 'passphrase', 'ciphers', 'ecdhCurve', 'crl', 'dhparam', 'honorCipherOrder', 'minVersion', 'maxVersion',
  'secureOptions', 'secureProtocol', 'sessionIdContext', 'sigalgs', 'privateKeyEngine', 'privateKeyIdentifier', 'clientCertEngine',
  'ticketKeys', 'sessionTimeout', 'allowPartialTrustChain',
] as const;
const MAX_CONTEXTS = 32;

type Options = tls.ConnectionOptions & Record<string, unknown>;

export class Trust {
  #system: readonly string[] | undefined;
  readonly #contexts = new Map<string, tls.SecureContext>();
  readonly #proxyContexts = new WeakMap<ProxyEndpoint, tls.SecureContext>();

  constructor(readonly systemCa: boolean) {}

  /** TLS options for a connection to a target, with the OS's CAs added when `systemCa` is on. */
  forTarget<T extends tls.ConnectionOptions | undefined>(options: T): T {
    if (!this.systemCa || options?.secureContext) return options;
    const o = (options ?? {}) as Options;
    const key = contextKey(o);
    if (key === undefined) return { ...o, ca: this.trusted(o.ca) } as T;
    let context = this.#contexts.get(key);
    if (!context) {
      const fields: Record<string, unknown> = {};
      for (const k of CONTEXT_KEYS) if (o[k] !== undefined) fields[k] = o[k];
      context = tls.createSecureContext({ ...fields, ca: this.trusted(o.ca) } as tls.SecureContextOptions);
      if (this.#contexts.size >= MAX_CONTEXTS) this.#contexts.delete(this.#contexts.keys().next().value!);
      this.#contexts.set(key, context);
    }
    return { ...o, secureContext: context } as T;
  }

  /** TLS options for a connection to an https proxy (proxyTlsOptions' result), one context per endpoint. */
  forProxy(proxy: ProxyEndpoint, options: tls.ConnectionOptions): tls.ConnectionOptions {
    if (!this.systemCa) return options;
    let context = this.#proxyContexts.get(proxy);
    if (!context) {
      const { ca, cert, key, passphrase } = options;
      context = tls.createSecureContext({ ca: this.trusted(ca), cert, key, passphrase });
      this.#proxyContexts.set(proxy, context);
    }
    return { servername: options.servername, rejectUnauthorized: options.rejectUnauthorized, secureContext: context };
  }

  /** The OS's CAs (read once; a process warning if there are none). */
  system(): readonly string[] {
    if (this.#system) return this.#system;
    const store = readSystemStore();
    if (store.certificates.length === 0) {
      process.emitWarning(`systemCa: found no CA certificates in ${store.source}; only Node's own CAs are trusted`, { code: 'SESSION_PROXY_SYSTEM_CA' });
    }
    return (this.#system = store.certificates);
  }

  private trusted(ca: tls.ConnectionOptions['ca']): string[] {
    const base = ca === undefined ? nodeDefaultCertificates() : (Array.isArray(ca) ? ca : [ca]).map(String);
    return [...new Set([...base, ...this.system()])];
  }
}

/** A digest of the context-relevant options, or undefined when one cannot be compared (KeyObject, { pem, passphrase }, …). */
function contextKey(o: Options): string | undefined {
  const h = createHash('sha256');
  for (const k of CONTEXT_KEYS) {
    const v = o[k];
    if (v === undefined) continue;
    h.update(`\0${k}=`);
    for (const part of Array.isArray(v) ? v : [v]) {
      if (typeof part === 'string') h.update(`s${part.length}:`).update(part);
      else if (ArrayBuffer.isView(part)) h.update(`b${part.byteLength}:`).update(part as Uint8Array);
      else if (typeof part === 'number' || typeof part === 'boolean') h.update(`v${String(part)}`);
      else return undefined;
    }
  }
  return h.digest('hex');
}
