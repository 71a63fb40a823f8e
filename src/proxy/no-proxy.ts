/**
 * NO_PROXY matching with curl's semantics, plus CIDR:
 *
 * - `*` matches every host; `*:443` every host on port 443.
 * - `example.com`, `.example.com` and `*.example.com` are the same rule: the
 *   domain itself and every subdomain, on label boundaries (so never
 *   `notexample.com`). proxy-from-env differs here: it matches `example.com`
 *   exactly and `.example.com` only below it; we follow curl because that is
 *   what most NO_PROXY values are written for.
 * - `host:port` / `[v6]:port` / `10.0.0.0/8:port` restrict a rule to one port.
 * - IP literals and CIDR ranges match IP-literal targets only: nothing is
 *   resolved, since the decision is made before any connection exists.
 * - Addresses are compared as 16 bytes with IPv4 held as IPv4-mapped IPv6, so
 *   `::ffff:127.0.0.1` is `127.0.0.1`, and `0:0:0:0:0:0:0:1` is `::1`.
 *   A consequence: `::/0` also matches every IPv4 address.
 * - A bare IPv6 entry never carries a port (`::1:8080` is an address);
 *   write `[::1]:8080` for that.
 *
 * Entries that cannot mean what was intended (bad CIDR prefix, bad port,
 * unclosed bracket, `*` anywhere but in front, a URL) are a ConfigError
 * rather than a rule that silently never matches.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import { ConfigError } from '../errors.js';
import { escapeControls } from './endpoint.js';

export const LOOPBACK_NO_PROXY: readonly string[] = Object.freeze(['localhost', '127.0.0.0/8', '::1']);

type Rule = { port: number | undefined } & (
  | { kind: 'any' }
  | { kind: 'name'; name: string }
  | { kind: 'ip'; bytes: Uint8Array; prefix: number }
);

type Target = { kind: 'name'; name: string } | { kind: 'ip'; bytes: Uint8Array };

const DEFAULT_PORTS: Readonly<Record<string, number>> = { http: 80, ws: 80, https: 443, wss: 443 };

export class NoProxyMatcher {
  /** Normalized entries, e.g. `.Example.COM.` → `example.com`, `[0:0::1]` → `::1`. */
  readonly entries: readonly string[];
  readonly isEmpty: boolean;
  readonly #rules: readonly Rule[];

  constructor(entries: string | readonly string[]) {
    if (typeof entries !== 'string' && !Array.isArray(entries)) {
      throw new ConfigError(`NO_PROXY entries must be a string or an array of strings, got ${kind(entries)}`);
    }
    const rules: Rule[] = [];
    const seen = new Set<string>();
    for (const item of typeof entries === 'string' ? [entries] : entries) {
      if (typeof item !== 'string') throw new ConfigError(`NO_PROXY entries must be strings, got ${kind(item)}`);
      for (const token of item.split(/[\s,]+/)) {
        const rule = token === '' ? undefined : parseEntry(token);
        if (!rule) continue;
        const text = formatRule(rule);
        if (seen.has(text)) continue;
        seen.add(text);
        rules.push(rule);
      }
    }
    this.#rules = Object.freeze(rules);
    this.entries = Object.freeze([...seen]);
    this.isEmpty = rules.length === 0;
    Object.freeze(this);
  }

  /**
   * NO_PROXY, falling back to no_proxy when NO_PROXY is unset or empty.
   * (proxy-from-env reads no_proxy first; we only differ when both are set
   * and disagree, which is a misconfiguration either way.) Takes `env` as an
   * argument, which proxy-from-env cannot, so its reader is not reused.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): NoProxyMatcher {
    return new NoProxyMatcher(readableNoProxyEntries(env.NO_PROXY || env.no_proxy || '', 'NO_PROXY'));
  }

  /** `port` is the effective port: the caller resolves scheme defaults. */
  matches(host: string, port: number): boolean {
    // Not a host name at all (from plain JavaScript): nothing matches it.
    if (this.#rules.length === 0 || typeof host !== 'string') return false;
    // Nor is a port that is not a number a key (a Symbol, an object without toString): not remembered.
    if (typeof port !== 'number') return this.#match(host, port);
    // Asked on every request with the same few hosts: remember the answers
    // (the matcher is immutable). Bounded: cleared when full.
    const key = `${host}\0${port}`;
    const known = this.#memo.get(key);
    if (known !== undefined) return known;
    const answer = this.#match(host, port);
    if (this.#memo.size >= MEMO_LIMIT) this.#memo.clear();
    this.#memo.set(key, answer);
    return answer;
  }

  #memo = new Map<string, boolean>();

  #match(host: string, port: number): boolean {
    const target = parseTarget(host);
    if (!target) return false;
    return this.#rules.some((r) => (r.port === undefined || r.port === port) && ruleMatches(r, target));
  }

  /** Like `matches`, with the port defaulted from the scheme (http/ws 80, https/wss 443, otherwise 0). */
  matchesUrl(url: string | URL): boolean {
    const u = typeof url === 'string' ? new URL(url) : url;
    const port = u.port !== '' ? Number(u.port) : (DEFAULT_PORTS[u.protocol.slice(0, -1).toLowerCase()] ?? 0);
    return this.matches(u.hostname, port);
  }

  toString(): string {
    return this.entries.join(',');
  }
}

