/** install() / uninstall(): every global patched is restored, and nothing is left half-installed. */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import childProcess from 'node:child_process';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager, install, getManager, withProxy, AlreadyInstalledError, NotInstalledError, ConfigError } from '../../src/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';

const SYMBOLS = [Symbol.for('undici.globalDispatcher.1'), Symbol.for('undici.globalDispatcher.2')];
const g = globalThis as unknown as Record<symbol, unknown>;

let echo: EchoServer;
let proxy: MockProxy;
beforeAll(async () => {
  echo = await startEchoServer();
  proxy = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'u', password: 'lifecycle-pw' } });
});
afterAll(async () => {
  await echo.close();
  await proxy.close();
});

describe('install / uninstall', () => {
  it('restores env (absent ones too), dispatcher symbols (working), and every patched function', async () => {
    process.env.HTTPS_PROXY = 'http://previous.example:1';
    delete process.env.HTTP_PROXY;
    delete process.env.http_proxy;
    const before = {
      httpRequest: http.request, httpGet: http.get, httpsRequest: https.request, httpsGet: https.get,
      connect: net.Socket.prototype.connect, spawn: childProcess.spawn, exec: childProcess.exec, h2: http2.connect,
      d1: g[SYMBOLS[0]], d2: g[SYMBOLS[1]], httpAgent: http.globalAgent, httpsAgent: https.globalAgent,
    };
    const m = new SessionProxyManager({ proxy: proxy.url, accounts: { alice: proxy.url }, exclusive: false, noProxy: [] } as never).install();
    expect(process.env.HTTP_PROXY).toContain(`127.0.0.1:${proxy.port}`);
    expect(process.env.https_proxy).toBe(process.env.HTTP_PROXY);
    expect(http.request).not.toBe(before.httpRequest);
    expect(net.Socket.prototype.connect).not.toBe(before.connect);
    expect(g[SYMBOLS[0]]).not.toBe(before.d1);
    const routed = (await (await fetch(`${echo.httpUrl}/in`)).json()) as { ip: string };
    expect(routed.ip).toBe('127.0.0.2');

    await m.uninstall();
    expect(process.env.HTTPS_PROXY).toBe('http://previous.example:1');
    expect('HTTP_PROXY' in process.env).toBe(false);
    expect('http_proxy' in process.env).toBe(false);
    expect(http.request).toBe(before.httpRequest);
    expect(http.get).toBe(before.httpGet);
    expect(https.request).toBe(before.httpsRequest);
    expect(https.get).toBe(before.httpsGet);
    expect(net.Socket.prototype.connect).toBe(before.connect);
    expect(childProcess.spawn).toBe(before.spawn);
    expect(childProcess.exec).toBe(before.exec);
    expect(http2.connect).toBe(before.h2);
    expect(http.globalAgent).toBe(before.httpAgent);
    expect(https.globalAgent).toBe(before.httpsAgent);
    expect(g[SYMBOLS[0]]).toBe(before.d1);
    expect(g[SYMBOLS[1]]).toBe(before.d2);
    delete process.env.HTTPS_PROXY;
    // Afterwards requests go direct, and fetch still works (the dispatcher slot is not empty).
    const direct = (await (await fetch(`${echo.httpUrl}/after`)).json()) as { ip: string };
    expect(direct.ip).toBe('127.0.0.1');
  });

  it('install() is idempotent; a second manager gets AlreadyInstalledError; helpers reach the installed one', async () => {
    expect(() => getManager()).toThrow(NotInstalledError);
    const m = install({ accounts: { alice: proxy.url }, noProxy: [] });
    expect(m.install()).toBe(m);
    expect(getManager()).toBe(m);
    const other = new SessionProxyManager({ accounts: { bob: proxy.url } });
    expect(() => other.install()).toThrow(AlreadyInstalledError);
    expect(() => other.install()).toThrow(/getManager\(\)/);
    const r = (await withProxy('alice', async () => (await fetch(`${echo.httpUrl}/helper`)).json())) as { ip: string };
    expect(r.ip).toBe('127.0.0.2');
    await m.uninstall();
    expect(() => getManager()).toThrow(NotInstalledError);
  });

  it('rejects the reserved account name and empty pools with ConfigError', () => {
    expect(() => new SessionProxyManager({ accounts: { default: proxy.url } })).toThrow(ConfigError);
    expect(() => new SessionProxyManager({ accounts: { alice: [] } })).toThrow(ConfigError);
    expect(() => new SessionProxyManager({ accounts: { alice: [] } })).toThrow(/^accounts\.alice: expected at least one proxy, got an empty array/);
  });

  it('uninstall lets an in-flight request finish through the proxy; requests after it go direct', async () => {
    const m = new SessionProxyManager({ accounts: { alice: proxy.url }, noProxy: [] }).install();
    try {
      const logBefore = proxy.log.length;
      const requestsBefore = echo.requests.length;
      // Five chunks 40 ms apart: once the headers are in, the body is still streaming for ~160 ms.
      const res = await m.withProxy('alice', () => fetch(`${echo.httpUrl}/stream?chunks=5&size=10&delay=40`));
      let finished = false;
      const body = res.text().finally(() => (finished = true));
      expect(finished).toBe(false);
      await m.uninstall();
      expect(await body).toBe('abcde'.split('').map((c) => c.repeat(10)).join(''));
      // It was the proxy's request, not a direct one: the echo server saw alice's egress, the proxy logged it.
      const streamed = echo.requests.slice(requestsBefore).filter((r) => r.path.startsWith('/stream'));
      expect(streamed.map((r) => r.ip)).toEqual(['127.0.0.2']);
      const tunnels = proxy.log.slice(logBefore);
      expect(tunnels.map((e) => e.targetPort)).toEqual([echo.httpPort]);
      expect(tunnels[0]!.status).not.toBe('error');
      // Uninstalled: the next request goes direct, and the proxy sees nothing more.
      const after = (await (await fetch(`${echo.httpUrl}/after-uninstall`)).json()) as { ip: string };
      expect(after.ip).toBe('127.0.0.1');
      expect(proxy.log.length).toBe(logBefore + 1);
    } finally {
      await m.uninstall();
    }
  });
});
