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
 * noProxy, the booleans, defaultProtocol, requestTls (ca, rejectUnauthorized,
 * servername) and the JSON-able pass-through options. Functions and other
 * TLS options (client certificates) are not.
 */
import { ConfigError } from '../errors.js';
import { parsePoolEntry } from '../gateways/entry.js';
import { isGatewayDefinition } from '../gateways/definition.js';
import { DEFAULT_CONNECT_TIMEOUT, hostForUrl, type ProxyEndpoint, type ProxyTlsOptions } from '../proxy/endpoint.js';
import type { ProxySpec, SessionProxyOptions } from '../options.js';
import { BOOLEAN_KEYS, PASS_THROUGH } from './document.js';

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
  const parse = { defaultProtocol: options.defaultProtocol };
  const doc: Record<string, Json> = {};
  if (options.proxy !== undefined) doc.proxy = pool(options.proxy, parse);
  if (options.accounts) {
    const accounts: Record<string, Json> = {};
    for (const [name, spec] of Object.entries(options.accounts)) {
      if (o.onlyAccount && name !== o.account) continue;
      accounts[name] = pool(spec, parse, name === o.account ? o.active : undefined);
    }
    if (Object.keys(accounts).length) doc.accounts = accounts;
  }
  if (options.noProxy !== undefined) doc.noProxy = typeof options.noProxy === 'string' ? options.noProxy : [...options.noProxy];
  for (const key of BOOLEAN_KEYS) if (typeof options[key] === 'boolean') doc[key] = options[key]!;
  if (options.defaultProtocol !== undefined) doc.defaultProtocol = options.defaultProtocol;
  if (options.requestTls) {
    const tls = tlsJson(options.requestTls as ProxyTlsOptions);
    if (Object.keys(tls).length) doc.requestTls = tls;
  }
  const record = options as Record<string, unknown>;
  for (const key of Object.keys(PASS_THROUGH)) {
    if (record[key] === undefined) continue;
    const value = jsonable(record[key]);
    if (value !== undefined && PASS_THROUGH[key]!.ok(value)) doc[key] = value;
  }
  return doc;
}

function pool(spec: ProxySpec, parse: { defaultProtocol?: SessionProxyOptions['defaultProtocol'] }, active?: ProxyEndpoint): Json {
  const list = (Array.isArray(spec) ? spec : [spec]).map((p) => parsePoolEntry(p, parse.defaultProtocol ? { defaultProtocol: parse.defaultProtocol } : undefined));
  if (active) {
    const at = list.findIndex((p) => !isGatewayDefinition(p) && p.identityKey === active.identityKey);
    if (at > 0) list.push(...list.splice(0, at));
  }
  // A gateway travels as its configuration: the child gives its accounts sessions of its own.
  const out = list.map((p) => (isGatewayDefinition(p) ? (p.toDocument() as Json) : endpointJson(p)));
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
  if (tls.ca !== undefined) {
    const cas = (Array.isArray(tls.ca) ? tls.ca : [tls.ca]).map(text).filter((c): c is string => c !== undefined && c !== '');
    if (cas.length) out.ca = cas.length === 1 ? cas[0]! : cas;
  }
  if (typeof tls.rejectUnauthorized === 'boolean') out.rejectUnauthorized = tls.rejectUnauthorized;
  if (typeof tls.servername === 'string' && tls.servername !== '') out.servername = tls.servername;
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
