/**
 * When an account's egress must be proven before traffic flows:
 * - verifyOnStart: each account verified before its first tunnel opens;
 * - verifyOnRotate: again after each move to a new proxy;
 * - verifyEvery: periodically;
 * - onMismatch 'quarantine': a failed verification stops the account's
 *   traffic (typed errors) until a later verification succeeds.
 * - hold (the egress watch's 'quarantine'): stops the account's traffic until
 *   released — by an accepted verification or a rotation, not by a later
 *   verification that merely succeeds.
 * The gate is awaited when a tunnel opens, never per request, so a verified
 * account pays nothing.
 */
import { SessionProxyError } from '../errors.js';

export interface EgressPolicyOptions {
  /** @default false */
  verifyOnStart?: boolean;
  /** @default false */
  verifyOnRotate?: boolean;
  /** Re-verify every account this often (ms). */
  verifyEvery?: number;
  /** @default 'error' — the failure is reported; 'quarantine' also stops the account's traffic. */
  onMismatch?: 'error' | 'quarantine';
}

export class EgressPolicy {
  private readonly pending = new Map<string, Promise<void>>();
  private readonly quarantined = new Map<string, SessionProxyError>();
  private readonly held = new Map<string, SessionProxyError>();
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly o: EgressPolicyOptions, private readonly verify: (account: string) => Promise<unknown>) {}

  /** What a tunnel for `account` must wait for, if anything. */
  gate(account: string): Promise<void> | undefined {
    const q = this.held.get(account) ?? this.quarantined.get(account);
    if (q) return Promise.reject(q);
    return this.pending.get(account);
  }

  /** The error that stops a quarantined account's traffic at routing time. */
  quarantineError(account: string): SessionProxyError | undefined {
    return this.held.get(account) ?? this.quarantined.get(account);
  }

  /** Stops the account's traffic with `error` until release(). */
  hold(account: string, error: SessionProxyError): void {
    this.held.set(account, error);
  }

  release(account: string): void {
    this.held.delete(account);
  }

  isHeld(account: string): boolean {
    return this.held.has(account);
  }

  /** Every verification's outcome, however it was started: quarantine on failure (if so configured), lift on success. */
  record(account: string, error: unknown): void {
    if (error === undefined) this.quarantined.delete(account);
    else if (this.o.onMismatch === 'quarantine' && error instanceof SessionProxyError) this.quarantined.set(account, error);
  }

  /** Verifies now; tunnels of the account wait for it. */
  require(account: string): Promise<void> {
    const run = this.verify(account).then(() => undefined);
    const gate = run.finally(() => {
      if (this.pending.get(account) === gate) this.pending.delete(account);
    });
    gate.catch(() => undefined);
    this.pending.set(account, gate);
    return gate;
  }

  start(accounts: () => string[]): void {
    if (this.o.verifyOnStart) for (const a of accounts()) void this.require(a).catch(() => undefined);
    if (this.o.verifyEvery) {
      this.timer = setInterval(() => {
        for (const a of accounts()) void this.require(a).catch(() => undefined);
      }, this.o.verifyEvery);
      this.timer.unref();
    }
  }

  forget(account: string): void {
    this.pending.delete(account);
    this.quarantined.delete(account);
    this.held.delete(account);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
