/**
 * The resolved configuration as JSON, in the config-file format: what a
 * child process or Worker is handed (children/child-config.ts decides which
 * part — its route's pools, or all of them; children/config-files.ts where
 * it goes — a private file, never the environment). It carries passwords.
 *
 * Only what the file format can express is carried: proxies (URL, user,
 * password, label, connect timeout, TLS ca/rejectUnauthorized/servername and
 * a PEM client certificate with its key and passphrase — secrets like the
 * password), noProxy, rules (their proxies likewise), pac, the booleans, defaultProtocol, requestTls (the same TLS
 * keys) and the JSON-able pass-through options. Functions, KeyObjects and
 * other TLS options are not.
 */
import { parsePoolEntry } from '../gateways/entry.js';
import { gatewayDefinitionOf, isGatewayDefinition } from '../gateways/definition.js';
import { DEFAULT_CONNECT_TIMEOUT, hostForUrl, type ProxyEndpoint, type ProxyTlsKey, type ProxyTlsOptions } from '../proxy/endpoint.js';
import type { ProxySpec, SessionProxyOptions } from '../options.js';
import { forbiddenKey, isForbiddenKey, own, setOwn } from './keys.js';
import { keyPath } from './path.js';
import { BOOLEAN_KEYS, PASS_THROUGH, accepts } from './values.js';
import { RESERVED_ACCOUNT } from './document.js';

export interface SerializeOptions {
  /**
   * The active proxy of a pool in the parent (after rotations/failover;
   * `default` names the default pool): that pool is written from it on, so
   * the child starts where the parent is.
   */
  active?: (pool: string) => ProxyEndpoint | undefined;
}

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

export function serializeConfig(options: SessionProxyOptions, o: SerializeOptions = {}): string {
  return JSON.stringify(toDocument(options, o));
}

export function toDocument(options: SessionProxyOptions, o: SerializeOptions = {}): Record<string, Json> {
  // Own reads only, own properties out: nothing inherited is configuration, and no account name
  // may become a prototype (the child would not find its account and stop at start-up).
  const get = (key: string): unknown => own(options, key);
  const defaultProtocol = get('defaultProtocol') as SessionProxyOptions['defaultProtocol'];
  const parse = { defaultProtocol };
  const doc: Record<string, Json> = {};
  const proxy = get('proxy') as ProxySpec | undefined;
  if (proxy !== undefined) doc.proxy = pool(proxy, parse, o.active?.(RESERVED_ACCOUNT));
  const accountSpecs = get('accounts') as SessionProxyOptions['accounts'];
  if (accountSpecs) {
    const accounts: Record<string, Json> = {};
    for (const [name, spec] of Object.entries(accountSpecs)) {
      if (isForbiddenKey(name)) throw forbiddenKey(keyPath('accounts', name), name);
      setOwn(accounts, name, pool(spec, parse, o.active?.(name)));
    }
    if (Object.keys(accounts).length) doc.accounts = accounts;
  }
  const noProxy = get('noProxy') as SessionProxyOptions['noProxy'];
  if (noProxy !== undefined) doc.noProxy = typeof noProxy === 'string' ? noProxy : [...noProxy];
  // Rules travel whole (a Node child follows them too); a rule's proxies as a pool, passwords included.
  const rules = get('rules') as SessionProxyOptions['rules'];
  if (rules) {
    doc.rules = rules.map((r): Json => {
      const out: Record<string, Json> = { match: typeof r.match === 'string' ? r.match : [...r.match] };
      out.proxy = r.proxy === 'direct' || r.proxy === 'block' ? r.proxy : pool(r.proxy, parse);
      if (typeof r.scopes === 'boolean') out.scopes = r.scopes;
      return out;
    });
  }
  for (const key of BOOLEAN_KEYS) {
    const v = get(key);
    if (typeof v === 'boolean') doc[key] = v;
  }
  if (defaultProtocol !== undefined) doc.defaultProtocol = defaultProtocol;
  const requestTls = get('requestTls') as ProxyTlsOptions | undefined;
  if (requestTls) {
    const tls = tlsJson(requestTls);
    if (Object.keys(tls).length) doc.requestTls = tls;
  }
  for (const [key, rule] of Object.entries(PASS_THROUGH)) {
    const raw = get(key);
    if (raw === undefined) continue;
    const value = jsonable(raw);
    if (value !== undefined && accepts(rule, value)) doc[key] = value;
  }
  return doc;
}

