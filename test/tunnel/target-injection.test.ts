/**
 * CONNECT request splitting: a target host with CR/LF (or a NUL, an
 * oversized SOCKS5 name, a zone id), handed to net/tls/http2/http inside a
 * scope, is refused with a typed error before anything reaches the proxy —
 * proven by the proxy's own count of accepted connections and by the raw
 * bytes it logged. Valid but unusual targets (bracketed IPv6, `_` in a
 * hostname, a 255-byte SOCKS5 name) still go through.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import diagnostics from 'node:diagnostics_channel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager, enableDebugLogging, findSessionProxyError, parseProxy } from '../../src/index.js';
import { openTunnel } from '../../src/tunnel/open-tunnel.js';
import { startEchoServer, startMockProxy, testCa, type EchoServer, type MockProxy } from '../../src/testing/index.js';

const EVIL = 'example.test\r\n\r\nGET http://evil/ HTTP/1.1\r\nX: y';
const PASSWORD = 'alice-Pw-7x';
// Each label at most 63 bytes, as DNS requires: 63 * 3 + 59 + 5 + 3 dots = 256.
const NAME_256 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(59)}.test`;
const NAME_255 = NAME_256.slice(1);

let echo: EchoServer;
let echo6: EchoServer;
const proxies = {} as Record<'alice' | 'bob' | 'carol', MockProxy>;
let manager: SessionProxyManager;

beforeAll(async () => {
  echo = await startEchoServer();
  echo6 = await startEchoServer({ host: '::1' });
  const hosts = { 'my_host.echo.test': '127.0.0.1', 'echo.test': '127.0.0.1', [NAME_255]: '127.0.0.1' };
  proxies.alice = await startMockProxy({ auth: { username: 'alice', password: PASSWORD }, hosts });
  proxies.bob = await startMockProxy({ hosts });
  proxies.carol = await startMockProxy({ hosts });
  manager = new SessionProxyManager({
    accounts: { alice: proxies.alice.url, bob: proxies.bob.urlFor('socks5h'), carol: proxies.carol.urlFor('socks4a') },
    noProxy: [],
  }).install();
});
afterAll(async () => {
  await manager?.uninstall();
  await Promise.all([echo?.close(), echo6?.close(), ...Object.values(proxies).map((p) => p?.close())]);
});

type Emitter = { once(event: string, fn: (...a: unknown[]) => void): unknown; destroy(): void };

/** The first of 'connect'/'secureConnect' and 'error' (a refused target must never connect). */
function outcome(emitter: Emitter): Promise<{ connected: boolean; error?: unknown }> {
  return new Promise((resolve) => {
    emitter.once('connect', () => resolve({ connected: true }));
    emitter.once('secureConnect', () => resolve({ connected: true }));
    emitter.once('error', (error) => resolve({ connected: false, error }));
  });
}

/** Runs `open` inside `account`'s scope and asserts: typed error, and the proxy saw no connection and no bytes of it. */
async function expectRefused(account: 'alice' | 'bob' | 'carol', open: () => Emitter, problem: RegExp): Promise<Error> {
  const p = proxies[account];
  const before = p.acceptedConnections();
  const logBefore = p.log.length;
  const emitter = manager.withProxy(account, open);
  const result = await outcome(emitter);
  emitter.destroy();
  expect(result.connected).toBe(false);
  const typed = findSessionProxyError(result.error);
  expect(typed?.code, String(result.error)).toBe('SP_ERR_INVALID_TARGET');
  expect(typed?.name).toBe('InvalidTargetError');
  expect(typed?.account).toBe(account);
  expect(typed!.message).toMatch(problem);
  // The message and the target are escaped: a log line cannot be split by them.
  expect(typed!.message).not.toMatch(/[\r\n\0]/);
  expect(String(typed!.target)).not.toMatch(/[\r\n\0]/);
  expect(p.acceptedConnections()).toBe(before);
  expect(p.log.length).toBe(logBefore);
  return typed!;
}

function noSmuggledBytes(): void {
  for (const p of Object.values(proxies)) {
    for (const entry of p.log) {
      expect(entry.rawHead).not.toContain('\r\nGET http://evil');
      expect(entry.rawHead).not.toContain('evil');
    }
  }
}

function getIp(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('end', () => resolve((JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { ip: string }).ip));
    socket.on('error', reject);
    socket.write('GET /ip.json HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n');
  });
}

