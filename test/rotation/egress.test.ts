/** verifyEgress / verifyAll against the echo server through proxies with different egress addresses. */
import { afterEach, describe, expect, it } from 'vitest';
import { SessionProxyManager, EgressMismatchError, EgressLeakError, findSessionProxyError, type EgressEvent } from '../../src/index.js';
import { startEchoServer, startMockProxy } from '../../src/testing/index.js';

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** An installed manager (verifyEgress refuses otherwise) routing loopback targets through proxies. */
function installed(options: ConstructorParameters<typeof SessionProxyManager>[0]): SessionProxyManager {
  const m = new SessionProxyManager({ noProxy: [], ...options }).install();
  cleanup.push(() => m.uninstall());
  return m;
}

async function setup(egress: Array<string | undefined>) {
  const echo = await startEchoServer();
  const proxies = await Promise.all(egress.map((ip) => startMockProxy(ip ? { egressIp: ip } : {})));
  cleanup.push(() => echo.close(), ...proxies.map((p) => () => p.close()));
  return { echo, proxies, endpoints: [`${echo.httpUrl}/ip`] };
}

describe('egress verification', () => {
  it('verifyEgress reports the IP the endpoint saw through each account\'s proxy', async () => {
    const { proxies, endpoints } = await setup(['127.0.0.2', '127.0.0.3']);
    const m = installed({ accounts: { alice: proxies[0].url, bob: proxies[1].urlFor('socks5h') }, egressEndpoints: endpoints });
    const events: EgressEvent[] = [];
    m.on('egress', (e) => events.push(e));
    const a = await m.verifyEgress('alice');
    expect(a).toMatchObject({ account: 'alice', ip: '127.0.0.2', endpoint: endpoints[0] });
    expect(a.latencyMs).toBeGreaterThanOrEqual(0);
    expect((await m.verifyEgress('bob')).ip).toBe('127.0.0.3');
    expect(events.map((e) => e.status)).toEqual(['verified', 'verified']);
  });

  it('falls back across endpoints', async () => {
    const { proxies, echo } = await setup(['127.0.0.2']);
    const m = installed({ accounts: { alice: proxies[0].url } });
    const r = await m.verifyEgress('alice', { endpoints: ['http://127.0.0.1:1/ip', `${echo.httpUrl}/ip`] });
    expect(r.endpoint).toBe(`${echo.httpUrl}/ip`);
  });

  it('expectedIp mismatch → EgressMismatchError', async () => {
    const { proxies, endpoints } = await setup(['127.0.0.2']);
    const m = installed({ accounts: { alice: proxies[0].url }, egressEndpoints: endpoints });
    await expect(m.verifyEgress('alice', { expectedIp: '127.0.0.9' })).rejects.toThrow(EgressMismatchError);
    await expect(m.verifyEgress('alice', { expectedIp: '127.0.0.9' })).rejects.toThrow(/127\.0\.0\.2 does not match the expected 127\.0\.0\.9/);
  });

  it('compareDirect catches a transparent proxy (egress equals the direct IP)', async () => {
    const { proxies, endpoints } = await setup([undefined, '127.0.0.2']);
    const m = installed({ accounts: { transparent: proxies[0].url, real: proxies[1].url }, egressEndpoints: endpoints });
    await expect(m.verifyEgress('transparent', { compareDirect: true })).rejects.toThrow(EgressLeakError);
    await expect(m.verifyEgress('real', { compareDirect: true })).resolves.toMatchObject({ ip: '127.0.0.2' });
  });

  it('verifyAll checks every account and flags two accounts egressing from one IP', async () => {
    const { proxies, endpoints } = await setup(['127.0.0.2', '127.0.0.3', '127.0.0.3']);
    const m = installed({ accounts: { alice: proxies[0].url, bob: proxies[1].url, carol: proxies[2].url }, egressEndpoints: endpoints });
    const rows = await m.verifyAll();
    expect(rows.map((r) => [r.account, r.ip, r.ok, r.sameIpAs])).toEqual([
      ['alice', '127.0.0.2', true, []],
      ['bob', '127.0.0.3', false, ['carol']],
      ['carol', '127.0.0.3', false, ['bob']],
    ]);
  });

  it('verifyOnStart + quarantine: a mismatching account\'s traffic stops with typed errors until a verification succeeds', async () => {
    const { echo, proxies } = await setup(['127.0.0.2']);
    const m = new SessionProxyManager({
      accounts: { alice: proxies[0].url },
      noProxy: [],
      // An endpoint that answers with an IP that is not the proxy's: a mismatch.
      egressEndpoints: [`${echo.httpUrl}/ip`],
      verifyOnStart: true,
      onMismatch: 'quarantine',
    });
    // Make the start-up verification fail with a mismatch by expecting another IP for the first run.
    const verify = m.verifyEgress.bind(m);
    let first = true;
    (m as unknown as { verifyEgress: typeof verify }).verifyEgress = (account, options) => {
      const run = verify(account, first ? { ...options, expectedIp: '127.0.0.99' } : options);
      first = false;
      return run;
    };
    m.install();
    cleanup.push(() => m.uninstall());
    const peersBefore = echo.peers.length;
    const err = await m.withProxy('alice', () => fetch(`${echo.httpUrl}/blocked`)).then(() => undefined, (e: unknown) => findSessionProxyError(e));
    expect(err).toBeInstanceOf(EgressMismatchError);
    const again = await m.withProxy('alice', () => fetch(`${echo.httpUrl}/blocked2`)).then(() => undefined, (e: unknown) => findSessionProxyError(e));
    expect(again).toBeInstanceOf(EgressMismatchError);
    expect(echo.peers.filter((p) => p.ip !== '127.0.0.2' || echo.peers.indexOf(p) >= peersBefore && false)).toEqual([]);
    // A successful verification lifts the quarantine.
    await m.verifyEgress('alice');
    const ok = (await m.withProxy('alice', async () => (await fetch(`${echo.httpUrl}/ok`)).json())) as { ip: string };
    expect(ok.ip).toBe('127.0.0.2');
  });
});
