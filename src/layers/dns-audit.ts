/**
 * DNS audit. The tunnels never resolve a target locally (the proxy does), but
 * a client may resolve a name itself before connecting (grpc-js does): that
 * lookup reaches the local resolver, outside the proxy. Every dns.lookup made
 * inside a scope is published on `session-proxy:dns` so users can audit it.
 * Only costs anything while someone subscribes. UDP and native addons that
 * resolve on their own are not seen.
 */
import dns from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';
import { state } from '../state.js';
import { channels, publish } from '../diagnostics.js';

export function installDnsAudit(): () => void {
  const lookup = dns.lookup;
  const lookupPromise = dns.promises.lookup;
  const record = (hostname: unknown): void => {
    if (!channels.dns.hasSubscribers) return;
    const account = state.scopes.getStore()?.account;
    if (account !== undefined) publish('dns', () => ({ account, hostname: String(hostname), reason: 'local lookup inside a scope' }));
  };
  (dns as { lookup: unknown }).lookup = function (this: unknown, hostname: unknown, ...rest: unknown[]) {
    record(hostname);
    return (lookup as (...a: unknown[]) => unknown).call(this, hostname, ...rest);
  };
  (dns.promises as { lookup: unknown }).lookup = function (this: unknown, hostname: unknown, ...rest: unknown[]) {
    record(hostname);
    return (lookupPromise as (...a: unknown[]) => unknown).call(this, hostname, ...rest);
  };
  syncBuiltinESMExports();
  return () => {
    (dns as { lookup: unknown }).lookup = lookup;
    (dns.promises as { lookup: unknown }).lookup = lookupPromise;
    syncBuiltinESMExports();
  };
}