describe('a CR/LF in the target host never reaches the proxy', () => {
  it('net.connect({ host }) in a scope: InvalidTargetError on the socket, zero bytes at the proxy', async () => {
    const lines: string[] = [];
    const events: unknown[] = [];
    const onRoute = (message: unknown): void => void events.push(message);
    diagnostics.subscribe('session-proxy:route', onRoute);
    const stopDebug = enableDebugLogging((line) => lines.push(line), { channels: ['route'] });
    try {
      const err = await expectRefused('alice', () => net.connect({ host: EVIL, port: echo.httpPort }), /target host contains a control character \(\\r at 12\)/);
      expect(err.message).toContain(JSON.stringify(EVIL));
      expect(err.message).not.toContain(PASSWORD);
    } finally {
      stopDebug();
      diagnostics.unsubscribe('session-proxy:route', onRoute);
    }
    expect(events.length).toBeGreaterThan(0);
    expect(JSON.stringify(events)).toContain('control character');
    for (const event of events) expect(Object.values(event as object).filter((v) => typeof v === 'string' && /[\r\n]/.test(v))).toEqual([]);
    for (const line of lines) expect(line).not.toMatch(/[\r\n]/);
    noSmuggledBytes();
  });

  it('net.connect(port, host) and createConnection forms too', async () => {
    await expectRefused('alice', () => net.connect(echo.httpPort, EVIL), /control character/);
    await expectRefused('alice', () => net.createConnection({ host: `${EVIL}`, port: String(echo.httpPort) as unknown as number }), /control character/);
    noSmuggledBytes();
  });

  it('tls.connect({ host })', async () => {
    await expectRefused('alice', () => tls.connect({ host: EVIL, port: echo.httpsPort, ca: testCa }), /control character/);
    noSmuggledBytes();
  });

  it('http2.connect(authority, { host }) and http2.connect({ hostname })', async () => {
    await expectRefused('alice', () => http2.connect('https://example.test', { host: EVIL, ca: testCa }), /control character/);
    const authority = { protocol: 'https:', hostname: EVIL, port: String(echo.httpsPort) } as unknown as URL;
    await expectRefused('alice', () => http2.connect(authority, { ca: testCa }), /control character/);
    noSmuggledBytes();
  });

  it('http.request({ host, setHost: false }): the request fails, nothing is tunnelled', async () => {
    await expectRefused('alice', () => http.request({ host: EVIL, port: echo.httpPort, setHost: false }).end() as unknown as Emitter, /control character/);
    noSmuggledBytes();
  });

  it('fetch cannot even express such a host: refused by URL parsing, no proxy connection', async () => {
    const before = proxies.alice.acceptedConnections();
    await expect(manager.withProxy('alice', () => fetch('http://example.test%0d%0aGET/'))).rejects.toThrow(TypeError);
    expect(proxies.alice.acceptedConnections()).toBe(before);
  });

  it('openTunnel itself (every layer, egress probes and health checks included) refuses before dialing', async () => {
    const proxy = parseProxy(proxies.alice.url);
    const before = proxies.alice.acceptedConnections();
    const cases: Array<[{ host: string; port: number }, RegExp]> = [
      [{ host: EVIL, port: 443 }, /control character \(\\r at 12\)/],
      [{ host: 'a b.test', port: 443 }, /space/],
      [{ host: 'user@host.test', port: 443 }, /"@"/],
      [{ host: 'host.test/x', port: 443 }, /"\/"/],
      [{ host: 'host.test', port: 0 }, /port/],
      [{ host: 'host.test', port: 65536 }, /port/],
      [{ host: 'host.test', port: 1.5 }, /port/],
      [{ host: '', port: 443 }, /empty/],
    ];
    for (const [target, problem] of cases) {
      const err = await openTunnel(proxy, target, { account: 'alice' }).catch((e: unknown) => e);
      expect(findSessionProxyError(err)?.code, `${JSON.stringify(target)}: ${String(err)}`).toBe('SP_ERR_INVALID_TARGET');
      expect((err as Error).message).toMatch(problem);
      expect((err as Error).message).not.toMatch(/[\r\n]/);
    }
    expect(proxies.alice.acceptedConnections()).toBe(before);
  });
});

describe('SOCKS limits are checked before the handshake', () => {
  it('SOCKS5: a 256-byte domain is refused before the proxy is dialed; 255 bytes go through', async () => {
    await expectRefused('bob', () => net.connect({ host: NAME_256, port: echo.httpPort }), /longer than 255 bytes/);
    const ip = await manager.withProxy('bob', () => getIp(net.connect({ host: NAME_255, port: echo.httpPort })));
    expect(ip).toBe('127.0.0.1');
    expect(proxies.bob.log.at(-1)).toMatchObject({ protocol: 'socks5', targetHost: NAME_255, status: expect.stringMatching(/ok|open/) });
  });

  it('SOCKS4a: a NUL in the host is refused (it would end the name early and pick another target)', async () => {
    await expectRefused('carol', () => net.connect({ host: 'echo.test\0evil.test', port: echo.httpPort }), /control character \(\\u0000 at 9\)/);
    expect(proxies.carol.log.filter((e) => e.rawHead.includes('evil'))).toEqual([]);
  });
});

describe('valid targets still go through', () => {
  it('an IPv6 literal is sent bracketed in the CONNECT authority', async () => {
    for (const host of ['::1', '[::1]']) {
      const ip = await manager.withProxy('alice', () => getIp(net.connect({ host, port: echo6.httpPort })));
      expect(ip).toBe('::1');
      expect(proxies.alice.log.at(-1)!.rawHead).toMatch(new RegExp(`^CONNECT \\[::1\\]:${echo6.httpPort} HTTP/1\\.1\\r\\nHost: \\[::1\\]:${echo6.httpPort}\\r\\n`));
    }
  });

  it('an IPv6 zone id is refused: it names an interface of this host, meaningless to the proxy', async () => {
    await expectRefused('alice', () => net.connect({ host: 'fe80::1%lo', port: 80 }), /zone/);
  });

  it('hostnames with "_" work, over CONNECT and SOCKS', async () => {
    for (const account of ['alice', 'bob', 'carol'] as const) {
      const ip = await manager.withProxy(account, () => getIp(net.connect({ host: 'my_host.echo.test', port: echo.httpPort })));
      expect(ip).toBe('127.0.0.1');
      expect(proxies[account].log.at(-1)!.targetHost).toBe('my_host.echo.test');
    }
  });
});
