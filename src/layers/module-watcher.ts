/**
 * Every loaded copy of a library some adapter patches — undici, http2-wrapper,
 * grpc-js — found through one `Module._load` hook shared by all of them.
 *
 * Such libraries are loaded by the app (or by ccxt, got…) from their own
 * node_modules, often in several copies, and never through our imports, so
 * an adapter finds them where Node keeps them:
 *
 * - every module already in `require.cache` when the adapter starts watching;
 * - every module loaded later, through the `Module._load` hook. An ESM
 *   `import` of a CommonJS package goes through `Module._load` too (measured
 *   on Node 20.20, 22.23 and 24.22: the ESM loader's CommonJS translator loads
 *   the entry file with it), and a package's internal `require()`s always do.
 *
 * `Module._load` returns the cached exports on every later `require`, so a
 * watcher is offered the same exports many times and must ignore repeats.
 * Not found: code that never passes through `require` (a library bundled into
 * an app's own build); the socket layer and the ownership guard stay its cover.
 */
import Module from 'node:module';
import type { Restore } from './layer.js';

export interface ModuleWatcher {
  /** A cheap test, run for every module loaded while watching: most modules are not the library. */
  readonly quick: (exports: Record<string, unknown>) => boolean;
  /** A module whose exports passed `quick`; `source` is its file (require.cache) or the request string. */
  readonly offer: (exports: Record<string, unknown>, source: string) => void;
}

type Load = (request: string, parent: unknown, isMain: boolean) => unknown;
type ModuleInternals = { _load: Load; _cache: Record<string, { exports?: unknown } | undefined> };

const M = Module as unknown as ModuleInternals;
const watchers = new Set<ModuleWatcher>();
let unhook: Restore | undefined;

function offerTo(w: ModuleWatcher, exports: unknown, source: string): void {
  if (!exports || (typeof exports !== 'object' && typeof exports !== 'function')) return;
  try {
    const e = exports as Record<string, unknown>;
    if (w.quick(e)) w.offer(e, source);
  } catch {
    // Exports that throw on access (a lazy getter, a Proxy) are not a library we patch; never break the app's require.
  }
}

function hook(): Restore {
  const original = M._load;
  let active = true;
  const hooked: Load = function load(this: unknown, request, parent, isMain) {
    const exports = original.call(this, request, parent, isMain);
    if (active) for (const w of watchers) offerTo(w, exports, request);
    return exports;
  };
  M._load = hooked;
  return () => {
    active = false;
    // Another hook may have wrapped ours since: then ours stays in its chain, inert.
    if (M._load === hooked) M._load = original;
  };
}

/** Offers `w` every module loaded now and later, until the returned restore runs. */
export function watchModules(w: ModuleWatcher): Restore {
  watchers.add(w);
  for (const [file, mod] of Object.entries(M._cache)) offerTo(w, mod?.exports, file);
  unhook ??= hook();
  let done = false;
  return () => {
    if (done) return;
    done = true;
    watchers.delete(w);
    if (watchers.size === 0) {
      unhook?.();
      unhook = undefined;
    }
  };
}

