/**
 * The PAC sandbox: `FindProxyForURL` compiled by pac-resolver into a QuickJS
 * VM compiled to WebAssembly (quickjs-wasi) — not Node's `vm`, through which
 * PAC resolvers had remote-code-execution CVEs (CVE-2021-23406 in
 * pac-resolver ≤ 4, CVE-2023-37466 in vm2). The guest has its own heap and
 * globals: no `process`, no `require`, no host object; `Function` and
 * `globalThis.constructor` are QuickJS's own.
 *
 * Bounds: a memory limit for the VM, and an interrupt handler that stops
 * any synchronous run (compiling the script's top level, one call of
 * FindProxyForURL) after `evalTimeout`. The DNS helpers are synchronous
 * reads of names resolved between runs (helpers.ts), so no guest code ever
 * awaits the host. After a failed run the VM is thrown away and rebuilt.
 *
 * pac-resolver and quickjs-wasi are ESM-only optional peer dependencies,
 * loaded with a dynamic `import()` (kept as such in the CJS build) the first
 * time a PAC is used, and never otherwise.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { DNS_TIMEOUT_MS, PacDns, inNet, myIpAddress } from './helpers.js';

declare const __filename: string | undefined;

/** Resolution from this module's own place (CJS build: __filename; ESM: import.meta.url). */
function requireHere(): NodeJS.Require {
  return createRequire(typeof __filename === 'string' ? __filename : import.meta.url);
}

type QuickJSModule = typeof import('quickjs-wasi');
type QuickJS = import('quickjs-wasi').QuickJS;
type CreatePacResolver = (typeof import('pac-resolver'))['createPacResolver'];
/** A compiled WebAssembly.Module (lib has no WebAssembly types here: used opaquely). */
type WasmModule = object;
const wasmCompile = (bytes: Uint8Array): Promise<WasmModule> => (globalThis as unknown as { WebAssembly: { compile(b: Uint8Array): Promise<WasmModule> } }).WebAssembly.compile(bytes);

interface Modules {
  readonly createPacResolver: CreatePacResolver;
  readonly QuickJS: QuickJSModule['QuickJS'];
  /** Compiled once per process, instantiated per VM. */
  readonly wasm: WasmModule;
}

/** Why a PAC cannot be evaluated in this installation (the optional dependencies are missing), if so. */
export function pacUnavailable(): string | undefined {
  const req = requireHere();
  const missing = ['pac-resolver', 'quickjs-wasi/quickjs.wasm'].filter((id) => {
    try {
      req.resolve(id);
      return false;
    } catch {
      return true;
    }
  });
  if (!missing.length) return undefined;
  return `the option \`pac\` needs the optional dependencies pac-resolver (9+) and quickjs-wasi (3+), not installed here (${missing.join(', ')} cannot be resolved): npm install pac-resolver quickjs-wasi`;
}

let loading: Promise<Modules> | undefined;

function loadModules(): Promise<Modules> {
  return (loading ??= (async (): Promise<Modules> => {
    const [pac, qjs] = await Promise.all([import('pac-resolver'), import('quickjs-wasi')]);
    const bytes = await readFile(requireHere().resolve('quickjs-wasi/quickjs.wasm'));
    return { createPacResolver: pac.createPacResolver, QuickJS: qjs.QuickJS, wasm: await wasmCompile(bytes) };
  })().catch((err: unknown) => {
    loading = undefined;
    throw err;
  }));
}

export interface EngineOptions {
  /** CPU time one synchronous run may take (ms). */
  readonly evalTimeoutMs: number;
  /** Bytes the VM may allocate. */
  readonly memoryLimit: number;
}

/** Re-runs of one evaluation while the script asks for names not yet resolved, and names looked up per evaluation. */
const MAX_ROUNDS = 8;
const MAX_LOOKUPS = 64;

export class PacEngine {
  private vm: QuickJS | undefined;
  private resolver: ((url: string, host: string) => Promise<unknown>) | undefined;
  private building: Promise<void> | undefined;
  private deadline = Infinity;
  /** Names the current synchronous run asked for and did not find (undefined between runs). */
  private missing: Set<string> | undefined;
  private lookups = 0;
  private disposed = false;

  private constructor(
    private readonly modules: Modules,
    private readonly script: string,
    private readonly dns: PacDns,
    private readonly o: EngineOptions,
  ) {}

