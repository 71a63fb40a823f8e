/**
 * What happens when a request cannot be routed as configured (requireScope
 * with no scope, an in-scope connection to another account's proxy, a socket
 * the socket layer may not tunnel): with `strict` (the default) it fails with
 * LeakBlockedError; otherwise it goes direct. Either way a `leak` event is
 * emitted, so a leak is never silent.
 */
import { LeakBlockedError } from '../errors.js';
import { publish } from '../diagnostics.js';
import { printableAuthority } from '../tunnel/validate-target.js';
import type { Target } from './route.js';

export type Layer = 'undici' | 'http' | 'socket' | 'udp' | 'egress';

export interface LeakEvent {
  readonly account: string | undefined;
  readonly target: string;
  readonly layer: Layer;
  /** `blocked` (strict) or `direct` (strict: false let it through). */
  readonly action: 'blocked' | 'direct';
  readonly reason: string;
}

export interface LeakReport {
  readonly layer: Layer;
  readonly account: string | undefined;
  readonly target: Target;
  readonly reason: string;
}

export class LeakPolicy {
  constructor(
    private readonly strict: boolean,
    private readonly emit: (event: LeakEvent) => void,
  ) {}

  /** The error to fail with, or undefined when the connection may go direct. */
  violation(r: LeakReport): LeakBlockedError | undefined {
    const target = printableAuthority(r.target.host, r.target.port);
    const event: LeakEvent = { account: r.account, target, layer: r.layer, action: this.strict ? 'blocked' : 'direct', reason: r.reason };
    publish('leak', () => event);
    this.emit(event);
    if (!this.strict) return undefined;
    return new LeakBlockedError(`refused to send traffic that would leave from the wrong IP: ${r.reason}`, { account: r.account, target });
  }
}
