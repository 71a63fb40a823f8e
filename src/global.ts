/**
 * Module-level helpers over the one installed manager (kept in the shared
 * state, so the ESM and CJS builds see the same one).
 */
import { state } from './state.js';
import { NotInstalledError } from './errors.js';
import { SessionProxyManager, type RotateOptions, type VerifyEgressOptions } from './manager.js';
import type { SessionProxyOptions } from './options.js';
import type { EgressResult } from './egress/verify.js';
import type { ProxyInfo } from './proxy/endpoint.js';

/** Creates and installs the process's manager. A second install() → AlreadyInstalledError. */
export function install(options: SessionProxyOptions = {}): SessionProxyManager {
  return new SessionProxyManager(options).install();
}

/** The installed manager. @throws NotInstalledError */
export function getManager(): SessionProxyManager {
  const m = state.installed as SessionProxyManager | undefined;
  if (!m) throw new NotInstalledError('no SessionProxyManager is installed: call install(options) or start node with --import session-proxy/register');
  return m;
}

export function withProxy<T>(account: string, fn: () => T): T {
  return getManager().withProxy(account, fn);
}

export function rotate(account?: string, options?: RotateOptions): Promise<ProxyInfo> {
  return getManager().rotate(account, options);
}

export function verifyEgress(account?: string, options?: VerifyEgressOptions): Promise<EgressResult> {
  return getManager().verifyEgress(account, options);
}

export async function uninstall(): Promise<void> {
  await (state.installed as SessionProxyManager | undefined)?.uninstall();
}
