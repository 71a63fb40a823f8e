/**
 * The one check a tunnel target passes before anything is sent for it. The
 * host is written into a CONNECT request line and Host header, or into a
 * SOCKS request, exactly as the caller gave it (name resolution happens on
 * the proxy). A CR/LF there would end the CONNECT request early and let a
 * second request — carrying the account's Proxy-Authorization — follow it; a
 * NUL would end a SOCKS4a name early; a name over 255 bytes cannot be framed
 * in SOCKS5. Without the library, Node fails such a host at DNS; with it, the
 * router (decide) refuses it before any connection is made, and openTunnel
 * refuses it again before dialing, for callers that reach it directly
 * (egress probes, health checks).
 *
 * Liberal where real hostnames are (`_`, leading or repeated `-`, a trailing
 * dot, all-digit labels, international names, which are sent as punycode),
 * strict on everything that could frame or redirect a request: control
 * characters, spaces, `@ / \ # ? % : [ ]` and the like. IPv6 literals are
 * bare here and bracketed in the CONNECT authority; a zone id (`fe80::1%eth0`)
 * is refused: it names an interface of this host and means nothing to the
 * proxy (and `%` is where RFC 6874 percent-encoding games begin).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import { InvalidTargetError, type RedactedProxy } from '../errors.js';
import type { ProxyProtocol } from '../proxy/endpoint.js';
import type { TunnelTarget } from './target.js';

const HOSTNAME_CHAR = /^[A-Za-z0-9._-]$/;
const MAX_LABEL = 63;
const MAX_SOCKS5_NAME = 255;
/** Escaped characters of a host shown in a message; the rest is elided. */
const MAX_SHOWN = 200;

export interface TargetContext {
  readonly account?: string;
  readonly proxy?: RedactedProxy;
  /** With a protocol, its own limits are checked too (SOCKS5: 255 bytes). */
  readonly protocol?: ProxyProtocol;
}

/**
 * The target as it goes into the handshake (an international name as
 * punycode), or InvalidTargetError naming what is wrong.
 */
export function validateTarget(target: TunnelTarget, context: TargetContext = {}): TunnelTarget {
  const checked = checkTarget(target, context.protocol);
  if (typeof checked === 'string') throw targetError(target, checked, context);
  return checked;
}

/** The error for an invalid target, or undefined: for callers that answer with an error instead of throwing (the router). */
export function invalidTarget(target: TunnelTarget, context: TargetContext = {}): InvalidTargetError | undefined {
  const checked = checkTarget(target, context.protocol);
  return typeof checked === 'string' ? targetError(target, checked, context) : undefined;
}

/**
 * `host:port` for messages and events: as formatAuthority for a clean target,
 * JSON-style escaped and quoted otherwise, so a log line cannot be split by
 * whatever the caller passed.
 */
export function printableAuthority(host: unknown, port: unknown): string {
  const clean = typeof host === 'string' && /^[\x21-\x7e]+$/.test(host) && host.length <= MAX_SHOWN;
  const h = !clean ? escape(String(host)) : isIPv6(host) ? `[${host}]` : host;
  return `${h}:${typeof port === 'number' ? String(port) : escape(String(port))}`;
}

function targetError(target: TunnelTarget, problem: string, context: TargetContext): InvalidTargetError {
  return new InvalidTargetError(problem, {
    account: context.account,
    proxy: context.proxy,
    target: printableAuthority(target.host, target.port),
  });
}

/** The normalized target, or the problem as a message. */
function checkTarget(target: TunnelTarget, protocol: ProxyProtocol | undefined): TunnelTarget | string {
  const { host, port } = target;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    return `target port must be an integer from 1 to 65535, got ${typeof port === 'number' ? String(port) : typeof port}`;
  }
  if (typeof host !== 'string') return `target host must be a string, got ${host === null ? 'null' : typeof host}`;
  if (host === '') return 'target host is empty';
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    // C0, DEL and C1: every one of them is a control character to some parser or terminal.
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return `target host contains a control character (${escapeChar(host[i]!)} at ${i})`;
  }
  const space = host.search(/[\s\u180e\u200b\ufeff]/);
  if (space >= 0) {
    const which = host[space] === ' ' ? '' : `\\u${host.charCodeAt(space).toString(16).padStart(4, '0')} `;
    return `target host contains a space (${which}at ${space})`;
  }
  if (isIPv4(host)) return target;
  if (host.includes(':') && isIPv6(host)) {
    if (host.includes('%')) return `target host is an IPv6 address with a zone id (${escape(host.slice(host.indexOf('%')))}): it names an interface of this host and means nothing to the proxy`;
    return target;
  }
  for (let i = 0; i < host.length; i++) {
    const ch = host[i]!;
    if (ch.charCodeAt(0) < 0x80 && !HOSTNAME_CHAR.test(ch)) {
      const what = ch === ':' ? ' (an IPv6 literal must be a valid one, without brackets)' : '';
      return `target host contains a forbidden character (${JSON.stringify(ch)} at ${i})${what}`;
    }
  }
  let name = host;
  if (/[^\x00-\x7f]/.test(host)) {
    name = domainToASCII(host);
    if (name === '' || /[^A-Za-z0-9._-]/.test(name)) return 'target host is not a valid international domain name';
  }
  const labels = name.endsWith('.') ? name.slice(0, -1).split('.') : name.split('.');
  if (labels.some((label) => label === '')) return 'target host has an empty label (a leading dot, or "..")';
  if (labels.some((label) => label.length > MAX_LABEL)) return `target host has a label longer than ${MAX_LABEL} bytes`;
  if ((protocol === 'socks5' || protocol === 'socks5h') && name.length > MAX_SOCKS5_NAME) {
    return `target host is longer than ${MAX_SOCKS5_NAME} bytes (${name.length}), the most a SOCKS5 request can carry`;
  }
  // SOCKS4a ends the name with a NUL: a NUL inside it is a control character, refused above.
  return name === host ? target : { host: name, port };
}

function escapeChar(ch: string): string {
  return escape(ch).slice(1, -1);
}

/** JSON string syntax, plus the characters JSON leaves raw that still break lines or terminals (DEL, C1, U+2028/9). */
function escape(text: string): string {
  const shown = text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
  return JSON.stringify(shown).replace(/[\x7f-\x9f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
