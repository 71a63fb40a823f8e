/**
 * Fault injection state. The public half is `MockProxyFaults`; the protocol
 * handlers consume faults through the `take…` methods, so a fault armed for
 * "the next n" is used up exactly once per connection or request.
 */
import type { MockProxyFaults } from './types.js';

function count(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
  return n;
}

export class FaultState implements MockProxyFaults {
  private refusals = 0;
  /** Queued forced answers, consumed in order: respondNext(407); respondNext(502) gives 407 then 502. */
  private readonly answers: number[] = [];
  private delayMs = 0;
  private stalled = false;
  private resetLimit: number | null = null;

  refuseNext(n = 1): void {
    this.refusals += count(n, 'refuseNext(n)');
  }

  respondNext(status: number, n = 1): void {
    // Only failures: a forced "success" would have to invent a tunnel that does not exist.
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new RangeError(`respondNext(status) takes a 4xx/5xx status, got ${status}`);
    }
    for (let i = count(n, 'respondNext(…, n)'); i > 0; i--) this.answers.push(status);
  }

  latency(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latency(ms) must be a non-negative number, got ${ms}`);
    this.delayMs = ms;
  }

  stall(on = true): void {
    this.stalled = on;
  }

  resetAfter(bytes: number | null): void {
    this.resetLimit = bytes === null ? null : count(bytes, 'resetAfter(bytes)');
  }

  clear(): void {
    this.refusals = 0;
    this.answers.length = 0;
    this.delayMs = 0;
    this.stalled = false;
    this.resetLimit = null;
  }

  /** True if this connection must be dropped right after accept (uses one refusal). */
  takeRefusal(): boolean {
    if (this.refusals === 0) return false;
    this.refusals--;
    return true;
  }

  /** The forced answer for this request, if one is armed (uses it). */
  takeAnswer(): number | undefined {
    return this.answers.shift();
  }

  /** The forced answer that the next request would get, without using it. */
  peekAnswer(): number | undefined {
    return this.answers[0];
  }

  get latencyMs(): number {
    return this.delayMs;
  }

  get isStalled(): boolean {
    return this.stalled;
  }

  /** Snapshot taken when a tunnel starts: changing it later affects only later tunnels. */
  get resetAfterBytes(): number | null {
    return this.resetLimit;
  }
}
