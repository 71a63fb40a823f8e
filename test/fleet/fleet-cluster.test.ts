/**
 * The fleet on a real 3-primary Redis Cluster (test/support/redis-cluster.ts):
 * two processes given one root node each share accounts with one egress per
 * account and no egress shared between accounts; every key of the fleet sits
 * in the slot of its `{prefix}` hash tag, on the one node that serves it; the
 * CLI reads the fleet through `redis+cluster://`; and with the manager
 * installed in this process (a default proxy, tunnelSockets on) the store's
 * own connections reach the nodes directly, never through a proxy. Heavy:
 * Node 20 only (SESSION_PROXY_FLEET_HEAVY=1 runs it anywhere).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager } from '../../src/index.js';
import { needsDist, root, run } from '../ecosystem/support/run.js';
import { startCluster, type RedisCluster } from '../support/redis-cluster.js';
import { noRedis } from '../support/redis-server.js';
import { Worker, expectOneEgressPerAccount, startNetwork, until, type Network } from './support.js';

const heavy = process.env.SESSION_PROXY_FLEET_HEAVY === '1' || process.versions.node.startsWith('20.');
const ttl = 2000;

describe.skipIf(noRedis || needsDist || !heavy)('fleet on a Redis Cluster (3 primaries, real redis-server)', () => {
  let cluster: RedisCluster;
  let net_: Network;
  const workers: Worker[] = [];
  let accounts: Record<string, string[]>;
  beforeAll(async () => {
    const t0 = Date.now();
    cluster = await startCluster(3);
    net_ = await startNetwork(6);
    console.log(`[fleet] cluster: 3 primaries at cluster_state:ok in ${Date.now() - t0} ms`);
    const u = net_.urls;
    accounts = { alice: [u[0]!, u[1]!, u[2]!], bob: [u[0]!, u[1]!, u[3]!], carol: [u[1]!, u[4]!, u[5]!] };
  }, 30_000);
  afterAll(async () => {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await net_?.close();
    await cluster?.close();
  }, 30_000);

  it('two processes (one root node each) put a shared account on one egress; no egress serves two accounts; every key in one slot on one node', async () => {
    const config = (use: string[], root: number): object => ({ accounts, use, echo: net_.echo.httpUrl, store: { cluster: [cluster.urls[root]], leaseTtl: ttl, prefix: 'cl' }, gapMs: 25 });
    const a = new Worker(config(['alice', 'bob'], 0));
    const b = new Worker(config(['alice', 'bob', 'carol'], 2));
    workers.push(a, b);
    const t0 = Date.now();
    for (const w of [a, b]) for (const account of ['alice', 'bob']) await w.waitFor((m) => m.type === 'first' && m.account === account, 15_000);
    await b.waitFor((m) => m.type === 'first' && m.account === 'carol', 15_000);
    console.log(`[fleet] cluster: both processes serving every account ${Date.now() - t0} ms after start (a new fleet settles TTL + margin = ${ttl + 400} ms once)`);
    await expectOneEgressPerAccount(a, b, net_.echo);

    // A rotation in one process moves the account in the other (the move's pub/sub message and the
    // version poll cross the Cluster).
    const r = await a.ask('rotate', { account: 'alice' });
    await until(async () => (((await b.ask('current')).current as Record<string, string>).alice === r.to ? true : undefined), 5000, 'process b to follow the move');

    // Where the keys are: all of them in the slot of {cl}, all on the node serving it, none elsewhere.
    const { node, slot } = await cluster.nodeFor('{cl}:epoch');
    const perNode = await Promise.all(cluster.nodes.map(async (n) => ({ port: n.port, keys: (await n.command('KEYS', '*')) as string[] })));
    const holder = perNode.find((n) => n.port === node.port)!;
    console.log(`[fleet] cluster: ${holder.keys.length} fleet keys, all in slot ${slot} on node 127.0.0.1:${node.port}; other nodes: ${perNode.filter((n) => n !== holder).map((n) => `${n.port} ${n.keys.length} keys`).join(', ')}`);
    expect(holder.keys.length).toBeGreaterThan(8);
    for (const k of holder.keys) expect(k.startsWith('{cl}:'), k).toBe(true);
    for (const k of holder.keys) expect(await node.command('CLUSTER', 'KEYSLOT', k), k).toBe(slot);
    for (const n of perNode) if (n !== holder) expect(n.keys).toEqual([]);
    // The root node process b was given is not the slot's node for at least one of the two processes: redirection worked.
    expect([cluster.urls[0], cluster.urls[2]].some((u) => !u!.endsWith(`:${node.port}`))).toBe(true);
  }, 40_000);

  it('session-proxy fleet --store redis+cluster://… reads the fleet (no password shown)', async () => {
    const store = `redis+cluster://${cluster.urls.map((u) => u.replace('redis://', '')).join(',')}`;
    const cli = await run([`${root}/dist/cli.mjs`, 'fleet', '--store', store, '--prefix', 'cl', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    const stats = JSON.parse(cli.stdout) as { accounts: Array<{ account: string; proxy: string; holders: Array<{ pid: number }> }> };
    const alice = stats.accounts.find((x) => x.account === 'alice')!;
    expect(alice.holders.map((h) => h.pid).sort()).toEqual(workers.map((w) => w.pid).sort());
    expect(alice.proxy).toContain(':***@');
    const text = await run([`${root}/dist/cli.mjs`, 'fleet', '--store', store, '--prefix', 'cl']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.split('\n')[0]).toMatch(/^fleet redis\+cluster:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+ \(epoch /);
    for (const pw of net_.passwords) expect(text.stdout + cli.stdout).not.toContain(pw);
    const bad = await run([`${root}/dist/cli.mjs`, 'fleet', '--store', 'redis+cluster://:Hunter2pw@h1:7000/3']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/a Cluster URL has no path/);
    expect(bad.stderr).not.toContain('Hunter2pw');
  }, 30_000);

  it('installed with a default proxy and tunnelSockets on: the store’s connections to every node go direct (plumbing), the app’s raw sockets do not', async () => {
    const proxies = net_.proxies;
    const nodePorts = new Set(cluster.nodes.map((n) => n.port));
    const manager = new SessionProxyManager({ proxy: net_.urls[5]!, accounts: { dave: [net_.urls[4]!] }, noProxy: [], tunnelSockets: true, store: { cluster: cluster.urls, leaseTtl: ttl, prefix: 'plumb' } }).install();
    try {
      // dave's first request needs the store: the manager's Cluster client connects to the nodes
      // (a new fleet settles TTL + margin first: until then requests fail closed).
      const res = await until(() => manager.withProxy('dave', () => fetch(`${net_.echo.httpUrl}/ip`).then((r) => r.text())).catch(() => undefined), 10_000, 'dave served');
      expect(res).toBe(net_.egress[4]);
      // The app's raw socket outside any scope leaves through the default proxy (the hook is on;
      // the default proxy is leased in the fleet too).
      const rawIp = (): Promise<string> =>
        new Promise<string>((resolve, reject) => {
          const s = net.connect(net_.echo.httpPort, '127.0.0.1', () => s.write('GET /ip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
          let body = '';
          s.on('data', (d: Buffer) => (body += d.toString()));
          s.on('end', () => resolve(body.split('\r\n\r\n')[1] ?? ''));
          s.on('error', reject);
        });
      expect(await until(() => rawIp().catch(() => undefined), 10_000, 'a raw socket served')).toBe(net_.egress[5]);
      const clients = (await Promise.all(cluster.nodes.map((n) => n.command('CLIENT', 'LIST')))).join('\n').split('\n').filter((l) => l.includes('addr='));
      const addrs = clients.map((l) => /addr=([\d.]+):/.exec(l)?.[1]);
      // Every connection a node sees comes from 127.0.0.1, none from a proxy's egress (127.0.1.x).
      expect(clients.filter((l) => !l.includes('cmd=client|list')).length).toBeGreaterThanOrEqual(1);
      expect(new Set(addrs)).toEqual(new Set(['127.0.0.1']));
      for (const p of proxies) expect(p.log.filter((e) => nodePorts.has(Number(e.targetPort)))).toEqual([]);
    } finally {
      await manager.uninstall();
    }
  }, 30_000);
});
