/**
 * A throwaway Redis Cluster on loopback for the fleet tests: N primaries
 * (redis-server with cluster-enabled, test/fixtures/redis/cluster-node.conf.template)
 * on free ports (client and bus port each), the 16384 slots split evenly with CLUSTER ADDSLOTSRANGE, the
 * nodes introduced with CLUSTER MEET, and a bounded wait until every node
 * reports cluster_state:ok and knows the others. No redis-cli needed: the
 * commands go over a raw RESP socket.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, redisCommand, requireRedisServer, serverProcess, writeConfig, type ServerProcess } from './redis-server.js';

export interface ClusterNode {
  readonly port: number;
  readonly url: string;
  readonly server: ServerProcess;
  command(...args: string[]): Promise<unknown>;
}

export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** The root-node URLs (`store: { cluster }`). */
  readonly urls: string[];
  /** The node whose slots include `key`'s (CLUSTER KEYSLOT, then the slot ranges). */
  nodeFor(key: string): Promise<{ node: ClusterNode; slot: number }>;
  close(): Promise<void>;
}

export async function startCluster(masters = 3, readyWithinMs = 15_000): Promise<RedisCluster> {
  const bin = requireRedisServer();
  const dir = mkdtempSync(join(tmpdir(), 'sp-redis-cluster-'));
  const nodes: ClusterNode[] = [];
  const busPorts = new Map<number, number>();
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      const busPort = await freePort();
      busPorts.set(port, busPort);
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir);
      const server = serverProcess(bin, [writeConfig('cluster-node.conf.template', nodeDir, { PORT: port, BUS_PORT: busPort, DIR: nodeDir })], port);
      await server.start();
      nodes.push({ port, url: `redis://127.0.0.1:${port}`, server, command: (...args) => redisCommand(port, args) });
    }
    const ranges = nodes.map((_, i) => [Math.floor((16384 * i) / masters), Math.floor((16384 * (i + 1)) / masters) - 1] as const);
    await Promise.all(nodes.map((n, i) => n.command('CLUSTER', 'ADDSLOTSRANGE', String(ranges[i]![0]), String(ranges[i]![1]))));
    for (const n of nodes.slice(1)) await nodes[0]!.command('CLUSTER', 'MEET', '127.0.0.1', String(n.port), String(busPorts.get(n.port)));
    const deadline = Date.now() + readyWithinMs;
    for (;;) {
      const infos = (await Promise.all(nodes.map((n) => n.command('CLUSTER', 'INFO')))) as string[];
      if (infos.every((t) => t.includes('cluster_state:ok') && t.includes(`cluster_known_nodes:${masters}`) && t.includes('cluster_slots_assigned:16384'))) break;
      if (Date.now() > deadline) throw new Error(`the cluster did not reach cluster_state:ok within ${readyWithinMs} ms: ${infos.map((t) => t.split('\r\n').slice(0, 7).join(' ')).join(' | ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await Promise.allSettled(nodes.map((n) => n.server.stop()));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    nodes,
    urls: nodes.map((n) => n.url),
    async nodeFor(key) {
      const slot = (await nodes[0]!.command('CLUSTER', 'KEYSLOT', key)) as number;
      const shards = (await nodes[0]!.command('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, ...unknown[]], ...unknown[]]>;
      const shard = shards.find(([from, to]) => slot >= from && slot <= to);
      const node = nodes.find((n) => n.port === Number(shard?.[2][1]));
      if (!node) throw new Error(`no node serves slot ${slot}`);
      return { node, slot };
    },
    async close() {
      await Promise.allSettled(nodes.map((n) => n.server.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
