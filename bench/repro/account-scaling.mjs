#!/usr/bin/env node
/**
 * Minimal repro (no network): the per-request cost of routing an
 * https.request / http.request grows with the number of configured
 * accounts, because every request walks every proxy of every account
 * (manager.isProxyAddress → allProxies) and computes each one's identityKey
 * (an HMAC-SHA256 + JSON.stringify, recomputed on every access).
 *
 *   npm run build && node bench/repro/account-scaling.mjs [path/to/dist]
 *
 * Each request is created inside withProxy() and destroyed before it can
 * connect (port 9 on loopback, never reached): only the synchronous routing
 * in http.request is timed. Also times identityKey and rotate().
 */
import https from 'node:https';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

const dist = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist'));
const { SessionProxyManager, parseProxy } = await import(pathToFileURL(path.join(dist, 'index.mjs')).href);

const p = parseProxy('http://user:secret@127.0.0.1:8080');
let t = performance.now();
for (let i = 0; i < 20_000; i++) void p.identityKey;
console.log(`identityKey: ${(((performance.now() - t) * 1000) / 20_000).toFixed(2)} µs per access`);

for (const n of [1, 10, 100, 1000]) {
  const accounts = {};
  for (let i = 0; i < n; i++) accounts[`a${i}`] = `http://user${i}:pw${i}@127.0.0.1:8080`;
  const m = new SessionProxyManager({ accounts, noProxy: [] }).install();
  const create = () =>
    m.withProxy('a0', () => {
      const req = https.request({ host: '127.0.0.1', port: 9, path: '/' });
      req.on('error', () => undefined);
      req.destroy();
    });
  for (let i = 0; i < 200; i++) create();
  const reps = n >= 1000 ? 200 : 2000;
  t = performance.now();
  for (let i = 0; i < reps; i++) create();
  const perRequest = ((performance.now() - t) * 1000) / reps;

  // rotate() on an account with 2 proxies, with n other accounts configured
  m.setAccount('rot', ['http://r1:pw@127.0.0.1:8081', 'http://r2:pw@127.0.0.1:8082']);
  await m.rotate('rot');
  t = performance.now();
  for (let i = 0; i < 50; i++) await m.rotate('rot');
  const perRotate = (performance.now() - t) / 50;
  await m.uninstall();
  console.log(`${String(n).padStart(5)} accounts: https.request routing ${perRequest.toFixed(1).padStart(8)} µs/request; rotate() ${perRotate.toFixed(3)} ms`);
}
process.exit(0);
