/**
 * Where the fleet store is, parsed once: one Redis (`redis://`, `rediss://`),
 * a Redis Cluster (`redis+cluster://h1:p1,h2:p2` or `cluster: [URLs]`), a
 * Sentinel set (`redis+sentinel://s1:p1,s2:p2/name[/db]` or
 * `sentinel: { name, nodes }`), or the in-process store (`memory:`).
 *
 * The comma-separated host list after `+cluster` / `+sentinel` is the form
 * Lettuce (`redis-sentinel://h1,h2/db#name`) and Python's `redis+sentinel://`
 * URLs use; the scheme names the client's mode the way SQLAlchemy's
 * `dialect+driver://` does. The credentials in a Cluster or Sentinel URL are
 * the data nodes' (every Cluster node; the Sentinel set's primary and
 * replicas, never sent to the sentinels themselves), one set for all nodes:
 * a Cluster client learns the other nodes from the ones it was given and
 * must log in to them with the same credentials.
 *
 * The parser throws StoreSpecError (`at`: the key path below `store`,
 * `reason`: what was expected) and never puts a value in a message; both the
 * config validator and resolveStore turn it into a ConfigError naming the
 * key. Parsed credentials are non-enumerable, so a target never prints them.
 */
import { kindOf as kind } from '../config/path.js';
import { redactUrl } from '../proxy/redact.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface StoreAuth {
  readonly username?: string;
  readonly password?: string;
}

export type StoreTarget =
  | { readonly kind: 'memory' }
  | { readonly kind: 'single'; readonly url: string }
  | { readonly kind: 'cluster'; readonly nodes: readonly HostPort[]; readonly tls: boolean; readonly auth: StoreAuth }
  | { readonly kind: 'sentinel'; readonly name: string; readonly nodes: readonly HostPort[]; readonly tls: boolean; readonly database?: number; readonly auth: StoreAuth };

/** What the `store` option may hold besides `prefix` and `leaseTtl` (StoreOptions's location keys). */
export interface StoreLocation {
  url?: string;
  cluster?: readonly string[];
  sentinel?: { name: string; nodes: readonly string[]; database?: number };
}

export const CLUSTER_DEFAULT_PORT = 6379;
export const SENTINEL_DEFAULT_PORT = 26379;

/** A location that cannot be used: `at` is the key path below `store` ('' for `store` itself). */
export class StoreSpecError extends Error {
  constructor(
    readonly at: string,
    readonly reason: string,
  ) {
    super(`store${at}: ${reason}`);
    this.name = 'StoreSpecError';
  }
}

const SINGLE = /^rediss?:\/\/\S/i;
const MEMORY = /^memory:/i;
const MULTI = /^(rediss?)\+(cluster|sentinel):\/\//i;

export const URL_FORMS = 'a redis://, rediss://, redis+cluster://, redis+sentinel:// or memory: URL string';
const CLUSTER_FORM = 'redis+cluster://[user:password@]host:port[,host:port…] (or rediss+cluster://)';
const SENTINEL_FORM = 'redis+sentinel://[user:password@]host:port[,host:port…]/name[/db] (or rediss+sentinel://)';

/** Parses the location of a `store` value (a string, or the object's url / cluster / sentinel). */
export function parseStoreTarget(spec: string | StoreLocation): StoreTarget {
  if (typeof spec === 'string') return parseStoreUrl(spec, '');
  const given = (['url', 'cluster', 'sentinel'] as const).filter((k) => spec[k] !== undefined);
  if (given.length === 0) throw new StoreSpecError('.url', `expected ${URL_FORMS} (or a cluster or sentinel key), got nothing`);
  if (given.length > 1) throw new StoreSpecError(`.${given[1]}`, `only one of url, cluster and sentinel may be given (got ${given.join(' and ')})`);
  if (spec.url !== undefined) return parseStoreUrl(spec.url, '.url');
  if (spec.cluster !== undefined) return parseClusterList(spec.cluster);
  return parseSentinelObject(spec.sentinel);
}

function parseStoreUrl(url: unknown, at: string): StoreTarget {
  if (typeof url !== 'string') throw new StoreSpecError(at, `expected ${URL_FORMS}, got ${kind(url)}`);
  if (MEMORY.test(url)) return { kind: 'memory' };
  const multi = MULTI.exec(url);
  if (multi) return parseMultiUrl(url, multi[1]!.toLowerCase() === 'rediss', multi[2]!.toLowerCase() as 'cluster' | 'sentinel', at);
  if (SINGLE.test(url)) return { kind: 'single', url };
  throw new StoreSpecError(at, `expected ${URL_FORMS}, got a string`);
}

