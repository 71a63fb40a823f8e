/**
 * A loopback world for gateway tests: an echo server and a mock gateway whose
 * sessions leave from 127.0.0.20…, and the four roads an exchange bot uses —
 * global fetch, http.request, ws, and ccxt's own undici Agent (socket layer) —
 * each reduced to "one request, the IP the echo server saw".
 */
import http from 'node:http';
import ccxt from 'ccxt';
import WebSocket from 'ws';
import { SessionProxyManager, type RotateEvent, type SessionProxyOptions } from '../../src/index.js';
import { startEchoServer, startMockGateway, type EchoServer, type MockGateway, type MockGatewayOptions } from '../../src/testing/index.js';
import { readJson } from '../support/scenario.js';

export const EGRESS = ['127.0.0.20', '127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24'];

export type Road = 'fetch' | 'http' | 'ws' | 'ccxt';
export const ROADS: readonly Road[] = ['fetch', 'http', 'ws', 'ccxt'];

export class Cleanup {
  private items: Array<() => unknown> = [];
  push(...fns: Array<() => unknown>): void {
    this.items.push(...fns);
  }
  async run(): Promise<void> {
    for (const c of this.items.reverse()) await c();
    this.items = [];
  }
}

export async function gatewayWorld(cleanup: Cleanup, options: Partial<MockGatewayOptions> & Pick<MockGatewayOptions, 'vendor'>): Promise<{ echo: EchoServer; gw: MockGateway }> {
  const echo = await startEchoServer();
  const gw = await startMockGateway({ egressIps: EGRESS, ...options });
  cleanup.push(() => echo.close(), () => gw.close());
  return { echo, gw };
}

export function installed(cleanup: Cleanup, options: SessionProxyOptions): { m: SessionProxyManager; rotations: RotateEvent[] } {
  const m = new SessionProxyManager({ noProxy: [], ...options }).install();
  cleanup.push(() => m.uninstall());
  const rotations: RotateEvent[] = [];
  m.on('rotate', (e) => rotations.push(e));
  return { m, rotations };
}

/** One client per road and account, kept for the whole test (ccxt's Agent keeps its connections alive). */
export function roads(echo: EchoServer): (road: Road, tag: string) => Promise<string> {
  const exchanges = new Map<string, InstanceType<typeof ccxt.binance>>();
  return async (road, tag) => {
    switch (road) {
      case 'fetch':
        return ((await (await fetch(`${echo.httpUrl}/${tag}`)).json()) as { ip: string }).ip;
      case 'http':
        return new Promise((resolve, reject) => http.get(`${echo.httpUrl}/${tag}`, (res) => readJson<{ ip: string }>(res).then((r) => resolve(r.ip), reject)).on('error', reject));
      case 'ws':
        return new Promise((resolve, reject) => {
          const ws = new WebSocket(`${echo.wsUrl}/${tag}`);
          ws.once('open', () => ws.send(tag));
          ws.once('message', (data) => {
            resolve((JSON.parse(String(data)) as { ip: string }).ip);
            ws.close();
          });
          ws.once('error', reject);
        });
      case 'ccxt': {
        const key = tag.split('-')[0]!;
        let exchange = exchanges.get(key);
        if (!exchange) exchanges.set(key, (exchange = new ccxt.binance()));
        const r: unknown = await exchange.fetch(`${echo.httpUrl}/${tag}`, 'GET');
        return (typeof r === 'string' ? (JSON.parse(r) as { ip: string }) : (r as { ip: string })).ip;
      }
    }
  };
}

/** Waits (bounded) for a condition an event outside the test's reach makes true. */
export async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The next event `name` of `m`, bounded. */
export function nextEvent<T>(m: SessionProxyManager, name: string, timeoutMs = 10_000, filter: (e: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      (m as unknown as NodeJS.EventEmitter).off(name, on);
      reject(new Error(`timed out waiting for the ${name} event`));
    }, timeoutMs);
    const on = (e: T): void => {
      if (!filter(e)) return;
      clearTimeout(timer);
      (m as unknown as NodeJS.EventEmitter).off(name, on);
      resolve(e);
    };
    (m as unknown as NodeJS.EventEmitter).on(name, on);
  });
}
