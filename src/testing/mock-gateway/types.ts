/** Public types of the mock gateway (`startMockGateway` in `session-proxy/testing`). */
import type { GatewayPresetName } from '../../gateways/presets.js';
import type { GatewayTemplateInput } from '../../gateways/definition.js';
import type { FieldValues } from '../../gateways/grammar.js';
import type { MockProxyFaults } from '../mock-proxy/types.js';

export interface MockGatewayOptions {
  /** Whose grammar the gateway reads (preset name), or a template for any other vendor. */
  vendor: GatewayPresetName | GatewayTemplateInput;
  /** The exit addresses sessions are bound to, e.g. `['127.0.0.20', '127.0.0.21']` (loopback aliases bind on Linux). */
  egressIps: readonly string[];
  /** A session moves to another address this long after it was bound (ms); a lifetime the credential asks for wins. */
  lifetimeMs?: number;
  /** A session idle this long (no new connection) moves to another address on its next connection (ms). */
  idleMs?: number;
  /** Listen address. @default '127.0.0.1' */
  host?: string;
  /**
   * The credentials the gateway accepts: `username` is the base credential without parameters
   * (for a password-carried grammar, `password` is), e.g. `{ username: 'brd-customer-C-zone-Z', password: 'pw' }`.
   * Others get the vendor's 407. Without it any base credential is accepted.
   */
  auth?: { username: string; password: string };
  /** Name resolution on the gateway, as the mock proxy's `hosts`. */
  hosts?: Record<string, string>;
}

export interface MockGatewaySession {
  readonly id: string;
  /** The address its connections leave from now. */
  egressIp: string;
  /** When it was bound to that address. */
  since: number;
  lastUsed: number;
  /** Connections opened with this session id. */
  connections: number;
  /** How many times its address changed (lifetime, idle, flip, collide). */
  changes: number;
  /** The lifetime the credential asked for (ms), if any. */
  requestedLifetimeMs?: number;
}

export interface MockGatewayLogEntry {
  id: number;
  protocol: 'connect' | 'socks5';
  targetHost: string;
  targetPort: number;
  /** The Proxy-Authorization header exactly as received (CONNECT). */
  rawAuthorization?: string;
  /** The username and password as received (decoded from Basic, or the SOCKS5 RFC 1929 fields). */
  username?: string;
  password?: string;
  /** The parameters read from the credential (user, country, city, session, lifetime). */
  params?: FieldValues;
  session?: string;
  egressIp?: string;
  status: 'open' | 'ok' | 'refused' | 'auth-failed' | 'error';
  /** Why it was refused: the vendor-style error the client was answered with. */
  error?: string;
  /** Payload bytes client → target and back, after the handshake. */
  bytesIn: number;
  bytesOut: number;
  openedAt: number;
  closedAt?: number;
}

export interface MockGateway {
  host: string;
  port: number;
  /** `http://host:port` (no credentials: the client's own go with each connection). */
  url: string;
  /** A URL for this gateway with these credentials (percent-encoded). */
  urlFor(protocol: 'http' | 'socks5' | 'socks5h', credentials: { username: string; password: string }): string;
  log: MockGatewayLogEntry[];
  /** Every session seen so far. */
  sessions(): MockGatewaySession[];
  session(id: string): MockGatewaySession | undefined;
  /** Moves a session to another address now (an unannounced IP change); returns the new address. */
  flip(sessionId: string): string;
  /** Puts session `b` on session `a`'s address (two sessions, one exit IP). */
  collide(a: string, b: string): void;
  /** The session's exit goes away: its connections are answered 502 (SOCKS5: general failure) until it is replaced. */
  failSession(sessionId: string): void;
  /** The mock proxy's faults (refuseNext, respondNext, latency, stall, resetAfter), for the whole gateway. */
  faults: MockProxyFaults;
  openConnections(): number;
  close(): Promise<void>;
}
