/**
 * The resolved configuration as JSON, in the config-file format, for
 * SESSION_PROXY_CONFIG_JSON. It carries passwords: the environment is the
 * only channel from a parent process to its child (or Worker) that exists
 * before the child's first line of code runs. The variable is readable by
 * the child and by the same OS user (/proc/<pid>/environ), which is no more
 * than HTTP_PROXY already exposes.
 *
 * Only what the file format can express is carried: proxies (URL, user,
 * password, label, connect timeout, TLS ca/rejectUnauthorized/servername),
 * noProxy, rules (their proxies likewise), pac, the booleans, defaultProtocol, requestTls (ca, rejectUnauthorized,
 * servername) and the JSON-able pass-through options. Functions and other
 * TLS options (client certificates) are not.
 */
import { ConfigError } from '../errors.js';
import { parseProxy } from '../proxy/parse.js';
import { DEFAULT_CONNECT_TIMEOUT, hostForUrl, type ProxyEndpoint, type ProxyTlsOptions } from '../proxy/endpoint.js';
import type { ProxySpec, SessionProxyOptions } from '../options.js';
import { forbiddenKey, isForbiddenKey, own, setOwn } from './keys.js';
import { keyPath } from './path.js';
import { BOOLEAN_KEYS, PASS_THROUGH, accepts } from './values.js';

/** Above this, only the child's own account is carried (Linux caps one env string at 128 KiB). */
export const MAX_CONFIG_JSON = 100_000;

export interface SerializeOptions {
  /** The account the child runs as: its pool is reordered so `active` comes first. */
  account?: string;
  /** That account's active proxy in the parent (after rotations/failover). */
  active?: ProxyEndpoint;
  /** Carry only `account`'s pool (and the default pool), not every account. @default false, unless too large */
  onlyAccount?: boolean;
}

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

export function serializeConfig(options: SessionProxyOptions, o: SerializeOptions = {}): string {
  const text = JSON.stringify(toDocument(options, o));
  if (text.length <= MAX_CONFIG_JSON) return text;
  if (o.account !== undefined && !o.onlyAccount) {
    const smaller = JSON.stringify(toDocument(options, { ...o, onlyAccount: true }));
    if (smaller.length <= MAX_CONFIG_JSON) return smaller;
  }
  throw new ConfigError(
    `the configuration is too large to pass to a child process in SESSION_PROXY_CONFIG_JSON (${text.length} characters, at most ${MAX_CONFIG_JSON}); give the child its own config file (SESSION_PROXY_CONFIG) instead`,
  );
}

export function toDocument(options: SessionProxyOptions, o: SerializeOptions = {}): Record<string, Json> {
  // Own reads only, own properties out: nothing inherited is configuration, and no account name
  // may become a prototype (the child would not find its account and stop at start-up).
  const get = (key: string): unknown => own(options, key);
  if (o.account !== undefined && isForbiddenKey(o.account)) throw forbiddenKey(keyPath('accounts', o.account), o.account);
  const defaultProtocol = get('defaultProtocol') as SessionProxyOptions['defaultProtocol'];
  const parse = { defaultProtocol };
  const doc: Record<string, Json> = {};
  const proxy = get('proxy') as ProxySpec | undefined;
  if (proxy !== undefined) doc.proxy = pool(proxy, parse);
  const accountSpecs = get('accounts') as SessionProxyOptions['accounts'];
  if (accountSpecs) {
    const accounts: Record<string, Json> = {};
    for (const [name, spec] of Object.entries(accountSpecs)) {
      if (isForbiddenKey(name)) throw forbiddenKey(keyPath('accounts', name), name);
      if (o.onlyAccount && name !== o.account) continue;
      setOwn(accounts, name, pool(spec, parse, name === o.account ? o.active : undefined));
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
  const list = (Array.isArray(spec) ? spec : [spec]).map((p) => parseProxy(p, parse.defaultProtocol ? { defaultProtocol: parse.defaultProtocol } : undefined));
  if (active) {
    const at = list.findIndex((p) => p.identityKey === active.identityKey);
    if (at > 0) list.push(...list.splice(0, at));
  }
  const out = list.map(endpointJson);
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
    const tls = tlsJson(p.tls);
    if (Object.keys(tls).length) o.tls = tls;
  }
  return Object.keys(o).length === 1 ? url : o;
}

function tlsJson(tls: ProxyTlsOptions): Record<string, Json> {
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