const MEMO_LIMIT = 1024;

function ruleMatches(rule: Rule, target: Target): boolean {
  switch (rule.kind) {
    case 'any':
      return true;
    case 'name':
      return target.kind === 'name' && (target.name === rule.name || target.name.endsWith(`.${rule.name}`));
    case 'ip':
      return target.kind === 'ip' && inPrefix(target.bytes, rule.bytes, rule.prefix);
  }
}

function parseTarget(host: string): Target | undefined {
  if (typeof host !== 'string') return undefined;
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  // A zone (`fe80::1%eth0`) selects an interface, not a different address.
  const zone = h.indexOf('%');
  if (zone >= 0 && isIPv6(h)) h = h.slice(0, zone);
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h === '') return undefined;
  const bytes = ipBytes(h);
  if (bytes) return { kind: 'ip', bytes };
  return { kind: 'name', name: toAscii(h) };
}

/** Returns undefined for entries that are empty once normalized (`.`, `*.`). */
function parseEntry(token: string): Rule | undefined {
  // Escaped: a control character in the entry must not reach a log line raw.
  const fail = (why: string): ConfigError => new ConfigError(`invalid NO_PROXY entry "${escapeControls(token)}": ${why}`);
  const s = token.toLowerCase();
  if (s.includes('://')) throw fail('entries are host names, not URLs');

  let hostPart: string;
  let portPart: string | undefined;
  const bracketed = s.startsWith('[');
  if (bracketed) {
    const close = s.indexOf(']');
    if (close < 0) throw fail('unclosed "["');
    hostPart = s.slice(1, close);
    const after = s.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw fail('unexpected characters after "]"');
    portPart = after === '' ? undefined : after.slice(1);
  } else {
    const first = s.indexOf(':');
    // Two or more colons: a bare IPv6 address (or range), which has no port.
    const single = first >= 0 && s.indexOf(':', first + 1) < 0;
    hostPart = single ? s.slice(0, first) : s;
    portPart = single ? s.slice(first + 1) : undefined;
  }
  const port = portPart === undefined ? undefined : parsePort(portPart, fail);
  if (hostPart === '*') return { kind: 'any', port };
  // Trailing dots, like leading ones, all go: `example.com..` is example.com
  // (kept, it would be a rule that never matches yet prints as one that does).
  if (!bracketed) hostPart = hostPart.replace(/\.+$/, '');

  const slash = hostPart.indexOf('/');
  if (slash >= 0) return { kind: 'ip', port, ...parseCidr(hostPart.slice(0, slash), hostPart.slice(slash + 1), fail) };
  const bytes = ipBytes(hostPart);
  if (bytes) return { kind: 'ip', port, bytes, prefix: 128 };
  if (bracketed) throw fail('not an IPv6 address');

  // `*.example.com`, `.example.com` and `*example.com` all reduce to `example.com`.
  const name = hostPart.replace(/^\*/, '').replace(/^\.+/, '');
  if (name.includes('*')) throw fail('"*" is only supported alone or as a leading "*."; use CIDR for address ranges');
  if (name === '') return undefined;
  // IDNA maps some characters to dots (`。`): trim those as well.
  const ascii = toAscii(name).replace(/^\.+|\.+$/g, '');
  if (ascii === '') return undefined;
  // `.10.0.0.1`, `*::1`, `.[::1]`: as a name rule it never matches (targets
  // that are addresses only meet IP rules), yet its entry text is the bare
  // address, which child processes get in NO_PROXY and would go direct for.
  if (ipBytes(ascii) || ascii.startsWith('[')) throw fail('a leading "." or "*" makes a domain suffix, and an IP address has none: write the address alone, or a CIDR range');
  return { kind: 'name', port, name: ascii };
}

