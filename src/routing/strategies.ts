/**
 * Which proxy of a pool an account moves to on rotate() or failover. The
 * account stays on it (sticky) until the next move.
 */
export type RotationStrategy = 'round-robin' | 'random' | 'least-used' | 'healthiest';

export const ROTATION_STRATEGIES: readonly RotationStrategy[] = ['round-robin', 'random', 'least-used', 'healthiest'];

export interface Candidate {
  /** Position in the pool. */
  readonly index: number;
  /** Accounts that currently hold this proxy as their active one. */
  readonly holders: number;
  /** Requests routed through it so far (all accounts). */
  readonly requests: number;
  readonly recentFailures: number;
  readonly latencyMs: number | undefined;
}

/** Picks among eligible candidates; `current` is the account's active index, `size` the pool's. */
export function choose(strategy: RotationStrategy, current: number, size: number, candidates: readonly Candidate[], random: () => number = Math.random): Candidate | undefined {
  if (candidates.length === 0) return undefined;
  const distance = (c: Candidate): number => (c.index - current - 1 + size) % size;
  const byOrder = (a: Candidate, b: Candidate): number => distance(a) - distance(b);
  switch (strategy) {
    case 'round-robin':
      return [...candidates].sort(byOrder)[0];
    case 'random':
      return candidates[Math.floor(random() * candidates.length)];
    case 'least-used':
      return [...candidates].sort((a, b) => a.holders - b.holders || a.requests - b.requests || byOrder(a, b))[0];
    case 'healthiest':
      return [...candidates].sort(
        (a, b) => a.recentFailures - b.recentFailures || (a.latencyMs ?? Infinity) - (b.latencyMs ?? Infinity) || byOrder(a, b),
      )[0];
  }
}
