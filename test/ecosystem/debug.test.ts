/**
 * Debug logging: one stderr line per diagnostics-channel event, never a
 * password — for synthetic payloads of every channel and for real traffic
 * through an installed manager.
 */
import diagnostics from 'node:diagnostics_channel';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { debugChannelsFromEnv, enableDebugLogging, DEBUG_CHANNELS } from '../../src/debug.js';
import { install, uninstall, withProxy, rotate } from '../../src/global.js';
import { parseProxy } from '../../src/proxy/parse.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';

const PASSWORD = 'd3bug-Secr3t';

describe('debugChannelsFromEnv', () => {
  it.each([
    [{ DEBUG: 'session-proxy*' }, [...DEBUG_CHANNELS]],
    [{ DEBUG: 'session-proxy:*' }, [...DEBUG_CHANNELS]],
    [{ DEBUG: '*' }, [...DEBUG_CHANNELS]],
    [{ DEBUG: 'express,session-proxy:route session-proxy:leak' }, ['route', 'leak']],
    [{ DEBUG: 'session-proxy*,-session-proxy:dns' }, DEBUG_CHANNELS.filter((c) => c !== 'dns')],
    [{ NODE_DEBUG: 'http,SESSION-PROXY' }, [...DEBUG_CHANNELS]],
    [{ DEBUG: 'express' }, undefined],
    [{ NODE_DEBUG: 'http' }, undefined],
    [{}, undefined],
  ])('%j', (env, expected) => {
    expect(debugChannelsFromEnv(env)).toEqual(expected);
  });
});

describe('formatting', () => {
  const lines: string[] = [];
  let disable: () => void = () => {};
  afterEach(() => {
    disable();
    lines.length = 0;
  });

  it('writes one line per event with the account, redacted proxy, layer and target', () => {
    disable = enableDebugLogging((l) => lines.push(l));
    const proxy = parseProxy(`http://u:${PASSWORD}@127.0.0.1:3128`);
    const pub = (name: string, payload: object): void => diagnostics.channel(`session-proxy:${name}`).publish(payload);
    pub('route', { account: 'alice', target: 'api.exchange.test:443', proxy: proxy.url, layer: 'undici', decision: 'proxy' });
    pub('route', { account: undefined, target: { host: '::1', port: 80 }, proxy: undefined, layer: 'http', decision: 'direct' });
    pub('route', { account: 'bob', target: '10.0.0.9:443', layer: 'socket', decision: 'blocked', reason: 'traffic outside any withProxy scope is refused' });
    pub('rotate', { account: 'alice', from: proxy.info(), to: parseProxy('socks5h://10.0.0.2:1080').info(), reason: 'manual', closed: 2 });
    pub('leak', { account: 'bob', target: '10.0.0.9:443', layer: 'socket', action: 'blocked', reason: `connection to http://x:${PASSWORD}@10.0.0.9:8080 refused` });
    pub('egress', { account: 'alice', proxy: proxy.info(), ip: '203.0.113.7', endpoint: 'https://api.ipify.org', latencyMs: 12, status: 'verified' });
    pub('dns', { account: 'alice', hostname: 'example.test', reason: 'local lookup inside a scope' });
    pub('proxy-down', { proxy: proxy.info(), accounts: ['alice'], error: 'ECONNREFUSED', nextProbeAt: Date.now() + 5000 });
    pub('proxy-up', { proxy: proxy, accounts: [], latencyMs: 4 });
    expect(lines).toEqual([
      'session-proxy:route alice → http://u:***@127.0.0.1:3128 (undici) api.exchange.test:443',
      'session-proxy:route (unscoped) → direct (http) [::1]:80',
      'session-proxy:route bob → blocked (socket) 10.0.0.9:443: traffic outside any withProxy scope is refused',
      'session-proxy:rotate alice http://u:***@127.0.0.1:3128 → socks5h://10.0.0.2:1080 (manual, closed 2)',
      'session-proxy:leak bob blocked (socket) 10.0.0.9:443: connection to http://x:***@10.0.0.9:8080 refused',
      'session-proxy:egress alice via http://u:***@127.0.0.1:3128 egress 203.0.113.7 (https://api.ipify.org, 12 ms)',
      'session-proxy:dns alice lookup example.test: local lookup inside a scope',
      expect.stringMatching(/^session-proxy:proxy-down http:\/\/u:\*\*\*@127\.0\.0\.1:3128 accounts alice \(ECONNREFUSED, next probe in \d+ ms\)$/),
      'session-proxy:proxy-up http://u:***@127.0.0.1:3128 (4 ms)',
    ]);
    expect(lines.join('\n')).not.toContain(PASSWORD);
  });

  it('channels can be picked, and a throwing writer never breaks the publisher', () => {
    disable = enableDebugLogging((l) => lines.push(l), { channels: ['leak'] });
    diagnostics.channel('session-proxy:route').publish({ account: 'a' });
    diagnostics.channel('session-proxy:leak').publish({ account: 'a', target: 't:1', layer: 'http', action: 'direct', reason: 'r' });
    expect(lines).toEqual(['session-proxy:leak a direct (http) t:1: r']);
    disable();
    disable = enableDebugLogging(() => {
      throw new Error('broken');
    });
    expect(() => diagnostics.channel('session-proxy:leak').publish({})).not.toThrow();
  });

  it('enabling again replaces the previous subscriber; disabling unsubscribes', () => {
    const first: string[] = [];
    enableDebugLogging((l) => first.push(l));
    disable = enableDebugLogging((l) => lines.push(l));
    diagnostics.channel('session-proxy:dns').publish({ account: 'a', hostname: 'h', reason: 'r' });
    disable();
    diagnostics.channel('session-proxy:dns').publish({ account: 'a', hostname: 'h', reason: 'r' });
    expect(first).toEqual([]);
    expect(lines).toHaveLength(1);
  });
});

describe('real traffic', () => {
  let echo: EchoServer;
  let a1: MockProxy;
  let a2: MockProxy;
  beforeAll(async () => {
    echo = await startEchoServer();
    a1 = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'u', password: PASSWORD } });
    a2 = await startMockProxy({ egressIp: '127.0.0.3', auth: { username: 'u', password: PASSWORD } });
  });
  afterAll(async () => {
    await uninstall();
    await Promise.all([echo?.close(), a1?.close(), a2?.close()]);
  });

  it('logs routes and rotations of an installed manager without passwords', async () => {
    const lines: string[] = [];
    const disable = enableDebugLogging((l) => lines.push(l));
    try {
      install({ accounts: { alice: [a1.urlFor('http'), a2.urlFor('socks5h')] }, noProxy: [], failover: false });
      const ip = await withProxy('alice', async () => (await fetch(`${echo.httpUrl}/ip`)).text());
      expect(ip).toBe('127.0.0.2');
      await rotate('alice');
      const ip2 = await withProxy('alice', async () => (await fetch(`${echo.httpUrl}/ip`)).text());
      expect(ip2).toBe('127.0.0.3');
    } finally {
      disable();
      await uninstall();
    }
    const text = lines.join('\n');
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(encodeURIComponent(PASSWORD));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^session-proxy:rotate alice http://u:\\*\\*\\*@127\\.0\\.0\\.1:${a1.port} → socks5h://u:\\*\\*\\*@127\\.0\\.0\\.1:${a2.port} \\(manual`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^session-proxy:route alice → http://u:\\*\\*\\*@127\\.0\\.0\\.1:${a1.port} \\(\\w+\\) 127\\.0\\.0\\.1:${echo.httpPort}`)));
  });
});
