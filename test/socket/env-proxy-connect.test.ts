/**
 * grpc-js reads https_proxy itself and sends `CONNECT target` through
 * http.request to the proxy it names — here the default proxy, exported by
 * the env layer. Inside alice's scope the http layer answers that CONNECT
 * in-process over alice's tunnel: the gRPC server sees alice's egress, and
 * the default proxy never sees the call.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager } from '../../src/index.js';
import { startMockProxy, type MockProxy } from '../../src/testing/index.js';
import { grpcEcho, startGrpcEcho } from './grpc-echo.js';

let grpcServer: Awaited<ReturnType<typeof startGrpcEcho>>;
let alice: MockProxy;
let dflt: MockProxy;
let manager: SessionProxyManager;

beforeAll(async () => {
  grpcServer = await startGrpcEcho();
  alice = await startMockProxy({ egressIp: '127.0.0.2', protocols: ['socks5'] });
  dflt = await startMockProxy({ egressIp: '127.0.0.4', auth: { username: 'dflt', password: 'env-Pw' } });
  // tunnelSockets: false, so only the env-proxy CONNECT path can carry the call.
  manager = new SessionProxyManager({ proxy: dflt.url, accounts: { alice: alice.urlFor('socks5h') }, noProxy: [], tunnelSockets: false }).install();
});
afterAll(async () => {
  await manager.uninstall();
  await Promise.all([grpcServer.close(), alice.close(), dflt.close()]);
});

describe('env-reading clients that CONNECT through HTTPS_PROXY', () => {
  it('a grpc-js call in alice\'s scope leaves through alice\'s SOCKS proxy, not the default proxy it dialed', async () => {
    expect(process.env.https_proxy).toContain(`:${dflt.port}`);
    const { peer } = await manager.withProxy('alice', () => grpcEcho(grpcServer.target));
    expect(peer).toMatch(/^(ipv4:)?127\.0\.0\.2:/);
    expect(dflt.log).toEqual([]);
    expect(alice.log.map((e) => `${e.protocol} ${e.targetHost}:${e.targetPort}`)).toEqual([`socks5 ${grpcServer.target}`]);
  });

  it('outside any scope the same call leaves through the default proxy', async () => {
    const { peer } = await grpcEcho(grpcServer.target);
    expect(peer).toMatch(/^(ipv4:)?127\.0\.0\.4:/);
  });
});
