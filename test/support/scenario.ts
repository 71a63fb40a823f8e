/**
 * A loopback world for routing tests: one echo server and mock proxies, each
 * binding its upstream side to its own 127.0.0.x, so the echo server's
 * `ip` tells which proxy a request used.
 */
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy, type MockProxyOptions } from '../../src/testing/index.js';

export interface Scenario {
  echo: EchoServer;
  proxies: Record<string, MockProxy>;
  close(): Promise<void>;
}

export async function startScenario(proxies: Record<string, MockProxyOptions>, echoOptions: Parameters<typeof startEchoServer>[0] = {}): Promise<Scenario> {
  const echo = await startEchoServer(echoOptions);
  const started: Record<string, MockProxy> = {};
  for (const [name, options] of Object.entries(proxies)) started[name] = await startMockProxy(options);
  return {
    echo,
    proxies: started,
    async close() {
      await Promise.all([echo.close(), ...Object.values(started).map((p) => p.close())]);
    },
  };
}

/** Reads a JSON body from an http(s).get response. */
export function readJson<T = unknown>(res: import('node:http').IncomingMessage): Promise<T> {
  return new Promise((resolve, reject) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (body += c));
    res.on('end', () => {
      try {
        resolve(JSON.parse(body) as T);
      } catch (err) {
        reject(new Error(`not JSON (HTTP ${res.statusCode}): ${body.slice(0, 200)}`, { cause: err }));
      }
    });
    res.on('error', reject);
  });
}

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
