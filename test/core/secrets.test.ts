/** A proxy password never appears in logs, errors, events, String(), JSON.stringify or util.inspect output. */
import { inspect } from 'node:util';
import diagnostics from 'node:diagnostics_channel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager, parseProxy } from '../../src/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';

const SECRET = 'Zq9-s3cr3t:@/#pw';
const ENCODED = encodeURIComponent(SECRET);
let echo: EchoServer;
let proxies: MockProxy[];
let manager: SessionProxyManager;
const published: unknown[] = [];
const channelNames = ['route', 'rotate', 'leak', 'egress', 'dns', 'proxy-down', 'proxy-up'].map((n) => `session-proxy:${n}`);
const collect = (m: unknown): void => void published.push(m);

beforeAll(async () => {
  echo = await startEchoServer();
  proxies = await Promise.all([startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'alice', password: SECRET } }), startMockProxy({ egressIp: '127.0.0.3' })]);
  for (const c of channelNames) diagnostics.subscribe(c, collect);
  manager = new SessionProxyManager({
    proxy: `http://dflt:${ENCODED}@127.0.0.1:${proxies[1].port}`,
    accounts: { alice: [proxies[0].url, `http://alice:${ENCODED}@127.0.0.1:1`] },
    noProxy: [],
    requireScope: false,
    egressEndpoints: [`${echo.httpUrl}/ip`],
  }).install();
});
afterAll(async () => {
  for (const c of channelNames) diagnostics.unsubscribe(c, collect);
  await manager.uninstall();
  await Promise.all([echo.close(), ...proxies.map((p) => p.close())]);
});

function assertClean(label: string, text: string): void {
  expect(text, label).not.toContain(SECRET);
  expect(text, label).not.toContain(ENCODED);
  expect(text, label).not.toContain(Buffer.from(`alice:${SECRET}`).toString('base64'));
}

describe('secrets', () => {
  it('never print: manager, endpoints, events, channel payloads, stats, errors', async () => {
    const events: unknown[] = [];
    for (const e of ['rotate', 'egress', 'leak', 'proxy-down', 'proxy-up'] as const) manager.on(e, (p: unknown) => events.push(p));
    await manager.withProxy('alice', async () => (await fetch(`${echo.httpUrl}/x`)).text());
    await manager.verifyEgress('alice');
    await manager.verifyEgress('alice', { expectedIp: '10.9.9.9' }).catch((e: Error) => events.push(e));
    await manager.rotate('alice');
    const failure = await manager.withProxy('alice', () => fetch(`${echo.httpUrl}/dead`)).catch((e: Error) => e);
    const endpoint = parseProxy(`socks5://bob:${ENCODED}@10.0.0.1:1080`);
    const badUrl = (() => {
      try {
        parseProxy(`ftp://bob:${ENCODED}@10.0.0.1:21`);
      } catch (e) {
        return e as Error;
      }
    })();
    const surfaces: Record<string, string> = {
      'inspect(manager)': inspect(manager, { depth: 10, showHidden: true }),
      'JSON(manager)': JSON.stringify(manager),
      'String(endpoint)': String(endpoint),
      'JSON(endpoint)': JSON.stringify(endpoint),
      'inspect(endpoint)': inspect(endpoint, { depth: 10, showHidden: true }),
      'current()': JSON.stringify(manager.current('alice')),
      'stats()': JSON.stringify(manager.stats()),
      events: inspect(events, { depth: 10 }),
      'channel payloads': inspect(published, { depth: 10 }),
      'fetch failure': inspect(failure, { depth: 10 }) + String((failure as Error).stack) + String(((failure as Error).cause as Error)?.stack),
      'ProxyUrlError': String(badUrl?.message) + String(badUrl?.stack),
    };
    expect(published.length).toBeGreaterThan(0);
    expect(events.length).toBeGreaterThan(2);
    for (const [label, text] of Object.entries(surfaces)) assertClean(label, text);
  });
});