/** `redis+cluster://[user:pw@]h1:p1,h2:p2` / `redis+sentinel://[user:pw@]s1:p1,s2:p2/name[/db]`. */
function parseMultiUrl(url: string, tls: boolean, mode: 'cluster' | 'sentinel', at: string): StoreTarget {
  const form = mode === 'cluster' ? CLUSTER_FORM : SENTINEL_FORM;
  const bad = (why: string): StoreSpecError => new StoreSpecError(at, `expected ${form}: ${why}`);
  let rest = url.slice(url.indexOf('://') + 3);
  if (/\s/.test(rest)) throw bad('the URL has a space in it');
  if (/[?#]/.test(rest.slice(rest.lastIndexOf('@') + 1))) throw bad('query parameters and fragments are not read, so none may be given');
  // The credentials end at the last '@' (a password may hold a raw '@' or '/'; hosts and names may not).
  let auth: StoreAuth = {};
  const atSign = rest.lastIndexOf('@');
  if (atSign >= 0) {
    auth = parseUserinfo(rest.slice(0, atSign), bad);
    rest = rest.slice(atSign + 1);
  }
  const slash = rest.indexOf('/');
  const hostList = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash + 1);
  const defaultPort = mode === 'cluster' ? CLUSTER_DEFAULT_PORT : SENTINEL_DEFAULT_PORT;
  const nodes = hostList.split(',').map((h, i) => parseHostPort(h, defaultPort, (why) => bad(`host ${i + 1}: ${why}`)));
  if (mode === 'cluster') {
    // A Cluster has database 0 only.
    if (path !== '') throw bad('a Cluster URL has no path (a Cluster has database 0 only)');
    return withAuth({ kind: 'cluster', nodes, tls }, auth);
  }
  const [rawName, db, ...more] = path.split('/');
  if (!rawName) throw bad('the primary’s name (the path after the hosts) is missing');
  if (more.length) throw bad('the path is /name or /name/db');
  const name = decode(rawName, () => bad('the name is not valid percent-encoding'));
  return withAuth({ kind: 'sentinel', name, nodes, tls, ...(db === undefined || db === '' ? {} : { database: database(db, () => bad('the database is not a whole number')) }) }, auth);
}

function parseUserinfo(info: string, bad: (why: string) => StoreSpecError): StoreAuth {
  const colon = info.indexOf(':');
  const user = colon < 0 ? info : info.slice(0, colon);
  const password = colon < 0 ? undefined : info.slice(colon + 1);
  const dec = (s: string): string => decode(s, () => bad('the credentials are not valid percent-encoding'));
  if (password === undefined) throw bad('credentials are user:password or :password (a user name alone cannot log in)');
  return { ...(user ? { username: dec(user) } : {}), password: dec(password) };
}

function parseHostPort(text: string, defaultPort: number, bad: (why: string) => StoreSpecError): HostPort {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::(\d{1,5}))?$/.exec(text);
  if (!m) throw bad(text === '' ? 'empty' : 'expected host or host:port ([v6]:port for IPv6)');
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (port < 1 || port > 65535) throw bad('the port is out of range');
  return { host: m[1] ?? m[2]!, port };
}

/** One node of a `cluster` or `sentinel.nodes` list: `redis://[user:pw@]host[:port]` (or `rediss://`). */
interface NodeUrl extends HostPort {
  readonly tls: boolean;
  readonly auth?: StoreAuth;
}

