/**
 * Layer 1 — environment. With a default proxy, export it as HTTP_PROXY,
 * HTTPS_PROXY, ALL_PROXY (both cases) and NO_PROXY, for child processes and
 * env-reading libraries. Env vars are process-wide: they carry the *default*
 * proxy only; account scopes are enforced by the other layers. The restore
 * puts back the previous values exactly, absent ones included.
 */
import type { ProxyEndpoint } from '../proxy/endpoint.js';

const PROXY_VARS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'] as const;
const NO_PROXY_VARS = ['NO_PROXY', 'no_proxy'] as const;

export function installEnv(proxy: ProxyEndpoint, noProxy: readonly string[], env: NodeJS.ProcessEnv = process.env): () => void {
  const names = [...PROXY_VARS, ...NO_PROXY_VARS];
  const saved = new Map(names.map((n) => [n, Object.prototype.hasOwnProperty.call(env, n) ? env[n] : undefined]));
  const url = proxy.toEnvUrl();
  for (const n of PROXY_VARS) env[n] = url;
  const previous = (env.NO_PROXY ?? env.no_proxy ?? '').split(/[\s,]+/).filter(Boolean);
  const merged = [...new Set([...noProxy, ...previous])].join(',');
  for (const n of NO_PROXY_VARS) {
    if (merged) env[n] = merged;
    else delete env[n];
  }
  return () => {
    for (const [n, v] of saved) {
      if (v === undefined) delete env[n];
      else env[n] = v;
    }
  };
}