  /** Compiles `script` (bounded like a call): rejects when it does not compile or define FindProxyForURL. */
  static async create(script: string, dns: PacDns, o: EngineOptions): Promise<PacEngine> {
    const engine = new PacEngine(await loadModules(), script, dns, o);
    await engine.build();
    return engine;
  }

  private async build(): Promise<void> {
    const { QuickJS, createPacResolver, wasm } = this.modules;
    const vm = await QuickJS.create({ wasm: wasm as never, memoryLimit: this.o.memoryLimit, interruptHandler: () => Date.now() > this.deadline });
    const lookup = (host: unknown): string | null => {
      if (typeof host !== 'string' || host === '') return null;
      const known = this.dns.known(host);
      if (known !== undefined) return known;
      if (this.missing && this.lookups < MAX_LOOKUPS) {
        this.missing.add(host);
        this.lookups++;
      }
      return null;
    };
    const sandbox = {
      myIpAddress: () => myIpAddress(),
      dnsResolve: (host: unknown) => lookup(host),
      isResolvable: (host: unknown) => lookup(host) !== null,
      isInNet: (host: unknown, pattern: unknown, mask: unknown) => inNet(lookup(host), String(pattern), String(mask)),
      alert: () => undefined,
    };
    try {
      const resolver = this.bounded(() => createPacResolver(vm, this.script, { sandbox: sandbox as never }));
      this.vm = vm;
      this.resolver = resolver as (url: string, host: string) => Promise<unknown>;
    } catch (err) {
      vm.dispose();
      throw plain(err, 'the PAC script did not compile');
    }
  }

  /** Runs `fn` synchronously under the interrupt deadline. */
  private bounded<T>(fn: () => T): T {
    this.deadline = Date.now() + this.o.evalTimeoutMs;
    try {
      return fn();
    } finally {
      this.deadline = Infinity;
    }
  }

  /**
   * `FindProxyForURL(url, host)`: its answer (a string, or empty when the
   * script returns nothing). Rejects when the script throws, runs past
   * `evalTimeout`, exceeds its memory, or returns something else.
   */
  async findProxyForURL(url: string, host: string): Promise<string> {
    const deadline = Date.now() + MAX_ROUNDS * (DNS_TIMEOUT_MS + this.o.evalTimeoutMs);
    for (let round = 0; ; round++) {
      if (this.disposed) throw new Error('the PAC engine was closed');
      if (!this.vm) await (this.building ??= this.build().finally(() => (this.building = undefined)));
      const missing = new Set<string>();
      let pending: Promise<unknown>;
      this.missing = missing;
      this.lookups = 0;
      try {
        // The resolver runs the guest synchronously up to its first await (there is none inside:
        // the helpers are synchronous), so the interrupt deadline covers the whole run.
        pending = this.bounded(() => this.resolver!(url, host));
      } finally {
        this.missing = undefined;
      }
      let answer: unknown;
      try {
        answer = await pending;
      } catch (err) {
        this.reset();
        throw plain(err, 'FindProxyForURL failed');
      }
      if (missing.size && round + 1 < MAX_ROUNDS && Date.now() < deadline) {
        await this.dns.resolve(missing);
        continue;
      }
      if (answer === undefined || answer === null) return '';
      if (typeof answer !== 'string') throw new Error(`FindProxyForURL returned a ${typeof answer}, not a string`);
      return answer;
    }
  }

  /** A failed run: the next one gets a fresh VM (an interrupted or exhausted heap is not trusted again). */
  private reset(): void {
    const vm = this.vm;
    this.vm = undefined;
    this.resolver = undefined;
    try {
      vm?.dispose();
    } catch {
      // already gone
    }
  }

  dispose(): void {
    this.disposed = true;
    this.reset();
  }
}

/** A host-side Error with the guest's name and message only (a JSException holds a live VM handle). */
function plain(err: unknown, what: string): Error {
  const e = err as { name?: unknown; message?: unknown; handle?: { dispose?: () => void } } | undefined;
  const name = typeof e?.name === 'string' ? e.name : 'Error';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  try {
    e?.handle?.dispose?.();
  } catch {
    // the VM may be gone already
  }
  const text = /interrupted/i.test(message) ? 'ran longer than evalTimeout and was interrupted' : /out of memory/i.test(message) ? 'ran out of its memory limit' : `${name}: ${message}`;
  return new Error(`${what}: ${text}`);
}
