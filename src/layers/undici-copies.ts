/**
 * Every copy of undici in the process, found and handed to a patcher.
 *
 * An app's own undici.Pool/Agent/Client never reaches the global dispatcher
 * (CLIENTS.md: ccxt builds `new undici.Agent()` from its pinned copy), and
 * several copies coexist (ours, ccxt's, the app's). undici-partition.ts
 * patches the dispatcher prototypes of each copy; this file only finds the
 * copies and checks that their internals are the ones that patch relies on:
 *
 * - the library's own `undici` import;
 * - every module in `require.cache` whose exports look like undici, at install,
 *   and every copy loaded later (layers/module-watcher.ts: the one
 *   `Module._load` hook; ccxt is ESM and does `await import('undici')`, which
 *   goes through it too).
 *
 * Not found: copies that never pass through `require` — undici bundled into
 * an app's or library's own build (esbuild/webpack), and Node's internal
 * copy (which only global fetch/WebSocket use, and those go to our global
 * dispatcher anyway). Their Pools are still covered by the socket layer: each
 * connection is tunnelled by the async context that opened it, and the guard
 * in guard/undici-requests.ts destroys a socket a request of another route
 * is sent on (LeakBlockedError). It cannot partition, and it attributes a
 * request by its handler's context (the request APIs) or, for `fetch`, by
 * the context the request is created in — which for a request queued at
 * such a Pool is the socket opener's: that one case can still ride the
 * wrong connection (documented in the README's limits).
 */
import { watchModules } from './module-watcher.js';
import * as ownUndici from 'undici';

type Ctor = abstract new (...args: never[]) => object;

/** What an undici copy's index exports, as far as partitioning needs. */
export interface UndiciExports {
  readonly Dispatcher: Ctor;
  readonly Pool: Ctor;
  readonly Agent: Ctor;
  readonly Client: Ctor;
  readonly BalancedPool?: Ctor;
  readonly RoundRobinPool?: Ctor;
}

/** A prototype that implements `[kDispatch]`, `[kClose]` and `[kDestroy]` itself (PoolBase, Agent, Client). */
export interface DispatchOwner {
  readonly proto: Record<symbol, unknown>;
  /** The class name, for messages. */
  readonly name: string;
  readonly kDispatch: symbol;
  readonly kClose: symbol;
  readonly kDestroy: symbol;
}

/** The classes whose `[kDispatch]` owners are patched: PoolBase (Pool, BalancedPool, RoundRobinPool), Agent, Client (H2CClient). */
const PATCHED_CLASSES = ['Pool', 'BalancedPool', 'RoundRobinPool', 'Agent', 'Client'] as const;

export function looksLikeUndici(value: unknown): value is UndiciExports {
  if (!value || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const u = value as Record<string, unknown>;
  try {
    if (typeof u.Dispatcher !== 'function' || typeof u.Pool !== 'function' || typeof u.Agent !== 'function' || typeof u.Client !== 'function') return false;
    const base = (u.Dispatcher as Ctor).prototype;
    return [u.Pool, u.Agent, u.Client].every((c) => (c as Ctor).prototype instanceof (u.Dispatcher as Ctor) && Object.getPrototypeOf((c as Ctor).prototype) !== base);
  } catch {
    // A module whose exports throw on access (a lazy getter, a Proxy) is not undici.
    return false;
  }
}

/** The one own symbol of `obj` with this description, or undefined (none, or ambiguous). */
export function ownSymbol(obj: object, description: string): symbol | undefined {
  const found = Object.getOwnPropertySymbols(obj).filter((s) => s.description === description);
  return found.length === 1 ? found[0] : undefined;
}

/** The nearest prototype of `cls` (below Dispatcher) that owns a symbol method with this description. */
function ownerOf(cls: Ctor, stop: object, description: string): { proto: Record<symbol, unknown>; key: symbol } | undefined {
  for (let p = cls.prototype as object | null; p && p !== stop; p = Object.getPrototypeOf(p)) {
    const key = ownSymbol(p, description);
    if (key && typeof (p as Record<symbol, unknown>)[key] === 'function') return { proto: p as Record<symbol, unknown>, key };
  }
  return undefined;
}

/**
 * The prototypes to patch in copy `u`, and what is missing. A copy with
 * problems is not patched (the socket-level guard stays its only cover); the
 * canary test (test/socket/shared-undici.test.ts) fails on any problem.
 */
export function dispatchOwners(u: UndiciExports): { owners: DispatchOwner[]; problems: string[] } {
  const problems: string[] = [];
  const owners = new Map<object, DispatchOwner>();
  const stop = u.Dispatcher.prototype as object;
  for (const name of PATCHED_CLASSES) {
    const cls = u[name];
    if (!cls) {
      if (name === 'Pool' || name === 'Agent' || name === 'Client') problems.push(`${name} is not exported`);
      continue;
    }
    const dispatch = ownerOf(cls, stop, 'dispatch');
    if (!dispatch) {
      problems.push(`no [Symbol('dispatch')] method on ${name}'s prototype chain`);
      continue;
    }
    if (owners.has(dispatch.proto)) continue;
    // close/destroy must live on the same prototype: twins are closed with the dispatcher they serve.
    const kClose = ownSymbol(dispatch.proto, 'close');
    const kDestroy = ownSymbol(dispatch.proto, 'destroy');
    const ownerName = (dispatch.proto.constructor as { name?: string } | undefined)?.name ?? name;
    if (!kClose || !kDestroy) {
      problems.push(`${ownerName} (${name}) owns [kDispatch] but not [kClose]/[kDestroy]`);
      continue;
    }
    owners.set(dispatch.proto, { proto: dispatch.proto, name: ownerName, kDispatch: dispatch.key, kClose, kDestroy });
  }
  return { owners: [...owners.values()], problems };
}

/** Patches one copy; returns its restore, or undefined when it was not patched. */
export type CopyPatcher = (copy: UndiciExports, source: string) => (() => void) | undefined;

/**
 * Finds every copy now and every copy loaded later (layers/module-watcher.ts),
 * hands each to `patch` once; returns the restore (the watch and every patch, in reverse).
 */
export function installUndiciCopies(patch: CopyPatcher): () => void {
  const seen = new WeakSet<object>();
  const restores: Array<() => void> = [];
  const offer = (exports: unknown, source: string): void => {
    if (!looksLikeUndici(exports)) return;
    // One copy may be reached twice (its namespace and its CommonJS exports share the classes).
    if (seen.has(exports.Dispatcher)) return;
    seen.add(exports.Dispatcher);
    const restore = patch(exports, source);
    if (restore) restores.push(restore);
  };

  offer(ownUndici, 'session-proxy/undici');
  // Cheap test first: most modules are not undici, and this runs for every require.
  const unwatch = watchModules({ quick: (e) => typeof e.Pool === 'function', offer });

  return () => {
    unwatch();
    for (const restore of restores.reverse()) restore();
    restores.length = 0;
  };
}
