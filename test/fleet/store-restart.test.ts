/**
 * Redis restarted *with* its data (AOF): a server that may have lost the
 * last writes (the same rule covers a promoted replica). The store's run id
 * changed, so no acquisition happens for TTL + margin, while the leases it
 * kept go on renewing: the fleet's traffic does not stop.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { RedisStore } from '../../src/store/redis.js';
import { noRedis, startRedis, type RedisServer } from '../support/redis-server.js';

const ttl = 600;
const margin = 120;
const cand = (...keys: string[]) => keys.map((key) => ({ key, url: `http://${key}.example:1` }));

describe.skipIf(noRedis)('lease protocol: redis-server restarted with persistence', () => {
  let redis: RedisServer | undefined;
  let store: RedisStore | undefined;
  afterAll(async () => {
    await store?.close();
    await redis?.close();
  });

  it('leases survive the restart; new acquisitions wait TTL + margin', async () => {
    redis = await startRedis({ persist: true });
    store = new RedisStore({ url: redis.url, prefix: 'persist', timeoutMs: 2000 });
    await store.connect();
    const base = (epoch: string) => ({ instance: 'i1', ttl, margin, epoch, newEpoch: randomUUID() });
    const first = await store.acquire({ ...base(''), account: 'alice', exclusive: true, candidates: cand('p1') });
    expect(first.status).toBe('settling');
    await new Promise((r) => setTimeout(r, first.status === 'settling' ? first.retryIn + 10 : 0));
    const ok = await store.acquire({ ...base(first.epoch), account: 'alice', exclusive: true, candidates: cand('p1') });
    expect(ok).toMatchObject({ status: 'ok', proxy: 'p1' });
    await redis.stop();
    await redis.start();
    const renew = await (async () => {
      for (let i = 0; i < 100; i++) {
        try {
          return await store!.renew({ ...base(first.epoch), exclusive: true, accounts: [{ account: 'alice', ack: 1 }] });
        } catch {
          await new Promise((r) => setTimeout(r, 20)); // the client reconnecting
        }
      }
      throw new Error('store did not come back');
    })();
    expect(renew.status === 'ok' && renew.accounts[0]).toMatchObject({ held: true, proxy: 'p1' });
    const bob = await store.acquire({ ...base(first.epoch), account: 'bob', exclusive: true, candidates: cand('p2') });
    expect(bob.status).toBe('settling');
  }, 20_000);
});
