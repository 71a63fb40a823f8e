/**
 * Rotate an account to the next proxy of its pool when the exchange answers
 * 429 (rate limited by IP), then retry. `closeExisting` drops the kept-alive
 * connections ccxt's agent still holds through the old proxy, so the retry
 * really leaves from the new IP.
 *
 * Runs offline: a fake Binance that rate-limits 127.0.0.2, and mock proxies
 * leaving from 127.0.0.2 / 127.0.0.4 (alice's pool) and 127.0.0.3 (bob).
 *
 *   npm run build && node examples/rotate-on-429/index.mjs
 */
import ccxt from 'ccxt';
import { install, rotate, uninstall, withProxy } from 'session-proxy';
import { startMockProxy } from 'session-proxy/testing';
import { EXCHANGE_HOST, binanceOptions, startFakeExchange } from '../shared/fake-exchange.mjs';

const exchange = await startFakeExchange({ rateLimitedIps: ['127.0.0.2'] });
const hosts = { [EXCHANGE_HOST]: '127.0.0.1' };
const started = await Promise.all(['127.0.0.2', '127.0.0.4', '127.0.0.3'].map((egressIp) => startMockProxy({ egressIp, hosts })));
const [alice1, alice2, bob1] = started;

const manager = install({
  accounts: {
    alice: [alice1.url, alice2.urlFor('socks5h')], // a pool: the first is active
    bob: bob1.url,
  },
});
manager.on('rotate', (e) => console.log(`${e.account}: rotated ${e.from.url} → ${e.to.url} (${e.reason})`));

/** Calls `fn`; on a 429 rotates the scope's account and tries again, at most `attempts` times. */
async function withRotation(account, fn, attempts = 3) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const limited = err instanceof ccxt.DDoSProtection || err instanceof ccxt.RateLimitExceeded;
      if (!limited || attempt >= attempts) throw err;
      console.log(`${account}: rate limited (${err.constructor.name}) on attempt ${attempt}, rotating`);
      await rotate(account, { closeExisting: true });
    }
  }
}

async function bot(account) {
  return withProxy(account, async () => {
    const binance = new ccxt.binance(binanceOptions(exchange.url, account));
    // fetchTime is a plain request; note that ccxt caches a failed loadMarkets
    // promise, so retry market loading with loadMarkets(true).
    await withRotation(account, () => binance.fetchTime());
    await withRotation(account, () => binance.loadMarkets(true));
    const ticker = await withRotation(account, () => binance.fetchTicker('BTC/USDT'));
    const last = exchange.requests.filter((q) => q.account === account && q.status === 200).at(-1);
    console.log(`${account}: BTC/USDT last ${ticker.last}, served to ${last.ip}`);
  });
}

try {
  await bot('alice');
  await bot('bob');
  const refused = exchange.requests.filter((q) => q.status === 429).map((q) => `${q.account}@${q.ip}`);
  console.log(`429s: ${refused.join(', ') || 'none'}`);
} finally {
  await uninstall();
  await Promise.all([exchange.close(), ...started.map((p) => p.close())]);
}
