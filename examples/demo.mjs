// npm run demo — the main job, fully offline: two accounts, each pinned to its
// own (mock) proxy, send traffic concurrently through fetch, http.request and
// a WebSocket; a loopback echo server reports the IP each request came from.
// Each mock proxy binds its outgoing side to its own 127.0.0.x, so the IP the
// echo server sees tells which proxy carried the request.
import http from 'node:http';
import WebSocket from 'ws';
import { SessionProxyManager } from 'session-proxy';
import { startEchoServer, startMockProxy } from 'session-proxy/testing';

const echo = await startEchoServer();
const aliceProxy = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'alice', password: 'demo-secret' } });
const aliceSpare = await startMockProxy({ egressIp: '127.0.0.4' });
const bobProxy = await startMockProxy({ egressIp: '127.0.0.3' });

const manager = new SessionProxyManager({
  accounts: {
    alice: [aliceProxy.url, aliceSpare.urlFor('socks5h')], // a pool: the first is active
    bob: bobProxy.urlFor('socks5h'),
  },
  noProxy: [], // loopback is bypassed by default; route it here so the demo can show egress
});
manager.install();

const viaFetch = async () => (await (await fetch(`${echo.httpUrl}/fetch`)).json()).ip;
const viaHttp = () =>
  new Promise((resolve, reject) => {
    const req = http.request(`${echo.httpUrl}/http`, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(JSON.parse(body).ip));
    });
    req.on('error', reject);
    req.end();
  });
const viaWs = () =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${echo.wsUrl}/ws`);
    ws.once('open', () => ws.send('hello'));
    ws.once('message', (data) => {
      resolve(JSON.parse(String(data)).ip);
      ws.close();
    });
    ws.once('error', reject);
  });

async function egressOf(account) {
  return manager.withProxy(account, async () => {
    const [fetchIp, httpIp, wsIp] = await Promise.all([viaFetch(), viaHttp(), viaWs()]);
    return { account, proxy: manager.current(account).url, fetch: fetchIp, 'http.request': httpIp, ws: wsIp };
  });
}

console.log('Two accounts, concurrently (the egress IP each request arrived from):');
console.table(await Promise.all([egressOf('alice'), egressOf('bob')]));

const to = await manager.rotate('alice');
console.log(`\nRotated alice to ${to.url}:`);
console.table([await egressOf('alice')]);

const peersFromHost = echo.peers.filter((p) => p.ip === '127.0.0.1').length;
console.log(`\nConnections the echo server saw from this host directly (a leak): ${peersFromHost}`);

await manager.uninstall();
await Promise.all([echo.close(), aliceProxy.close(), aliceSpare.close(), bobProxy.close()]);
