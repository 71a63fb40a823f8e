/**
 * One lifecycle for every layer, in the spirit of mswjs/interceptors'
 * Interceptor: a layer's `apply()` patches what it needs through `patch()`
 * and returns its restore; `LayerStack` applies layers in order and
 * restores them in reverse (also when a later layer fails to apply).
 *
 * `patch()` keeps the original, re-syncs ESM named exports of builtins
 * (`import { request } from 'node:https'` sees a patch only after
 * `syncBuiltinESMExports()`), restores exactly (a property that was absent
 * goes away again), and refuses to patch one property twice: two copies of
 * the library must never stack hooks on each other.
 */
import { syncBuiltinESMExports } from 'node:module';

export type Restore = () => void;

export interface Layer {
  readonly name: string;
  apply(): Restore;
}

const patched = new WeakMap<object, Set<PropertyKey>>();

export interface PatchOptions {
  /** The object is a builtin module whose ESM named exports must follow. */
  readonly esm?: boolean;
}

export function patch<T extends object>(target: T, key: PropertyKey, value: unknown, options: PatchOptions = {}): Restore {
  let keys = patched.get(target);
  if (!keys) patched.set(target, (keys = new Set()));
  if (keys.has(key)) throw new Error(`session-proxy: ${String(key)} is already patched`);
  keys.add(key);
  const had = Object.prototype.hasOwnProperty.call(target, key);
  const original = (target as Record<PropertyKey, unknown>)[key];
  (target as Record<PropertyKey, unknown>)[key] = value;
  if (options.esm) syncBuiltinESMExports();
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    if (had) (target as Record<PropertyKey, unknown>)[key] = original;
    else delete (target as Record<PropertyKey, unknown>)[key];
    keys.delete(key);
    if (options.esm) syncBuiltinESMExports();
  };
}

/**
 * Replaces a method on a library's prototype (undici, http2-wrapper,
 * grpc-js copies). The restore puts the original back unless someone wrapped
 * ours since: then theirs stays, and ours must be inert by then (each
 * wrapper checks its own `active` flag).
 */
export function replaceMethod(proto: object, key: PropertyKey, fn: unknown): Restore {
  const target = proto as Record<PropertyKey, unknown>;
  const desc = Object.getOwnPropertyDescriptor(proto, key);
  Object.defineProperty(proto, key, { value: fn, writable: true, configurable: true, enumerable: desc?.enumerable ?? false });
  return () => {
    if (target[key] !== fn) return;
    if (desc) Object.defineProperty(proto, key, desc);
    else delete target[key];
  };
}

/** Several restores as one, run in reverse order. */
export function restoreAll(restores: Restore[]): Restore {
  return () => {
    for (const restore of restores.reverse()) restore();
  };
}

/** Layers applied in order, restored in reverse. */
export class LayerStack {
  private applied: Array<{ name: string; restore: Restore }> = [];

  /** Applies each layer; if one throws, the ones already applied are restored and the error rethrown. */
  apply(layers: readonly Layer[]): void {
    try {
      for (const layer of layers) this.applied.push({ name: layer.name, restore: layer.apply() });
    } catch (err) {
      this.restore();
      throw err;
    }
  }

  restore(): void {
    const applied = this.applied.reverse();
    this.applied = [];
    for (const { restore } of applied) restore();
  }

  /** Names of the applied layers, in order. */
  get names(): string[] {
    return this.applied.map((l) => l.name);
  }
}
