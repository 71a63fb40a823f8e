// How long the fleet store takes to renew 10,000 accounts' leases (one
// process holding them all, batches of 1000 as routing/fleet.ts sends them),
// and how that compares with the lease TTL. Needs a redis-server binary; it
// starts its own on a free port. `node bench/fleet-renewals.mjs [accounts]`
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

// The store class is internal: bundle it from the sources for this measurement.
const out = await build({ entryPoints: [new URL('../src/store/redis.ts', import.meta.url).pathname], bundle: true, platform: 'node', format: 'esm', external: ['redis'], write: false });
const dir = mkdtempSync(join(new URL('.', import.meta.url).pathname, '.fleet-bench-'));
writeFileSync(join(dir, 'redis-store.mjs'), out.outputFiles[0].text);
const { RedisStore } = await import(pathToFileURL(join(dir, 'redis-store.mjs')).href);
rmSync(dir, { recursive: true, force: true });

const n = Number(process.argv[2] ?? 10_000);
const port = await new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const server = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], { stdio: 'ignore' });
try {
  const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, prefix: 'bench', timeoutMs: 30_000 });
  for (let i = 0; ; i++) { try { await store.connect(); break; } catch { if (i > 100) throw new Error('no redis'); await new Promise((r) => setTimeout(r, 50)); } }
  const ttl = 15_000, margin = 3000;
  const call = (epoch) => ({ instance: 'i1', ttl, margin, epoch, newEpoch: randomUUID() });
  const epoch = (await store.acquire({ ...call(''), account: 'warm', exclusive: true, candidates: [{ key: 'warm', url: 'x' }] })).epoch;
  // Skip the new epoch's settle time (TTL + margin): nothing to protect in a bench.
  spawnSync('redis-cli', ['-p', String(port), 'HSET', '{bench}:epoch', 'at', '0']);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await store.acquire({ ...call(epoch), account: `a${i}`, exclusive: true, candidates: [{ key: `p${i}`, url: `http://h${i}:1` }] });
    if (r.status !== 'ok') throw new Error(`acquire ${i}: ${r.status}`);
  }
  const acquired = performance.now() - t0;
  const rounds = [];
  for (let round = 0; round < 3; round++) {
    const t = performance.now();
    for (let i = 0; i < n; i += 1000) {
      const accounts = Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ account: `a${i + k}`, ack: 1 }));
      const r = await store.renew({ ...call(epoch), exclusive: true, accounts });
      if (r.status !== 'ok' || r.accounts.some((a) => !a.held)) throw new Error('renew failed');
    }
    rounds.push(performance.now() - t);
  }
  const best = Math.min(...rounds);
  console.log(`fleet store: ${n} acquisitions ${acquired.toFixed(0)} ms (${((acquired / n) * 1000).toFixed(0)} µs each, sequential); renewing all ${n} leases: ${rounds.map((x) => x.toFixed(0)).join(', ')} ms (best ${best.toFixed(0)} ms = ${((best / 15_000) * 100).toFixed(2)} % of the default 15 s TTL, renewed every 5 s)`);
  await store.close();
} finally {
  server.kill('SIGTERM');
}