function parseCidr(addr: string, bits: string, fail: (why: string) => ConfigError): { bytes: Uint8Array; prefix: number } {
  const bytes = ipBytes(addr);
  if (!bytes) throw fail('a CIDR range needs an IP address before "/"');
  const v4 = isIPv4(addr);
  const max = v4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) throw fail(`prefix length must be 0-${max}`);
  const prefix = Number(bits) + (v4 ? 96 : 0);
  // Clear host bits so `10.1.2.3/8` and `10.0.0.0/8` are one rule.
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  return { bytes, prefix };
}

function parsePort(p: string, fail: (why: string) => ConfigError): number {
  if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) throw fail('port must be a number from 1 to 65535');
  return Number(p);
}

function inPrefix(addr: Uint8Array, net: Uint8Array, prefix: number): boolean {
  let i = 0;
  for (; prefix >= 8; prefix -= 8, i++) if (addr[i] !== net[i]) return false;
  if (prefix === 0) return true;
  const mask = (0xff << (8 - prefix)) & 0xff;
  return (addr[i]! & mask) === net[i];
}

/** 16 bytes; IPv4 as IPv4-mapped IPv6. Undefined if `s` is not an IP literal. */
function ipBytes(s: string): Uint8Array | undefined {
  const bytes = new Uint8Array(16);
  if (isIPv4(s)) {
    bytes[10] = bytes[11] = 0xff;
    s.split('.').forEach((octet, i) => (bytes[12 + i] = Number(octet)));
    return bytes;
  }
  if (!isIPv6(s) || s.includes('%')) return undefined;
  // WHATWG serializes IPv6 as hex groups with at most one "::" (never a
  // dotted tail), which leaves only the "::" to expand.
  const canonical = new URL(`http://[${s}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    bytes[2 * i] = n >> 8;
    bytes[2 * i + 1] = n & 0xff;
  });
  return bytes;
}

function formatRule(rule: Rule): string {
  let host: string;
  let v6 = false;
  if (rule.kind === 'any') host = '*';
  else if (rule.kind === 'name') host = rule.name;
  else {
    const mapped = rule.prefix >= 96 && rule.bytes.subarray(0, 12).every((b, i) => b === (i >= 10 ? 0xff : 0));
    if (mapped) {
      host = Array.from(rule.bytes.subarray(12)).join('.') + (rule.prefix < 128 ? `/${rule.prefix - 96}` : '');
    } else {
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(((rule.bytes[i]! << 8) | rule.bytes[i + 1]!).toString(16));
      host = new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1) + (rule.prefix < 128 ? `/${rule.prefix}` : '');
      v6 = true;
    }
  }
  if (rule.port === undefined) return host;
  return v6 ? `[${host}]:${rule.port}` : `${host}:${rule.port}`;
}

function toAscii(name: string): string {
  if (!/[^\x00-\x7f]/.test(name)) return name;
  return domainToASCII(name) || name;
}

function kind(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/**
 * The entries of an environment variable that we can read. An operator's
 * variable may hold forms other tools accept (`192.168.*`): an unreadable
 * entry is skipped with a warning, never fatal. Skipping is the safe
 * direction: that target is proxied instead of going direct.
 */
export function readableNoProxyEntries(text: string, variable: string): string[] {
  const usable: string[] = [];
  const skipped: string[] = [];
  for (const entry of text.split(/[\s,]+/).filter(Boolean)) {
    try {
      new NoProxyMatcher(entry);
      usable.push(entry);
    } catch {
      skipped.push(entry);
    }
  }
  if (skipped.length) process.emitWarning(`ignoring ${variable} entries it cannot read: ${escapeControls(skipped.join(', '))}`, { code: 'SESSION_PROXY_NO_PROXY' });
  return usable;
}
