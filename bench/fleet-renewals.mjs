// How long the fleet store takes to renew 10,000 accounts' leases (one
// process holding them all, batches of 1000 as routing/fleet.ts sends them),
// and how that compares with the lease TTL. Scenario 8 of `npm run bench`
// runs it (bench/contender.mjs fleet-renewals) against the bench's
// redis-server; on its own it starts one on a free loopback port:
//
//   node bench/fleet-renewals.mjs [accounts] [--url=redis://127.0.0.1:PORT] [--cycles=N]
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** What routing/fleet.ts sends per renewal call, and how often it renews (TTL/3). */
const BATCH = 1000;
const TTL = 15_000;

/** The store class is internal: bundle it from the sources (src/store/redis.ts) for this measurement. */
async function loadRedisStore() {
  const { build } = await import('esbuild');
  const out = await build({ entryPoints: [fileURLToPath(new URL('../src/store/redis.ts', import.meta.url))], bundle: true, platform: 'node', format: 'esm', external: ['redis'], write: false, logLevel: 'silent' });
  // Written inside bench/ so that `redis` resolves from the project's node_modules.
  const dir = mkdtempSync(join(fileURLToPath(new URL('.', import.meta.url)), '.fleet-bench-'));
  try {
    writeFileSync(join(dir, 'redis-store.mjs'), out.outputFiles[0].text);
    return (await import(pathToFileURL(join(dir, 'redis-store.mjs')).href)).RedisStore;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Acquires `n` leases (sequentially, one call each, as first requests do),
 * then renews all of them `cycles` times in batches of 1000. Uses its own
 * prefix on the server at `url` and deletes its keys afterwards.
 * Returns times in ms (per cycle: wall, this process's CPU, longest batch).
 */
export async function measureRenewals({ url, n = 10_000, cycles = 5, prefix = `bench-renewals-${randomUUID().slice(0, 8)}` }) {
  const RedisStore = await loadRedisStore();
  const { createClient } = await import('redis');
  const admin = createClient({ url });
  admin.on('error', () => undefined);
  await admin.connect();
  const store = new RedisStore({ url, prefix, timeoutMs: 30_000 });
  try {
    await store.connect();
    const margin = Math.min(3000, Math.max(100, Math.round(TTL / 5)));
    const call = (epoch) => ({ instance: 'i1', ttl: TTL, margin, epoch, newEpoch: randomUUID() });
    const warm = await store.acquire({ ...call(''), account: 'warm', exclusive: true, candidates: [{ key: 'warm', url: 'x' }] });
    const epoch = warm.epoch;
    // Skip the new epoch's settle time (TTL + margin): nothing to protect in a bench.
    await admin.sendCommand(['HSET', `{${prefix}}:epoch`, 'at', '0']);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const r = await store.acquire({ ...call(epoch), account: `a${i}`, exclusive: true, candidates: [{ key: `p${i}`, url: `http://h${i}:1` }] });
      if (r.status !== 'ok') throw new Error(`acquire ${i}: ${r.status}`);
    }
    const acquireMs = performance.now() - t0;
    const rounds = [];
    for (let round = 0; round < cycles; round++) {
      const c0 = process.cpuUsage();
      const t = performance.now();
      let longest = 0;
      for (let i = 0; i < n; i += BATCH) {
        const accounts = Array.from({ length: Math.min(BATCH, n - i) }, (_, k) => ({ account: `a${i + k}`, ack: 1 }));
        const b = performance.now();
        const r = await store.renew({ ...call(epoch), exclusive: true, accounts });
        longest = Math.max(longest, performance.now() - b);
        if (r.status !== 'ok' || r.accounts.some((a) => !a.held)) throw new Error('renew failed');
      }
      const cpu = process.cpuUsage(c0);
      rounds.push({ ms: performance.now() - t, cpuMs: (cpu.user + cpu.system) / 1000, longestBatchMs: longest });
    }
    return { n, batch: BATCH, ttl: TTL, intervalMs: Math.floor(TTL / 3), acquireMs, rounds };
  } finally {
    await store.close();
    // Leave the server as found: the bench's contenders share it.
    for await (const keys of admin.scanIterator({ MATCH: `{${prefix}}:*`, COUNT: 1000 })) {
      const list = Array.isArray(keys) ? keys : [keys];
      if (list.length) await admin.sendCommand(['UNLINK', ...list]);
    }
    admin.destroy();
  }
}

const sorted = (xs) => [...xs].sort((a, b) => a - b);
export const medianOf = (xs) => {
  const s = sorted(xs);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** `node bench/fleet-renewals.mjs`: starts its own redis-server unless --url is given. */
async function main() {
  const argv = process.argv.slice(2);
  const opt = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const n = Number(argv.find((a) => /^\d+$/.test(a)) ?? 10_000);
  let url = opt('url');
  let server;
  if (!url) {
    const port = await new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
    server = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], { stdio: 'ignore' });
    url = `redis://127.0.0.1:${port}`;
    // Accepting connections: RedisStore.connect retries on its own; bounded here.
    const { createClient } = await import('redis');
    const probe = createClient({ url, socket: { reconnectStrategy: (k) => (k > 100 ? new Error('no redis-server') : 50) } });
    probe.on('error', () => undefined);
    await probe.connect();
    probe.destroy();
  }
  try {
    const r = await measureRenewals({ url, n, cycles: Number(opt('cycles') ?? 3) });
    const ms = r.rounds.map((x) => x.ms);
    const med = medianOf(ms);
    console.log(`fleet store: ${n} acquisitions ${r.acquireMs.toFixed(0)} ms (${((r.acquireMs / n) * 1000).toFixed(0)} µs each, sequential); renewing all ${n} leases: ${ms.map((x) => x.toFixed(0)).join(', ')} ms per cycle (median ${med.toFixed(0)} ms; per TTL 3 cycles = ${((300 * med) / r.ttl).toFixed(2)} % of the default 15 s TTL, renewed every ${r.intervalMs / 1000} s)`);
  } finally {
    server?.kill('SIGTERM');
  }
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) await main();