function pool(spec: ProxySpec, parse: { defaultProtocol?: SessionProxyOptions['defaultProtocol'] }, active?: ProxyEndpoint): Json {
  const list = (Array.isArray(spec) ? spec : [spec]).map((p) => parsePoolEntry(p, parse.defaultProtocol ? { defaultProtocol: parse.defaultProtocol } : undefined));
  if (active) {
    const at = list.findIndex((p) => !isGatewayDefinition(p) && p.identityKey === active.identityKey);
    if (at > 0) list.push(...list.splice(0, at));
  }
  // A gateway travels as its configuration: the child gives its accounts sessions of its own, except
  // an account's live session, which travels pinned, so the child leaves from the same exit (in a fleet
  // it proposes the session the store has anyway).
  const out = list.map((p): Json => {
    if (isGatewayDefinition(p)) return p.toDocument() as Json;
    const gateway = gatewayDefinitionOf(p);
    if (gateway?.mode === 'sticky' && p.gateway?.session !== undefined) return { ...(gateway.toDocument() as Record<string, Json>), sessionId: p.gateway.session };
    return endpointJson(p);
  });
  return out.length === 1 ? out[0]! : out;
}

/** One endpoint, password included: `proto://host:port` alone, or an object with the rest. */
export function endpointJson(p: ProxyEndpoint): Json {
  const url = `${p.protocol}://${p.authority}`;
  const o: Record<string, Json> = { url };
  if (p.username !== undefined) o.username = p.username;
  const password = p.getPassword();
  if (password !== undefined) o.password = password;
  if (p.label !== `${p.protocol}://${hostForUrl(p.host)}:${p.port}`) o.label = p.label;
  if (p.connectTimeout !== DEFAULT_CONNECT_TIMEOUT) o.connectTimeout = p.connectTimeout;
  if (p.tls) {
    const tls = tlsJson({ ...p.tls, ...p.getTlsKey() });
    if (Object.keys(tls).length) o.tls = tls;
  }
  return Object.keys(o).length === 1 ? url : o;
}

function tlsJson(tls: ProxyTlsOptions & Partial<ProxyTlsKey>): Record<string, Json> {
  const out: Record<string, Json> = {};
  const text = (c: unknown): string | undefined => (typeof c === 'string' ? c : Buffer.isBuffer(c) ? c.toString('utf8') : undefined);
  const ca = own(tls, 'ca') as ProxyTlsOptions['ca'];
  if (ca !== undefined) {
    const cas = (Array.isArray(ca) ? ca : [ca]).map(text).filter((c): c is string => c !== undefined && c !== '');
    if (cas.length) out.ca = cas.length === 1 ? cas[0]! : cas;
  }
  const rejectUnauthorized = own(tls, 'rejectUnauthorized');
  if (typeof rejectUnauthorized === 'boolean') out.rejectUnauthorized = rejectUnauthorized;
  const servername = own(tls, 'servername');
  if (typeof servername === 'string' && servername !== '') out.servername = servername;
  // A client certificate travels only whole: PEM text for both halves (a KeyObject has none).
  const cert = text(own(tls, 'cert'));
  const key = text(own(tls, 'key'));
  if (cert && key) {
    out.cert = cert;
    out.key = key;
    const passphrase = own(tls, 'passphrase');
    if (typeof passphrase === 'string') out.passphrase = passphrase;
  }
  return out;
}

function jsonable(v: unknown): Json | undefined {
  try {
    const text = JSON.stringify(v);
    return text === undefined ? undefined : (JSON.parse(text) as Json);
  } catch {
    return undefined;
  }
}
