/**
 * A `FindProxyForURL` answer, `PROXY h:p; HTTPS h:p; SOCKS5 h:p; SOCKS h:p;
 * DIRECT`, as the entries to try in order. As in browsers: `PROXY` and
 * `HTTP` are HTTP proxies (CONNECT), `HTTPS` an HTTP proxy spoken to over
 * TLS, `SOCKS` and `SOCKS4` SOCKS4 (the name resolved locally, reported on
 * `session-proxy:dns`), `SOCKS5` SOCKS5 with the name resolved by the proxy.
 * A missing port is the protocol's default (80, 443, 1080). Entries that
 * cannot be read are skipped, and said so in the error if none is left.
 */
import { parseProxy } from '../../proxy/parse.js';
import type { ProxyEndpoint, ProxyProtocol } from '../../proxy/endpoint.js';

export type PacEntry = { readonly kind: 'direct' } | { readonly kind: 'proxy'; readonly proxy: ProxyEndpoint };

export interface PacAnswer {
  /** The answer as the script returned it, trimmed. */
  readonly text: string;
  readonly entries: readonly PacEntry[];
  /** Entries that could not be read. */
  readonly skipped: readonly string[];
}

const PROTOCOLS: Readonly<Record<string, ProxyProtocol>> = { PROXY: 'http', HTTP: 'http', HTTPS: 'https', SOCKS: 'socks4', SOCKS4: 'socks4', SOCKS5: 'socks5h' };

export function parsePacAnswer(text: string): PacAnswer {
  const entries: PacEntry[] = [];
  const skipped: string[] = [];
  for (const part of text.split(';')) {
    const item = part.trim();
    if (!item) continue;
    const [keyword = '', address, ...extra] = item.split(/\s+/);
    const kind = keyword.toUpperCase();
    if (kind === 'DIRECT' && address === undefined) {
      entries.push({ kind: 'direct' });
      continue;
    }
    const protocol = PROTOCOLS[kind];
    if (!protocol || address === undefined || extra.length || address.includes('@') || address.includes('/')) {
      skipped.push(item);
      continue;
    }
    try {
      entries.push({ kind: 'proxy', proxy: parseProxy(`${protocol}://${address}`) });
    } catch {
      skipped.push(item);
    }
  }
  return { text: text.trim(), entries, skipped };
}