function parseNodeUrl(v: unknown, at: string, defaultPort: number): NodeUrl {
  const what = 'a redis://[user:password@]host:port or rediss://… URL string';
  if (typeof v !== 'string' || !/^rediss?:\/\//i.test(v) || !URL.canParse(v)) throw new StoreSpecError(at, `expected ${what}, got ${typeof v === 'string' ? 'a string' : kind(v)}`);
  const u = new URL(v);
  if ((u.pathname !== '' && u.pathname !== '/') || u.search || u.hash) throw new StoreSpecError(at, `expected ${what}: no path, query or fragment (a node URL names a node)`);
  if (u.hostname === '') throw new StoreSpecError(at, `expected ${what}: the host is missing`);
  const bad = (why: string): StoreSpecError => new StoreSpecError(at, `expected ${what}: ${why}`);
  const auth = u.username || u.password ? parseUserinfo(`${u.username}:${u.password}`, bad) : undefined;
  if (auth && !u.password) throw bad('credentials are user:password or :password (a user name alone cannot log in)');
  return { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port ? Number(u.port) : defaultPort, tls: u.protocol.toLowerCase() === 'rediss:', ...(auth ? { auth } : {}) };
}

/** One scheme and one set of credentials for all the nodes of a list (written in one URL or in several alike). */
function agree(nodes: readonly NodeUrl[], base: string): { tls: boolean; auth: StoreAuth } {
  const first = nodes[0]!;
  let auth: StoreAuth | undefined;
  let from = -1;
  nodes.forEach((n, i) => {
    if (n.tls !== first.tls) throw new StoreSpecError(`${base}[${i}]`, `every node must use the same scheme (redis:// or rediss://) as ${base.slice(1)}[0]`);
    if (!n.auth) return;
    if (auth && (auth.username !== n.auth.username || auth.password !== n.auth.password)) throw new StoreSpecError(`${base}[${i}]`, `the credentials differ from those in ${base.slice(1)}[${from}] (one set for every node: write them once or alike)`);
    if (!auth) [auth, from] = [n.auth, i];
  });
  return { tls: first.tls, auth: auth ?? {} };
}

function parseClusterList(list: unknown): StoreTarget {
  if (!Array.isArray(list) || list.length === 0) throw new StoreSpecError('.cluster', `expected a non-empty array of node URL strings (some of the Cluster’s nodes), got ${Array.isArray(list) ? 'an empty array' : kind(list)}`);
  const nodes = list.map((v, i) => parseNodeUrl(v, `.cluster[${i}]`, CLUSTER_DEFAULT_PORT));
  const { tls, auth } = agree(nodes, '.cluster');
  return withAuth({ kind: 'cluster', nodes: nodes.map(({ host, port }) => ({ host, port })), tls }, auth);
}

function parseSentinelObject(s: unknown): StoreTarget {
  if (!s || typeof s !== 'object' || Array.isArray(s)) throw new StoreSpecError('.sentinel', `expected an object (e.g. { "name": "mymaster", "nodes": ["redis://10.0.0.5:26379"] }), got ${kind(s)}`);
  const o = s as { name?: unknown; nodes?: unknown; database?: unknown };
  if (typeof o.name !== 'string' || o.name === '' || /[\s/]/.test(o.name)) throw new StoreSpecError('.sentinel.name', `expected the primary’s name as the sentinels monitor it (a non-empty string without spaces or slashes), got ${typeof o.name === 'string' ? 'a string with spaces or slashes' : kind(o.name)}`);
  if (!Array.isArray(o.nodes) || o.nodes.length === 0) throw new StoreSpecError('.sentinel.nodes', `expected a non-empty array of sentinel URL strings, got ${Array.isArray(o.nodes) ? 'an empty array' : kind(o.nodes)}`);
  const nodes = o.nodes.map((v, i) => parseNodeUrl(v, `.sentinel.nodes[${i}]`, SENTINEL_DEFAULT_PORT));
  if (o.database !== undefined && (typeof o.database !== 'number' || !Number.isInteger(o.database) || o.database < 0)) throw new StoreSpecError('.sentinel.database', `expected a whole number >= 0, got ${kind(o.database)}`);
  const { tls, auth } = agree(nodes, '.sentinel.nodes');
  return withAuth({ kind: 'sentinel', name: o.name, nodes: nodes.map(({ host, port }) => ({ host, port })), tls, ...(o.database !== undefined ? { database: o.database as number } : {}) }, auth);
}

/** The target as the URL form, credentials masked: what `where`, errors, events and the CLI show. */
export function describeTarget(t: StoreTarget): string {
  if (t.kind === 'memory') return 'memory:';
  if (t.kind === 'single') return redactUrl(t.url);
  const hosts = t.nodes.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`).join(',');
  const cred = t.auth.password !== undefined ? `${t.auth.username ? encodeURIComponent(t.auth.username) : ''}:***@` : '';
  const path = t.kind === 'sentinel' ? `/${encodeURIComponent(t.name)}${t.database !== undefined ? `/${t.database}` : ''}` : '';
  return `${t.tls ? 'rediss' : 'redis'}+${t.kind}://${cred}${hosts}${path}`;
}

/** The secrets of a target (for scrubbing text we did not write, e.g. a client's error messages). */
export function targetSecrets(t: StoreTarget): string[] {
  if (t.kind === 'memory') return [];
  if (t.kind === 'single') {
    try {
      const u = new URL(t.url);
      return u.password ? [u.password, decodeURIComponent(u.password)] : [];
    } catch {
      return [];
    }
  }
  return t.auth.password ? [t.auth.password] : [];
}

function withAuth<T extends object>(target: T, auth: StoreAuth): T & { auth: StoreAuth } {
  return Object.defineProperty(target, 'auth', { value: Object.freeze({ ...auth }), enumerable: false }) as T & { auth: StoreAuth };
}

function decode(s: string, bad: () => StoreSpecError): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw bad();
  }
}

function database(s: string, bad: () => StoreSpecError): number {
  if (!/^\d{1,9}$/.test(s)) throw bad();
  return Number(s);
}
