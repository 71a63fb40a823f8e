/**
 * Process-wide state, shared by every copy of this library (the ESM and CJS
 * builds, duplicate installs). It lives on globalThis under a versioned
 * Symbol.for key, non-enumerable, so both builds find one scope store, one
 * installed manager, and one set of captured originals.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { captureOriginals, type Originals } from './originals.js';

/** What a `withProxy` scope stores in the async context. */
export interface Scope {
  readonly account: string;
}

export interface SharedState {
  /** The scope store: `withProxy(account, fn)` runs fn inside `scopes.run({ account }, …)`. */
  readonly scopes: AsyncLocalStorage<Scope>;
  /** The network functions as they were before any copy of this library patched them. */
  readonly originals: Originals;
  /** Depth of synchronous plumbing calls in progress (see plumbing.ts). */
  plumbingDepth: number;
  /** The installed manager, if any (typed loosely here to avoid an import cycle). */
  installed: unknown;
}

const kState = Symbol.for('session-proxy.state.v1');

function create(): SharedState {
  return { scopes: new AsyncLocalStorage<Scope>(), originals: captureOriginals(), plumbingDepth: 0, installed: undefined };
}

export const state: SharedState = ((): SharedState => {
  const g = globalThis as unknown as Record<symbol, SharedState | undefined>;
  let s = g[kState];
  if (!s) {
    s = create();
    Object.defineProperty(globalThis, kState, { value: s, enumerable: false, configurable: true, writable: false });
  }
  return s;
})();
