/**
 * Option `pac` read as a source (pure: no I/O): a URL, or the script text
 * when it defines FindProxyForURL.
 */
import { ConfigError } from '../../errors.js';
import { redactUrl } from '../../proxy/redact.js';
import type { PacOptions } from '../../options.js';

export type PacSourceSpec = { readonly kind: 'script'; readonly text: string } | { readonly kind: 'url'; readonly url: URL };

/** Reads option `pac` (a URL, or the script text when it defines FindProxyForURL). @throws ConfigError */
export function pacSource(value: string, path = 'pac'): PacSourceSpec {
  if (/\bFindProxyForURL\b/.test(value)) return { kind: 'script', text: value };
  const url = URL.canParse(value.trim()) ? new URL(value.trim()) : undefined;
  if (!url || !['http:', 'https:', 'file:'].includes(url.protocol)) {
    throw new ConfigError(`${path}: expected a PAC URL (http://, https:// or file://) or the text of a PAC script (defining FindProxyForURL)`);
  }
  return { kind: 'url', url };
}

/** How the PAC is named in errors and events (credentials in its URL redacted). */
export function pacLabel(source: PacSourceSpec): string {
  return source.kind === 'script' ? 'the PAC script (given inline)' : `the PAC ${redactUrl(source.url.href)}`;
}


export interface PacSettings {
  readonly source: PacSourceSpec;
  readonly refreshInterval: number;
  readonly fetchTimeout: number;
  readonly evalTimeout: number;
  readonly cacheSize: number;
}

/** Option `pac` with its defaults. @throws ConfigError */
export function pacSettings(pac: string | PacOptions): PacSettings {
  const o: PacOptions = typeof pac === 'string' ? {} : pac;
  const source = typeof pac === 'string' ? pacSource(pac) : o.script !== undefined ? ({ kind: 'script', text: o.script } as const) : pacSource(o.url ?? '', 'pac.url');
  return {
    source,
    refreshInterval: o.refreshInterval ?? 600_000,
    fetchTimeout: o.fetchTimeout ?? 10_000,
    evalTimeout: o.evalTimeout ?? 1_000,
    cacheSize: o.cacheSize ?? 1_000,
  };
}
