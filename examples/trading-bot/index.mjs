/**
 * Two exchange accounts, each in its own withProxy scope: every request a
 * ccxt instance makes — its own undici agent included — leaves through its
 * account's proxy, so the exchange sees one IP per account.
 *
 * Runs offline: a fake Binance on loopback, reached through two mock proxies
 * that leave from 127.0.0.2 and 127.0.0.3.
 *
 *   npm run build && node examples/trading-bot/index.mjs
 */
import ccxt from 'ccxt';
import { install, uninstall, withProxy } from 'session-proxy';
import { startMockProxy } from 'session-proxy/testing';
import { EXCHANGE_HOST, binanceOptions, startFakeExchange } from '../shared/fake-exchange.mjs';

const exchange = await startFakeExchange();
const hosts = { [EXCHANGE_HOST]: '127.0.0.1' };
const proxies = {
  alice: await startMockProxy({ egressIp: '127.0.0.2', hosts, auth: { username: 'alice', password: 'alice-secret' } }),
  bob: await startMockProxy({ egressIp: '127.0.0.3', hosts }),
};

// In production these are your real proxies, e.g. from a config file:
// install(loadConfig({ configFile: './proxies.json' })).
const manager = install({
  accounts: {
    alice: proxies.alice.urlFor('socks5h'),
    bob: proxies.bob.urlFor('http'),
  },
});

/** One bot: its own ccxt instance, created and used inside its account's scope. */
async function bot(account) {
  return withProxy(account, async () => {
    const binance = new ccxt.binance(binanceOptions(exchange.url, account));
    const time = await binance.fetchTime();
    const ticker = await binance.fetchTicker('BTC/USDT');
    return { account, proxy: manager.current(account).url, serverTime: time, last: ticker.last };
  });
}

try {
  const results = await Promise.all([bot('alice'), bot('bob')]);
  for (const r of results) {
    const seen = [...new Set(exchange.requests.filter((q) => q.account === r.account).map((q) => q.ip))];
    console.log(`${r.account.padEnd(5)} via ${r.proxy}: BTC/USDT last ${r.last}, exchange saw ${seen.join(', ')}`);
  }
  const byIp = new Map();
  for (const q of exchange.requests) byIp.set(q.ip, new Set([...(byIp.get(q.ip) ?? []), q.account]));
  const shared = [...byIp].filter(([, accounts]) => accounts.size > 1);
  console.log(shared.length ? `SHARED IPs: ${shared.map(([ip]) => ip).join(', ')}` : `${exchange.requests.length} requests, one IP per account`);
} finally {
  await uninstall();
  await Promise.all([exchange.close(), proxies.alice.close(), proxies.bob.close()]);
}
