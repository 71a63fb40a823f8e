/**
 * Not installed = not routed = refused. A manager that was never installed
 * (or was uninstalled) routes nothing, so its scoping and verification calls
 * throw NotInstalledError instead of running the app unrouted while a
 * start-up check reports the proxy's IP. And verifyEgress's probe takes the
 * same way out as the app's own requests in that scope.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager, NotInstalledError } from '../../src/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';

let echo: EchoServer;
let proxy: MockProxy;
beforeAll(async () => {
  echo = await startEchoServer();
  proxy = await startMockProxy({ egressIp: '127.0.0.2' });
});
afterAll(async () => {
  await echo.close();
  await proxy.close();
});

describe('a manager that is not installed', () => {
  it('withProxy, rotate, verifyEgress and verifyAll throw NotInstalledError; nothing reaches the echo server', async () => {
    const m = new SessionProxyManager({ accounts: { alice: proxy.url }, noProxy: [], egressEndpoints: [`${echo.httpUrl}/ip`] });
    const peers = echo.peers.length;
    let ran = false;
    expect(() => m.withProxy('alice', () => (ran = true))).toThrow(NotInstalledError);
    expect(ran).toBe(false);
    await expect(m.rotate('alice')).rejects.toThrow(NotInstalledError);
    await expect(m.verifyEgress('alice')).rejects.toThrow(NotInstalledError);
    await expect(m.verifyAll()).rejects.toThrow(/call install\(\) first/);
    expect(echo.peers.length).toBe(peers);
    expect(proxy.log).toEqual([]);
  });

  it('a function from bind() throws NotInstalledError when called while not installed, and routes once installed', async () => {
    const m = new SessionProxyManager({ accounts: { alice: proxy.url }, noProxy: [] });
    const ipOf = m.bind('alice', async () => ((await (await fetch(`${echo.httpUrl}/bound`)).json()) as { ip: string }).ip);
    expect(() => ipOf()).toThrow(NotInstalledError);
    m.install();
    try {
      expect(await ipOf()).toBe('127.0.0.2');
    } finally {
      await m.uninstall();
    }
    expect(() => ipOf()).toThrow(NotInstalledError);
  });

  it('a manager that is not the installed one says so', async () => {
    const installed = new SessionProxyManager({ accounts: { alice: proxy.url } }).install();
    try {
      const other = new SessionProxyManager({ accounts: { alice: proxy.url } });
      expect(() => other.withProxy('alice', () => undefined)).toThrow(/not the installed one.*getManager\(\)/);
    } finally {
      await installed.uninstall();
    }
  });

  it('uninstall() puts back the http Agent methods the partition replaced', async () => {
    const proto = http.Agent.prototype as unknown as Record<'addRequest' | 'getName', unknown>;
    const before = { addRequest: proto.addRequest, getName: proto.getName };
    const m = new SessionProxyManager({ accounts: { alice: proxy.url } }).install();
    expect(proto.getName).not.toBe(before.getName);
    await m.uninstall();
    expect({ addRequest: proto.addRequest, getName: proto.getName }).toEqual(before);
  });
});

describe('verifyEgress probes the way the app\'s traffic leaves', () => {
  it('with a noProxy entry covering the endpoint, the app\'s fetch and the probe both go direct: the probe reports the direct IP, not the proxy\'s', async () => {
    const endpoint = `${echo.httpUrl}/ip`;
    const m = new SessionProxyManager({ accounts: { alice: proxy.url }, egressEndpoints: [endpoint], noProxy: ['127.0.0.1'] }).install();
    try {
      const app = await m.withProxy('alice', async () => (await fetch(endpoint)).text());
      const probe = await m.verifyEgress('alice');
      expect(app).toBe('127.0.0.1');
      // Before, the probe opened its own tunnel and reported 127.0.0.2 while the app left from 127.0.0.1.
      expect(probe.ip).toBe(app);
    } finally {
      await m.uninstall();
    }
  });

  it('through the account\'s proxy, the probe and the app see the same egress, and the probe passes a quarantine it is meant to lift', async () => {
    const endpoint = `${echo.httpUrl}/ip`;
    const m = new SessionProxyManager({ accounts: { alice: proxy.url }, egressEndpoints: [endpoint], noProxy: [], onMismatch: 'quarantine' }).install();
    try {
      await expect(m.verifyEgress('alice', { expectedIp: '127.0.0.99' })).rejects.toThrow(/does not match/);
      await expect(m.withProxy('alice', () => fetch(endpoint))).rejects.toThrow();
      const probe = await m.verifyEgress('alice');
      const app = await m.withProxy('alice', async () => (await fetch(endpoint)).text());
      expect([probe.ip, app]).toEqual(['127.0.0.2', '127.0.0.2']);
    } finally {
      await m.uninstall();
    }
  });
});
