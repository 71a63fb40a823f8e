/**
 * Typed errors. One base class, one subclass per failure, each with a stable
 * `code`. `instanceof` works across the ESM and CJS copies of the library (and
 * across duplicate installs) because it is keyed on a `Symbol.for` brand, not
 * on class identity — the same trick undici uses.
 *
 * Messages name the account and the *redacted* proxy; a password never
 * reaches a message because proxies are only ever stringified through their
 * redacting `toString()`.
 */

const kKinds = Symbol.for('session-proxy.error.kinds');

/** Anything that prints itself redacted (a ProxyEndpoint) or an already redacted string. */
export type RedactedProxy = { toString(): string } | string;

export interface SessionProxyErrorOptions {
  cause?: unknown;
  /** The account whose traffic failed. */
  account?: string;
  /** The proxy involved, printed redacted. */
  proxy?: RedactedProxy;
  /** The target `host:port` the caller wanted to reach. */
  target?: string;
}

export class SessionProxyError extends Error {
  static readonly kind: string = 'SessionProxyError';
  readonly code: string = 'SP_ERR';
  readonly account: string | undefined;
  /** Redacted proxy URL, if a proxy was involved. */
  readonly proxy: string | undefined;
  readonly target: string | undefined;

  constructor(message: string, options: SessionProxyErrorOptions = {}) {
    super(withContext(message, options), options.cause === undefined ? undefined : { cause: options.cause });
    this.account = options.account;
    this.proxy = options.proxy === undefined ? undefined : String(options.proxy);
    this.target = options.target;
    const kinds: string[] = [];
    for (let c: any = new.target; c && c.kind; c = Object.getPrototypeOf(c)) {
      if (!kinds.includes(c.kind)) kinds.push(c.kind);
    }
    Object.defineProperty(this, kKinds, { value: kinds, enumerable: false });
    Object.defineProperty(this, 'name', { value: new.target.kind, enumerable: false, configurable: true, writable: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (value === null || typeof value !== 'object') return false;
    const kinds = (value as Record<symbol, unknown>)[kKinds];
    return Array.isArray(kinds) && kinds.includes((this as unknown as { kind: string }).kind);
  }
}

function withContext(message: string, o: SessionProxyErrorOptions): string {
  const parts: string[] = [];
  if (o.account !== undefined) parts.push(`account "${o.account}"`);
  if (o.proxy !== undefined) parts.push(`proxy ${String(o.proxy)}`);
  if (o.target !== undefined) parts.push(`target ${o.target}`);
  return parts.length ? `${message} (${parts.join(', ')})` : message;
}

/**
 * `error`'s message without the account, proxy and target that `context`
 * already names: a list of failures of one account and proxy says them once.
 * Context that differs stays.
 */
export function messageWithout(error: unknown, context: { account?: string; proxy?: RedactedProxy; target?: string }): string {
  const message = String((error as Error)?.message ?? error);
  if (!(error instanceof SessionProxyError)) return message;
  const own = { account: error.account, proxy: error.proxy, target: error.target };
  const suffix = withContext('', own);
  if (!suffix || !message.endsWith(suffix)) return message;
  return withContext(message.slice(0, -suffix.length), {
    account: own.account === context.account ? undefined : own.account,
    proxy: context.proxy !== undefined && own.proxy === String(context.proxy) ? undefined : own.proxy,
    target: own.target === context.target ? undefined : own.target,
  });
}

/** A proxy URL, vendor line or object could not be parsed. */
export class ProxyUrlError extends SessionProxyError {
  static override readonly kind = 'ProxyUrlError';
  override readonly code = 'SP_ERR_PROXY_URL';
}

/** Options or a config file are invalid. */
export class ConfigError extends SessionProxyError {
  static override readonly kind = 'ConfigError';
  override readonly code = 'SP_ERR_CONFIG';
}

/** A method was called with an argument of the wrong kind (`withProxy('alice', 42)`); the message names the method and the argument. */
export class InvalidArgumentError extends SessionProxyError {
  static override readonly kind = 'InvalidArgumentError';
  override readonly code = 'SP_ERR_INVALID_ARG';
}

/** `withProxy`/`rotate`/… named an account that is not configured, or named none outside any scope with no default proxy. */
export class UnknownAccountError extends SessionProxyError {
  static override readonly kind = 'UnknownAccountError';
  override readonly code = 'SP_ERR_UNKNOWN_ACCOUNT';
}

/** Another manager is installed in this process. */
export class AlreadyInstalledError extends SessionProxyError {
  static override readonly kind = 'AlreadyInstalledError';
  override readonly code = 'SP_ERR_ALREADY_INSTALLED';
}

/** A module-level helper was called with no manager installed. */
export class NotInstalledError extends SessionProxyError {
  static override readonly kind = 'NotInstalledError';
  override readonly code = 'SP_ERR_NOT_INSTALLED';
}

/** The proxy could not be reached, refused the tunnel, or timed out. */
export class ProxyConnectError extends SessionProxyError {
  static override readonly kind: string = 'ProxyConnectError';
  override readonly code: string = 'SP_ERR_PROXY_CONNECT';
  /** HTTP status the proxy answered to CONNECT, or the SOCKS reply code. */
  readonly status: number | undefined;
  constructor(message: string, options: SessionProxyErrorOptions & { status?: number } = {}) {
    super(message, options);
    this.status = options.status;
  }
}

/** The proxy refused the credentials (HTTP 407/401, SOCKS auth failure). */
export class ProxyAuthError extends ProxyConnectError {
  static override readonly kind = 'ProxyAuthError';
  override readonly code = 'SP_ERR_PROXY_AUTH';
}

/** Every proxy of an account's pool is down or in cooldown. */
export class ProxyUnavailableError extends SessionProxyError {
  static override readonly kind: string = 'ProxyUnavailableError';
  override readonly code: string = 'SP_ERR_PROXY_UNAVAILABLE';
}

/**
 * No IP-echo endpoint answered a verification. `errors` holds each
 * endpoint's failure in order; `cause` is the first typed one (the proxy's
 * ProxyAuthError when its password is wrong, its ProxyConnectError when it is
 * down), else the first. The message lists them with the account and proxy
 * said once.
 */
export class EgressUnavailableError extends SessionProxyError {
  static override readonly kind = 'EgressUnavailableError';
  override readonly code = 'SP_ERR_EGRESS_UNAVAILABLE';
  readonly errors: readonly unknown[];
  constructor(message: string, options: SessionProxyErrorOptions & { errors?: readonly unknown[] } = {}) {
    const errors = options.errors ?? [];
    super(message, { ...options, cause: options.cause ?? errors.find((e) => e instanceof SessionProxyError) ?? errors[0] });
    this.errors = errors;
  }
}

/** A request or stream still running on a connection drained off the account's old proxy after rotate() was cut when `drainTimeout` ran out. */
export class DrainTimeoutError extends SessionProxyError {
  static override readonly kind = 'DrainTimeoutError';
  override readonly code = 'SP_ERR_DRAIN_TIMEOUT';
}

/** A connection would have left from the wrong IP (direct, or another account's proxy) and was refused. */
export class LeakBlockedError extends SessionProxyError {
  static override readonly kind = 'LeakBlockedError';
  override readonly code = 'SP_ERR_LEAK_BLOCKED';
}

/** The egress IP seen through the proxy is not the expected one. */
export class EgressMismatchError extends SessionProxyError {
  static override readonly kind = 'EgressMismatchError';
  override readonly code = 'SP_ERR_EGRESS_MISMATCH';
}

/**
 * The egress watch saw the account's IP change within its session (`watchEgress.onChange: 'quarantine'`):
 * its traffic is stopped until `verifyEgress(account, { accept: true })` or `rotate()`.
 */
export class EgressChangedError extends SessionProxyError {
  static override readonly kind = 'EgressChangedError';
  override readonly code = 'SP_ERR_EGRESS_CHANGED';
}

/** The egress IP through the proxy equals the direct one: the proxy is transparent, or the route leaks. */
export class EgressLeakError extends SessionProxyError {
  static override readonly kind = 'EgressLeakError';
  override readonly code = 'SP_ERR_EGRESS_LEAK';
}

/** Walks an error's `cause` chain (fetch wraps ours in `TypeError('fetch failed')`) and returns the first SessionProxyError. */
export function findSessionProxyError<T extends SessionProxyError = SessionProxyError>(
  error: unknown,
  /**
   * The first error of this class instead: `findSessionProxyError(err, ProxyAuthError)` finds the
   * proxy's refusal under a failed verification. The `errors` of an EgressUnavailableError (or an
   * AggregateError) are searched too, after the `cause`.
   */
  kind?: abstract new (...args: never[]) => T,
): T | undefined {
  const Kind = (kind ?? SessionProxyError) as unknown as abstract new (...args: never[]) => T;
  const seen = new Set<unknown>();
  const visit = (e: unknown): T | undefined => {
    if (!e || typeof e !== 'object' || seen.has(e)) return undefined;
    seen.add(e);
    if (e instanceof Kind) return e;
    const found = visit((e as { cause?: unknown }).cause);
    if (found) return found;
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors)) {
      for (const inner of errors) {
        const hit = visit(inner);
        if (hit) return hit;
      }
    }
    return undefined;
  };
  return visit(error);
}

/**
 * A connection's target cannot be put into a proxy handshake as it is (a
 * control character, space or URL delimiter in the host, a malformed IP
 * literal, a port outside 1–65535, a name too long for SOCKS5): refused
 * before anything is sent. The message names the problem and shows the
 * target escaped, so it cannot split a log line either. Not a
 * ProxyConnectError: the proxy is not at fault, so it neither counts against
 * the proxy's health nor triggers failover.
 */
export class InvalidTargetError extends SessionProxyError {
  static override readonly kind = 'InvalidTargetError';
  override readonly code = 'SP_ERR_INVALID_TARGET';
}

/**
 * The fleet store (option `store`) cannot be reached, so an assignment that
 * needs it (an account's first use, rotate, failover, a lease renewal past
 * its deadline) cannot be made: the request fails closed. A
 * ProxyUnavailableError: nothing goes direct or through a shared proxy.
 */
export class StoreUnavailableError extends ProxyUnavailableError {
  static override readonly kind = 'StoreUnavailableError';
  override readonly code = 'SP_ERR_STORE_UNAVAILABLE';
}
