/**
 * Public types of the mock proxy. Kept apart from the implementation so the
 * protocol handlers can share them without importing the server module.
 */

/** 'http' = absolute-URI forward proxying; 'socks4' includes SOCKS4a. */
export type MockProxyProtocol = 'http' | 'connect' | 'socks4' | 'socks5';

export interface MockProxyOptions {
  /** Listen address, default '127.0.0.1'. The port is always chosen by the OS. */
  host?: string;
  /** Protocols served, default all. Detected from the first byte (0x04 SOCKS4, 0x05 SOCKS5, else HTTP). */
  protocols?: MockProxyProtocol[];
  /**
   * Basic auth for HTTP (407 + Proxy-Authenticate otherwise), user/pass
   * (RFC 1929) for SOCKS5 (the no-auth offer is refused), and the SOCKS4
   * userid checked against `username`.
   */
  auth?: { username: string; password: string };
  /** Local address the upstream sockets bind to, e.g. '127.0.0.2': the target then sees this IP. */
  egressIp?: string;
  /** Hostname → address map used for name resolution on the proxy; other names go through dns.lookup. */
  hosts?: Record<string, string>;
}

export interface MockProxyLogEntry {
  id: number;
  protocol: 'http' | 'connect' | 'socks4' | 'socks4a' | 'socks5';
  /** Exactly as the client sent it: a hostname here means the client left DNS to the proxy. */
  targetHost: string;
  targetPort: number;
  username?: string;
  /**
   * The request exactly as the proxy received it, one latin1 character per
   * byte (`Buffer.from(rawHead, 'latin1')` gives the bytes back), at most
   * 16 KiB; Proxy-Authorization credentials are masked (`Basic ***`).
   * - 'connect' / 'http': the request head through its blank line. A request
   *   refused as malformed (400) is logged too (targetHost '', targetPort 0
   *   when no target could be read), followed by whatever the client had sent
   *   after it: a CR/LF smuggled into a CONNECT line shows up here.
   * - 'socks4' / 'socks4a': the whole request (VN CD DSTPORT DSTIP USERID NUL [HOST NUL]).
   * - 'socks5': the CONNECT request (VER CMD RSV ATYP DST.ADDR DST.PORT); the
   *   greeting and the RFC 1929 username/password exchange are never logged,
   *   so an entry for a failure before the request has ''.
   */
  rawHead: string;
  /**
   * 'open' while in progress; 'ok' once closed normally (a client hanging up
   * with a reset is normal); 'refused' by a fault, a disabled protocol or an
   * unsupported command; 'auth-failed'; 'error' when the target could not be
   * reached or reset, on a resetAfter fault, or when the proxy closed mid-handshake.
   */
  status: 'open' | 'ok' | 'refused' | 'auth-failed' | 'error';
  /**
   * Payload bytes from client to target (after the handshake). For 'http'
   * (forward) entries: the request as relayed to the target, head included.
   */
  bytesIn: number;
  /** Payload bytes from target to client; for 'http' entries the response as relayed, head included. */
  bytesOut: number;
  openedAt: number;
  closedAt?: number;
  error?: string;
}

export interface MockProxyFaults {
  /** The next n client connections are destroyed right after accept (they get no log entry). */
  refuseNext(n?: number): void;
  /**
   * The next n CONNECT/forward requests are answered with this 4xx/5xx status,
   * logged 'refused'. SOCKS equivalents: 407 fails SOCKS5 user/pass auth
   * (SOCKS4: 0x5d), 403 → SOCKS5 0x02, others → SOCKS5 0x01; SOCKS4 0x5b.
   */
  respondNext(status: 407 | 403 | 502 | number, n?: number): void;
  /** Delay before the proxy's first answer in each handshake (SOCKS5: the method selection). */
  latency(ms: number): void;
  /** Accept new connections and never answer them (no log entry); stall(false) serves later ones again. */
  stall(on?: boolean): void;
  /**
   * Reset (RST) tunnels and forwarded exchanges after N payload bytes, both
   * directions together; null turns it off. Read when a tunnel starts.
   */
  resetAfter(bytes: number | null): void;
  /** Back to normal service. */
  clear(): void;
}

export interface MockProxy {
  host: string;
  port: number;
  /** 'http://127.0.0.1:PORT', with percent-encoded credentials if auth is set. */
  url: string;
  urlFor(protocol: 'http' | 'socks4' | 'socks4a' | 'socks5' | 'socks5h', opts?: { auth?: boolean }): string;
  log: MockProxyLogEntry[];
  faults: MockProxyFaults;
  /** Client connections accepted and not yet closed. */
  openConnections(): number;
  /**
   * Client connections accepted since the start, whatever became of them
   * (refused, stalled, sent nothing): "no connection reached the proxy" is
   * `acceptedConnections()` unchanged.
   */
  acceptedConnections(): number;
  /** Destroys every open connection (client and upstream), then closes the server. */
  close(): Promise<void>;
}
