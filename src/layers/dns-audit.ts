/**
 * DNS audit. The tunnels never resolve a target locally (the proxy does), but
 * a client may resolve a name itself before connecting (grpc-js does): that
 * query reaches the local resolver, outside the proxy. Every local query made
 * inside a scope is published on `session-proxy:dns` so users can audit it:
 * `dns.lookup`, `dns.lookupService`, every `dns.resolve*` and `dns.reverse`,
 * the same in `dns.promises`, and the methods of `dns.Resolver` and
 * `dns.promises.Resolver` instances. Reported, not prevented: the query goes
 * from this host to its resolver (c-ares or getaddrinfo, native code the UDP
 * layer does not see), never through a proxy. Only costs anything while
 * someone subscribes. Native addons that resolve on their own are not seen.
 */
import dns from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';
import { state } from '../state.js';
import { channels, publish } from '../diagnostics.js';

type Fn = (this: unknown, ...args: unknown[]) => unknown;

/** What sends a query: the module functions (bound to the default resolver) and the Resolver methods. */
const isQuery = (key: string): boolean => key.startsWith('resolve') || key === 'reverse';

export function installDnsAudit(): () => void {
  let active = true;
  const restores: Array<() => void> = [];
  const record = (hostname: unknown, reason: string): void => {
    if (!active || !channels.dns.hasSubscribers) return;
    const account = state.scopes.getStore()?.account;
    if (account !== undefined) publish('dns', () => ({ account, hostname: String(hostname), reason }));
  };
  const patch = (owner: Record<string, unknown>, key: string, reason: string): void => {
    const original = owner[key];
    if (typeof original !== 'function') return;
    const wrapper = function (this: unknown, hostname: unknown, ...rest: unknown[]) {
      record(hostname, reason);
      return (original as Fn).call(this, hostname, ...rest);
    };
    owner[key] = wrapper;
    // Only what we put there: dns.setServers() rebinds the module's resolve*
    // functions, and those must keep the servers the user set.
    restores.push(() => {
      if (owner[key] === wrapper) owner[key] = original;
    });
  };

  const callback = dns as unknown as Record<string, unknown>;
  const promises = dns.promises as unknown as Record<string, unknown>;
  patch(callback, 'lookup', 'local lookup inside a scope');
  patch(promises, 'lookup', 'local lookup inside a scope');
  for (const [owner, name] of [
    [callback, 'dns'],
    [promises, 'dns.promises'],
  ] as const) {
    patch(owner, 'lookupService', `local reverse lookup inside a scope (${name}.lookupService)`);
    for (const key of Object.keys(owner).filter(isQuery)) patch(owner, key, `resolver query inside a scope (${name}.${key})`);
  }
  for (const [Resolver, name] of [
    [dns.Resolver, 'dns.Resolver'],
    [dns.promises.Resolver, 'dns.promises.Resolver'],
  ] as const) {
    const proto = Resolver.prototype as unknown as Record<string, unknown>;
    for (const key of Object.getOwnPropertyNames(proto).filter(isQuery)) patch(proto, key, `resolver query inside a scope (${name}#${key})`);
  }
  syncBuiltinESMExports();
  return () => {
    active = false;
    for (const restore of restores.reverse()) restore();
    syncBuiltinESMExports();
  };
}
