/**
 * Module-level helpers over the one installed manager (kept in the shared
 * state, so the ESM and CJS builds see the same one).
 */
import { state } from './state.js';
import { NotInstalledError } from './errors.js';
import { checkAccount, checkFunction, checkOptionsArgument } from './arguments.js';
import { SessionProxyManager, type RotateOptions, type VerifyEgressOptions } from './manager.js';
import type { SessionProxyOptions } from './options.js';
import type { EgressResult } from './egress/verify.js';
import type { ProxyInfo } from './proxy/endpoint.js';

/**
 * Creates and installs the process's manager. A second install() → AlreadyInstalledError.
 * Its account names are inferred as by `new SessionProxyManager(options)`.
 */
export function install<A extends string = string>(options: SessionProxyOptions<A> = {}): SessionProxyManager<A> {
  return new SessionProxyManager<A>(options).install();
}

/**
 * The installed manager. Any account name type-checks (it may come from a
 * config file); annotate to narrow: `const m: SessionProxyManager<'alice'> = getManager()`.
 * @throws NotInstalledError
 */
export function getManager(): SessionProxyManager<string> {
  const m = state.installed as SessionProxyManager<string> | undefined;
  if (!m) throw new NotInstalledError('no SessionProxyManager is installed: call install(options) or start node with --import session-proxy/register');
  return m;
}

export function withProxy<T>(account: string, fn: () => T): T {
  // The arguments first, as the method checks them: a wrong one is a programming error either way.
  checkAccount('withProxy(account, fn)', account, false);
  checkFunction('withProxy(account, fn)', fn, account);
  return getManager().withProxy(account, fn);
}

export function rotate(account?: string, options?: RotateOptions): Promise<ProxyInfo> {
  checkAccount('rotate(account, options)', account, true);
  checkOptionsArgument('rotate(account, options)', options);
  return getManager().rotate(account, options);
}

export function verifyEgress(account?: string, options?: VerifyEgressOptions): Promise<EgressResult> {
  checkAccount('verifyEgress(account, options)', account, true);
  checkOptionsArgument('verifyEgress(account, options)', options);
  return getManager().verifyEgress(account, options);
}

export async function uninstall(): Promise<void> {
  await (state.installed as SessionProxyManager | undefined)?.uninstall();
}
