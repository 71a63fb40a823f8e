/**
 * A throwaway Redis Sentinel set on loopback for the fleet tests: a primary
 * and a replica (redis.conf.template, the replica with `--replicaof`) and
 * one sentinel (sentinel.conf.template, `redis-server --sentinel`, quorum 1),
 * started in that order so the sentinel learns the replica from its first
 * INFO. `failover()` runs SENTINEL FAILOVER and waits, bounded, until the
 * sentinel names the other server and that server says it is a primary, then
 * makes the old primary a replica of the new one (as the sentinel would on
 * its next INFO round, up to 10 s later) and waits until it has synced.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, redisCommand, requireRedisServer, serverProcess, writeConfig, type ServerProcess } from './redis-server.js';

export interface DataNode {
  readonly port: number;
  readonly server: ServerProcess;
  command(...args: string[]): Promise<unknown>;
}

export interface SentinelSet {
  readonly name: string;
  readonly sentinelPort: number;
  /** `store: { sentinel }`. */
  readonly sentinel: { name: string; nodes: string[] };
  readonly nodes: readonly [DataNode, DataNode];
  /** The data node the sentinel names as primary now. */
  primary(): Promise<DataNode>;
  replica(): Promise<DataNode>;
  /** Waits (bounded) until the replica has replicated everything the primary has (master_repl_offset). */
  synced(ms?: number): Promise<void>;
  /** SENTINEL FAILOVER, then waits for the switch; resolves with the new primary and how long it took. */
  failover(ms?: number): Promise<{ primary: DataNode; ms: number }>;
  /**
   * The primary crashes with a replica that lacks some writes: the primary's writes are paused
   * (CLIENT PAUSE WRITE: nothing more reaches the replica), `lose(replica)` changes the replica's
   * data (it is made writable for that), the primary is killed (the commands it held die with it),
   * the replica is promoted (SENTINEL FAILOVER), and the old primary comes back as its replica.
   */
  crash(lose: (replica: DataNode) => Promise<void>, ms?: number): Promise<{ primary: DataNode; ms: number }>;
  close(): Promise<void>;
}

export async function startSentinelSet(name = 'fleet'): Promise<SentinelSet> {
  const bin = requireRedisServer();
  const dir = mkdtempSync(join(tmpdir(), 'sp-redis-sentinel-'));
  const servers: ServerProcess[] = [];
  const close = async (): Promise<void> => {
    await Promise.allSettled(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ports = [await freePort(), await freePort()] as const;
    const nodes = ports.map((port, i) => {
      const nodeDir = mkdtempSync(join(dir, `node${i}-`));
      const conf = writeConfig('redis.conf.template', nodeDir, { PORT: port, DIR: nodeDir });
      // No delay before a full sync (the default waits 5 s for more replicas to share it).
      const server = serverProcess(bin, [conf, '--repl-diskless-sync-delay', '0', ...(i === 1 ? ['--replicaof', '127.0.0.1', String(ports[0])] : [])], port);
      servers.push(server);
      return { port, server, command: (...args: string[]) => redisCommand(port, args) };
    }) as unknown as [DataNode, DataNode];
    for (const n of nodes) await n.server.start();
    await until(async () => String(await nodes[1].command('INFO', 'replication')).includes('master_link_status:up'), 10_000, 'the replica to sync');
    const sentinelPort = await freePort();
    const sentinelDir = mkdtempSync(join(dir, 'sentinel-'));
    const sentinel = serverProcess(bin, [writeConfig('sentinel.conf.template', sentinelDir, { PORT: sentinelPort, DIR: sentinelDir, NAME: name, PRIMARY_PORT: ports[0] }), '--sentinel'], sentinelPort);
    servers.push(sentinel);
    await sentinel.start();
    const ask = (...args: string[]): Promise<unknown> => redisCommand(sentinelPort, args);
    // The sentinel knows the replica (and considers it usable) before a failover can pick it.
    await until(async () => {
      const replicas = (await ask('SENTINEL', 'REPLICAS', name)) as string[][];
      return replicas.some((r) => r[r.indexOf('port') + 1] === String(ports[1]) && r[r.indexOf('flags') + 1] === 'slave');
    }, 10_000, 'the sentinel to see the replica');
    const primaryPort = async (): Promise<number> => Number(((await ask('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as string[])[1]);
    const set: SentinelSet = {
      name,
      sentinelPort,
      sentinel: { name, nodes: [`redis://127.0.0.1:${sentinelPort}`] },
      nodes,
      async primary() {
        const port = await primaryPort();
        return nodes.find((n) => n.port === port)!;
      },
      async replica() {
        const port = await primaryPort();
        return nodes.find((n) => n.port !== port)!;
      },
      async synced(ms = 10_000) {
        const offset = async (n: DataNode, field: string): Promise<number> => Number(new RegExp(`${field}:(\\d+)`).exec(String(await n.command('INFO', 'replication')))?.[1] ?? -1);
        const [p, r] = [await set.primary(), await set.replica()];
        await until(async () => (await offset(r, 'slave_repl_offset')) >= (await offset(p, 'master_repl_offset')) && String(await r.command('INFO', 'replication')).includes('master_link_status:up'), ms, 'the replica to catch up');
      },
      async failover(ms = 15_000) {
        const before = await primaryPort();
        const t0 = Date.now();
        await ask('SENTINEL', 'FAILOVER', name);
        const next = nodes.find((n) => n.port !== before)!;
        await until(async () => (await primaryPort()) === next.port && String(await next.command('INFO', 'replication')).includes('role:master'), ms, 'the sentinel to switch to the replica');
        const took = Date.now() - t0;
        // The sentinel turns the old primary into a replica of the new one on its next INFO
        // round (up to 10 s later); do what it will do now, and wait until it has synced.
        const old = nodes.find((n) => n.port === before)!;
        await old.command('REPLICAOF', '127.0.0.1', String(next.port));
        await until(async () => String(await old.command('INFO', 'replication')).includes('master_link_status:up'), ms, 'the old primary to follow the new one');
        return { primary: next, ms: took };
      },
      async crash(lose, ms = 15_000) {
        const [p, r] = [await set.primary(), await set.replica()];
        await p.command('CLIENT', 'PAUSE', String(ms), 'WRITE');
        await r.command('CONFIG', 'SET', 'replica-read-only', 'no');
        await lose(r);
        await r.command('CONFIG', 'SET', 'replica-read-only', 'yes');
        await p.server.kill();
        const t0 = Date.now();
        // The sentinel may already be failing over on its own (the primary is down): then wait for it.
        await ask('SENTINEL', 'FAILOVER', name).catch((err: Error) => {
          if (!/INPROGRESS/.test(err.message)) throw err;
        });
        await until(async () => (await primaryPort()) === r.port && String(await r.command('INFO', 'replication')).includes('role:master'), ms, 'the sentinel to promote the replica');
        const took = Date.now() - t0;
        await p.server.start();
        await p.command('REPLICAOF', '127.0.0.1', String(r.port));
        await until(async () => String(await p.command('INFO', 'replication')).includes('master_link_status:up'), ms, 'the old primary to follow the new one');
        return { primary: r, ms: took };
      },
      close,
    };
    return set;
  } catch (err) {
    await close();
    throw err;
  }
}

async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
