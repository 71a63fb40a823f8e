/**
 * The `store` option's Cluster and Sentinel forms, as code, config files and
 * SESSION_PROXY_STORE give them: what each parses to (nodes, name,
 * database, TLS, credentials), what is shown of it (the URL form with the
 * password masked), and refusals by key path that never carry the password,
 * plain or percent-encoded.
 */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SessionProxyManager, loadConfig } from '../../src/index.js';
import { resolveStore } from '../../src/store/index.js';
import { describeTarget, parseStoreTarget } from '../../src/store/target.js';
import { toDocument } from '../../src/config/serialize.js';
import { configErrorWithout } from '../ecosystem/support/config-error.js';

const accounts = { alice: 'http://127.0.0.1:9' };
const secret = 'S3cr/t@pw';
const enc = encodeURIComponent(secret);

describe('store: Redis Cluster and Sentinel locations', () => {
  it('redis+cluster:// and { cluster }: the nodes, one scheme, the credentials for every node', () => {
    const url = parseStoreTarget(`redis+cluster://bot:${enc}@10.0.0.1:7000,10.0.0.2,[::1]:7002`);
    expect(url).toEqual({ kind: 'cluster', tls: false, nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 6379 }, { host: '::1', port: 7002 }] });
    expect(url.kind === 'cluster' && url.auth).toEqual({ username: 'bot', password: secret });
    const list = parseStoreTarget({ cluster: [`rediss://:${enc}@h1:7000`, 'rediss://h2:7001'] });
    expect(list).toMatchObject({ kind: 'cluster', tls: true, nodes: [{ host: 'h1', port: 7000 }, { host: 'h2', port: 7001 }] });
    expect(list.kind === 'cluster' && list.auth).toEqual({ password: secret });
    // Credentials never print: not enumerable, masked in the shown form.
    expect(inspect(list) + JSON.stringify(list)).not.toContain(secret.slice(0, 5));
    expect(describeTarget(url)).toBe('redis+cluster://bot:***@10.0.0.1:7000,10.0.0.2:6379,[::1]:7002');
    expect(describeTarget(list)).toBe('rediss+cluster://:***@h1:7000,h2:7001');
  });

  it('redis+sentinel:// and { sentinel }: the name, the sentinels, the database, the data nodes’ credentials', () => {
    const url = parseStoreTarget(`rediss+sentinel://:${enc}@s1:26380,s2/my%20master/3`);
    expect(url).toEqual({ kind: 'sentinel', name: 'my master', tls: true, database: 3, nodes: [{ host: 's1', port: 26380 }, { host: 's2', port: 26379 }] });
    expect(url.kind === 'sentinel' && url.auth).toEqual({ password: secret });
    expect(describeTarget(url)).toBe('rediss+sentinel://:***@s1:26380,s2:26379/my%20master/3');
    const obj = parseStoreTarget({ sentinel: { name: 'mymaster', nodes: ['redis://s1:26379', 'redis://s2:26379'] } });
    expect(obj).toEqual({ kind: 'sentinel', name: 'mymaster', tls: false, nodes: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }] });
    expect(describeTarget(obj)).toBe('redis+sentinel://s1:26379,s2:26379/mymaster');
  });

  it('the manager, config files, SESSION_PROXY_STORE and children take every form', () => {
    const forms = [
      'redis+cluster://127.0.0.1:7000,127.0.0.1:7001',
      'redis+sentinel://127.0.0.1:26379/mymaster',
      { cluster: ['redis://127.0.0.1:7000'], prefix: 'bots', leaseTtl: 5000 },
      { sentinel: { name: 'mymaster', nodes: ['redis://127.0.0.1:26379'], database: 2 } },
    ];
    for (const store of forms) {
      expect(() => new SessionProxyManager({ accounts, store })).not.toThrow();
      expect(loadConfig({ accounts, store }, {}).store).toEqual(store);
      expect(toDocument({ accounts, store }).store).toEqual(store);
    }
    expect(loadConfig({ accounts }, { SESSION_PROXY_STORE: ' redis+sentinel://s1:26379,s2:26379/mymaster ' }).store).toBe('redis+sentinel://s1:26379,s2:26379/mymaster');
    expect(resolveStore({ sentinel: { name: 'm', nodes: [`redis://:${enc}@s1:1`] } }).where).toBe('redis+sentinel://:***@s1:1/m');
  });

  it('refuses each malformed form by key path, never showing the password', () => {
    const bad: Array<[unknown, RegExp]> = [
      [`redis+cluster://:${enc}@`, /^store: expected redis\+cluster:\/\/.*host 1: empty/],
      [`redis+cluster://:${enc}@h1:7000,,h3`, /^store: .*host 2: empty/],
      [`redis+cluster://:${enc}@h1:99999`, /^store: .*host 1: the port is out of range/],
      [`redis+cluster://:${enc}@h1:7000/2`, /^store: .*a Cluster URL has no path/],
      [`redis+cluster://:${enc}@h1:7000?tls=1`, /^store: .*query parameters/],
      [`redis+cluster://bob@h1:7000`, /^store: .*a user name alone cannot log in/],
      [`redis+sentinel://:${enc}@s1:26379`, /^store: expected redis\+sentinel:\/\/.*the primary’s name .* is missing/],
      [`redis+sentinel://:${enc}@s1:26379/m/x`, /^store: .*the database is not a whole number/],
      [`redis+sentinel://:${enc}@s1:26379/m/1/2`, /^store: .*the path is \/name or \/name\/db/],
      [`redis+sentinel://:${enc}@s 1/m`, /^store: .*space/],
      [`redis+sentinal://:${enc}@s1/m`, /^store: expected a redis:\/\/.*got a string/],
      [{ cluster: [] }, /^store\.cluster: expected a non-empty array/],
      [{ cluster: [`redis://:${enc}@h1:7000`, 'h2:7001'] }, /^store\.cluster\[1\]: expected a redis:\/\/\[user:password@\]host:port or rediss:\/\/… URL string, got a string/],
      [{ cluster: [`redis://:${enc}@h1:7000/3`] }, /^store\.cluster\[0\]: .*no path/],
      [{ cluster: [`redis://:${enc}@h1:7000`, 'rediss://h2:7001'] }, /^store\.cluster\[1\]: every node must use the same scheme/],
      [{ cluster: [`redis://:${enc}@h1:7000`, 'redis://:other@h2:7001'] }, /^store\.cluster\[1\]: the credentials differ from those in cluster\[0\]/],
      [{ url: `redis://:${enc}@r`, cluster: ['redis://h1:7000'] }, /^store\.cluster: only one of url, cluster and sentinel/],
      [{ sentinel: { name: 'm' } }, /^store\.sentinel\.nodes: expected a non-empty array/],
      [{ sentinel: { nodes: ['redis://s1:26379'] } }, /^store\.sentinel\.name: expected/],
      [{ sentinel: { name: 'a b', nodes: ['redis://s1:26379'] } }, /^store\.sentinel\.name: expected .*without spaces/],
      [{ sentinel: { name: 'm', nodes: ['redis://s1:26379'], database: -1 } }, /^store\.sentinel\.database: expected a whole number >= 0/],
      [{ sentinel: { name: 'm', nodes: [`redis://:${enc}@s1:26379`], master: 'x' } }, /^store\.sentinel\.master: unknown key/],
      [{ sentinel: { name: 'm', nodes: [`redis://:${enc}@s1:26379`, 'redis://:x@s2:26379'] } }, /^store\.sentinel\.nodes\[1\]: the credentials differ/],
      [{ cluster: 'redis://h1:7000' }, /^store\.cluster: expected a non-empty array/],
    ];
    for (const [store, message] of bad) {
      const err = configErrorWithout([secret], () => new SessionProxyManager({ accounts, store: store as never }));
      expect(err.message, JSON.stringify(store)).toMatch(message);
    }
    // The same refusals from the environment name the variable.
    const env = configErrorWithout([secret], () => loadConfig({ accounts }, { SESSION_PROXY_STORE: `redis+cluster://:${enc}@h1:7000/1` }));
    expect(env.message).toMatch(/^SESSION_PROXY_STORE: .*a Cluster URL has no path/);
    // And resolveStore, which the CLI calls without the validator.
    expect(configErrorWithout([secret], () => resolveStore(`redis+sentinel://:${enc}@s1`)).message).toMatch(/^store: .*is missing/);
  });
});
