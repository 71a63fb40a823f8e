/**
 * Proves the real-proxy harness (test/support/real-proxies.ts): each Debian
 * proxy daemon really routes through its own egress loopback address, auth is
 * enforced, and CONNECT works to non-443 ports. The client is Debian's curl,
 * so these tests exercise only the daemons and the harness, not the library.
 *
 * Egress addresses: tinyproxy 127.0.0.2, microsocks 127.0.0.3,
 * squid 127.0.0.4, dante 127.0.0.5.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoServer, type EchoServer } from '../../src/testing/index.js';
import {
  skipWithout,
  startDante,
  startMicrosocks,
  startSquid,
  startTinyproxy,
  type RealProxy,
} from '../support/real-proxies.js';

// ---------------------------------------------------------------------------
// echo server: the project's (src/testing/echo-server.ts); GET /ip answers
// with the client IP it saw, `requests` records every request
// ---------------------------------------------------------------------------

interface Echo {
  /** http://127.0.0.1:PORT/ip */
  httpUrl: string;
  /** https://127.0.0.1:PORT/ip (non-443 port, certificate from testCa) */
  httpsUrl: string;
  server: EchoServer;
  /** testCa written to a file, for curl --cacert. */
  caFile: string;
  close(): Promise<void>;
}

async function startEcho(): Promise<Echo> {
  const server = await startEchoServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-proxy-echo-'));
  const caFile = path.join(dir, 'ca.pem');
  fs.writeFileSync(caFile, server.ca);
  return {
    httpUrl: `${server.httpUrl}/ip`,
    httpsUrl: `${server.httpsUrl}/ip`,
    server,
    caFile,
    async close() {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------

interface CurlResult {
  exitCode: number | null;
  body: string;
  stderr: string;
  /** Final HTTP status (%{http_code}); for a refused plain-proxy request, the proxy's. */
  httpCode: number;
  /** Status of the CONNECT response (%{http_connect}), 0 when none. */
  connectCode: number;
}

const MARK = '\n@@curl-write-out@@';

function curl(args: string[], timeoutMs = 15_000): Promise<CurlResult> {
  // No proxy from the environment: only the -x we pass.
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|all|no)_proxy$/i.test(k)) delete env[k];
  return new Promise((resolve, reject) => {
    const child = spawn(
      'curl',
      [
        '--silent',
        '--show-error',
        '--max-time', '10',
        '--connect-timeout', '5',
        '--noproxy', '',
        '--write-out', `${MARK}%{http_code} %{http_connect}`,
        ...args,
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`curl ${args.join(' ')} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const i = out.lastIndexOf(MARK);
      const body = i >= 0 ? out.slice(0, i) : out;
      const [httpCode, connectCode] = (i >= 0 ? out.slice(i + MARK.length) : '0 0').trim().split(/\s+/).map(Number);
      resolve({ exitCode: code, body, stderr: err, httpCode: httpCode ?? 0, connectCode: connectCode ?? 0 });
    });
  });
}

/** Adds the proxy's log to a failing assertion's message. */
function withLog(proxy: RealProxy, r: CurlResult): string {
  return `curl exit ${r.exitCode}, http ${r.httpCode}, connect ${r.connectCode}, stderr: ${r.stderr}\n--- ${proxy.name} log ---\n${proxy.log()}`;
}

async function expectRoutedVia(proxy: RealProxy, echo: Echo, args: string[], url: string): Promise<void> {
  const before = echo.server.requests.length;
  const r = await curl([...args, url]);
  expect(r.exitCode, withLog(proxy, r)).toBe(0);
  expect(r.httpCode, withLog(proxy, r)).toBe(200);
  expect(r.body).toBe(proxy.egressIp);
  // Exactly one request reached the server, from the egress address. (Not
  // `peers`: squid may reuse a pooled upstream connection.)
  expect(echo.server.requests.slice(before).map((q) => q.ip)).toEqual([proxy.egressIp]);
}

const AUTH = { username: 'alice', password: 's3cret-pass' };
const LIFECYCLE = { timeout: 40_000 };

let echo: Echo;
beforeAll(async () => {
  echo = await startEcho();
});
afterAll(async () => {
  await echo?.close();
});

// ---------------------------------------------------------------------------
// tinyproxy: HTTP proxy, Basic auth, egress 127.0.0.2
// ---------------------------------------------------------------------------

describe.skipIf(skipWithout('tinyproxy', 'curl'))('tinyproxy (egress 127.0.0.2, Basic auth)', () => {
  let proxy: RealProxy;
  beforeAll(async () => {
    proxy = await startTinyproxy({ egressIp: '127.0.0.2', auth: AUTH });
    console.info(`tinyproxy started in ${proxy.startupMs} ms on ${proxy.url}`);
  }, LIFECYCLE.timeout);
  afterAll(() => proxy?.close(), LIFECYCLE.timeout);

  it('exposes an http:// URL with the credentials', () => {
    expect(proxy.url).toBe(`http://alice:s3cret-pass@127.0.0.1:${proxy.port}`);
  });

  it('forwards a plain HTTP request from its egress address', async () => {
    await expectRoutedVia(proxy, echo, ['-x', proxy.url], echo.httpUrl);
  });

  it('tunnels with CONNECT to a non-443 port (HTTP inside the tunnel)', async () => {
    await expectRoutedVia(proxy, echo, ['--proxytunnel', '-x', proxy.url], echo.httpUrl);
  });

  it('tunnels HTTPS with CONNECT to a non-443 port', async () => {
    await expectRoutedVia(proxy, echo, ['--cacert', echo.caFile, '-x', proxy.url], echo.httpsUrl);
  });

  it('answers a wrong password with 401 (Debian 12 tinyproxy 1.11.1) or 407', async () => {
    const bad = proxy.url.replace(':s3cret-pass@', ':wrong@');
    const r = await curl(['-x', bad, echo.httpUrl]);
    // tinyproxy 1.11.1 answers bad credentials with "401 Unauthorized" (and a
    // missing Proxy-Authorization with 407); a correct proxy says 407.
    expect([401, 407], withLog(proxy, r)).toContain(r.httpCode);
    const t = await curl(['--proxytunnel', '-x', bad, echo.httpUrl]);
    expect(t.exitCode).toBe(56); // CONNECT tunnel failed
    expect([401, 407]).toContain(t.connectCode);
    console.info(`tinyproxy wrong password → ${r.httpCode} (plain), ${t.connectCode} (CONNECT)`);
  });

  it('answers missing credentials with 407 and Proxy-Authenticate', async () => {
    const r = await curl(['--include', '-x', `http://127.0.0.1:${proxy.port}`, echo.httpUrl]);
    expect(r.httpCode, withLog(proxy, r)).toBe(407);
    expect(r.body).toMatch(/^Proxy-Authenticate: Basic/im);
  });

  it('logs to its own log file', () => {
    expect(proxy.log()).toMatch(/Bound to 127\.0\.0\.2/);
  });
});

// ---------------------------------------------------------------------------
// microsocks: SOCKS5, user/password, egress 127.0.0.3
// ---------------------------------------------------------------------------

describe.skipIf(skipWithout('microsocks', 'curl'))('microsocks (egress 127.0.0.3, user/password)', () => {
  let proxy: RealProxy;
  beforeAll(async () => {
    proxy = await startMicrosocks({ egressIp: '127.0.0.3', auth: AUTH });
    console.info(`microsocks started in ${proxy.startupMs} ms on ${proxy.url}`);
  }, LIFECYCLE.timeout);
  afterAll(() => proxy?.close(), LIFECYCLE.timeout);

  it('exposes a socks5h:// URL with the credentials', () => {
    expect(proxy.url).toBe(`socks5h://alice:s3cret-pass@127.0.0.1:${proxy.port}`);
  });

  it('connects from its egress address (socks5h URL)', async () => {
    await expectRoutedVia(proxy, echo, ['-x', proxy.url], echo.httpUrl);
  });

  it('resolves hostnames proxy-side (--socks5-hostname, localhost)', async () => {
    const url = echo.httpUrl.replace('127.0.0.1', 'localhost');
    await expectRoutedVia(
      proxy,
      echo,
      ['--socks5-hostname', `${proxy.host}:${proxy.port}`, '--proxy-user', `${AUTH.username}:${AUTH.password}`],
      url,
    );
  });

  it('carries HTTPS', async () => {
    await expectRoutedVia(proxy, echo, ['--cacert', echo.caFile, '-x', proxy.url], echo.httpsUrl);
  });

  it('rejects a wrong password (SOCKS5 auth failure)', async () => {
    const r = await curl(['-x', proxy.url.replace(':s3cret-pass@', ':wrong@'), echo.httpUrl]);
    expect(r.exitCode).toBe(97); // CURLE_PROXY
    expect(r.stderr).toMatch(/User was rejected by the SOCKS5 server/);
  });

  it('rejects a client offering no credentials', async () => {
    const r = await curl(['-x', `socks5h://127.0.0.1:${proxy.port}`, echo.httpUrl]);
    expect(r.exitCode).toBe(97);
    expect(r.stderr).toMatch(/No authentication method was acceptable/);
  });
});

// ---------------------------------------------------------------------------
// squid: HTTP proxy, Basic auth, egress 127.0.0.4
// ---------------------------------------------------------------------------

describe.skipIf(skipWithout('squid', 'curl'))('squid (egress 127.0.0.4, Basic auth)', () => {
  let proxy: RealProxy;
  beforeAll(async () => {
    proxy = await startSquid({ egressIp: '127.0.0.4', auth: AUTH });
    console.info(`squid started in ${proxy.startupMs} ms on ${proxy.url}`);
  }, LIFECYCLE.timeout);
  afterAll(() => proxy?.close(), LIFECYCLE.timeout);

  it('forwards a plain HTTP request from its egress address', async () => {
    await expectRoutedVia(proxy, echo, ['-x', proxy.url], echo.httpUrl);
  });

  it('tunnels with CONNECT to a non-443 port (HTTP inside the tunnel)', async () => {
    await expectRoutedVia(proxy, echo, ['--proxytunnel', '-x', proxy.url], echo.httpUrl);
  });

  it('tunnels HTTPS with CONNECT to a non-443 port', async () => {
    await expectRoutedVia(proxy, echo, ['--cacert', echo.caFile, '-x', proxy.url], echo.httpsUrl);
  });

  it('answers a wrong password with 407', async () => {
    const bad = proxy.url.replace(':s3cret-pass@', ':wrong@');
    const r = await curl(['-x', bad, echo.httpUrl]);
    expect(r.httpCode, withLog(proxy, r)).toBe(407);
    const t = await curl(['--proxytunnel', '-x', bad, echo.httpUrl]);
    expect(t.exitCode).toBe(56);
    expect(t.connectCode).toBe(407);
  });

  it('answers missing credentials with 407', async () => {
    const r = await curl(['-x', `http://127.0.0.1:${proxy.port}`, echo.httpUrl]);
    expect(r.httpCode).toBe(407);
  });

  it('writes an access log', async () => {
    await curl(['-x', proxy.url, echo.httpUrl]);
    // squid buffers access.log lines briefly; cache.log has the startup lines.
    expect(proxy.log()).toMatch(/Accepting HTTP Socket connections/);
  });
});

// ---------------------------------------------------------------------------
// dante: SOCKS5, no auth, egress 127.0.0.5
// ---------------------------------------------------------------------------

describe.skipIf(skipWithout('danted', 'curl'))('dante (egress 127.0.0.5)', () => {
  let proxy: RealProxy;
  beforeAll(async () => {
    proxy = await startDante({ egressIp: '127.0.0.5' });
    console.info(`dante started in ${proxy.startupMs} ms on ${proxy.url}`);
  }, LIFECYCLE.timeout);
  afterAll(() => proxy?.close(), LIFECYCLE.timeout);

  it('connects from its egress address (socks5h, proxy-side DNS)', async () => {
    expect(proxy.url).toBe(`socks5h://127.0.0.1:${proxy.port}`);
    await expectRoutedVia(proxy, echo, ['-x', proxy.url], echo.httpUrl.replace('127.0.0.1', 'localhost'));
  });

  it('connects from its egress address (--socks5, client-side DNS)', async () => {
    await expectRoutedVia(proxy, echo, ['--socks5', `${proxy.host}:${proxy.port}`], echo.httpUrl);
  });

  it('carries HTTPS', async () => {
    await expectRoutedVia(proxy, echo, ['--cacert', echo.caFile, '-x', proxy.url], echo.httpsUrl);
  });

  it('logs the connection with its egress address', async () => {
    await curl(['-x', proxy.url, echo.httpUrl]);
    expect(proxy.log()).toMatch(/-> 127\.0\.0\.5\.\d+ 127\.0\.0\.1\.\d+/);
  });
});

// ---------------------------------------------------------------------------
// the harness itself
// ---------------------------------------------------------------------------

describe.skipIf(skipWithout('tinyproxy', 'microsocks', 'squid', 'danted', 'curl'))('harness', () => {
  it('runs all four, plus a second squid, concurrently with distinct egress', async () => {
    const started = await Promise.allSettled([
      startTinyproxy({ egressIp: '127.0.0.2', auth: AUTH }),
      startMicrosocks({ egressIp: '127.0.0.3' }),
      startSquid({ egressIp: '127.0.0.4' }),
      startDante({ egressIp: '127.0.0.5' }),
      startSquid({ egressIp: '127.0.0.6' }),
    ]);
    const proxies = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    try {
      for (const s of started) if (s.status === 'rejected') throw s.reason;
      expect(new Set(proxies.map((p) => p.port)).size).toBe(proxies.length);
      const results = await Promise.all(proxies.map((p) => curl(['-x', p.url, echo.httpUrl])));
      results.forEach((r, i) => expect(r.body, withLog(proxies[i]!, r)).toBe(proxies[i]!.egressIp));
    } finally {
      await Promise.all(proxies.map((p) => p.close()));
    }
  }, 60_000);

  it('close() stops the daemon, frees the port and keeps the log', async () => {
    const proxy = await startTinyproxy({ egressIp: '127.0.0.2' });
    await proxy.close();
    await proxy.close(); // idempotent
    expect(() => process.kill(proxy.pid, 0)).toThrow();
    const free = await new Promise<boolean>((resolve) => {
      const s = net.connect(proxy.port, proxy.host);
      s.once('connect', () => (s.destroy(), resolve(false)));
      s.once('error', () => resolve(true));
    });
    expect(free).toBe(true);
    expect(proxy.log()).toMatch(/Starting main loop/);
  }, 30_000);

  it('refuses a non-loopback egress address before starting anything', async () => {
    await expect(startMicrosocks({ egressIp: '10.0.0.1' })).rejects.toThrow(/127\.0\.0\.0\/8/);
  });
});
