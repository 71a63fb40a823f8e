/**
 * A loopback world for routing tests: one echo server and mock proxies, each
 * binding its upstream side to its own 127.0.0.x, so the echo server's
 * `ip` tells which proxy a request used.
 */
import https from 'node:https';
import net from 'node:net';
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

/**
 * Runs `n` requests one after another and returns the egress IPs and the
 * client ports the echo server saw: one port means one kept-alive tunnel.
 * One turn of the event loop between requests lets fetch hand its socket
 * back to undici's pool (fetch resolves the body before undici frees it).
 */
export async function sequentialPeers(n: number, request: () => Promise<{ ip: string; port: number }>): Promise<{ ips: Set<string>; ports: Set<number> }> {
  const ips = new Set<string>();
  const ports = new Set<number>();
  for (let i = 0; i < n; i++) {
    const r = await request();
    ips.add(r.ip);
    ports.add(r.port);
    await tick();
  }
  return { ips, ports };
}

/** `https.get` of an echo URL, trusting the test CA, resolving with the echo reply. */
export function httpsGetJson<T = { ip: string; port: number }>(url: string, ca: string): Promise<T> {
  return new Promise((resolve, reject) => https.get(url, { ca }, (res) => readJson<T>(res).then(resolve, reject)).on('error', reject));
}

/** A loopback port nothing listens on (bound once, then closed): a dead proxy. */
export async function deadPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}
