/**
 * A fake exchange for the offline examples: answers the few Binance REST
 * endpoints ccxt calls for fetchTime / loadMarkets / fetchTicker, records
 * which IP each request came from, and can answer 429 to chosen IPs (an
 * exchange rate-limiting an address).
 *
 * It listens on 127.0.0.1 but is reached as `api.fake-exchange.test`: the
 * mock proxies resolve that name (their `hosts` option), so the examples keep
 * the default noProxy (loopback direct) and the exchange looks remote.
 */
import http from 'node:http';

export const EXCHANGE_HOST = 'api.fake-exchange.test';

const MARKET = {
  symbol: 'BTCUSDT',
  status: 'TRADING',
  baseAsset: 'BTC',
  baseAssetPrecision: 8,
  quoteAsset: 'USDT',
  quotePrecision: 8,
  quoteAssetPrecision: 8,
  orderTypes: ['LIMIT', 'MARKET'],
  isSpotTradingAllowed: true,
  isMarginTradingAllowed: false,
  filters: [
    { filterType: 'PRICE_FILTER', minPrice: '0.01', maxPrice: '1000000', tickSize: '0.01' },
    { filterType: 'LOT_SIZE', minQty: '0.00001', maxQty: '9000', stepSize: '0.00001' },
  ],
  permissions: ['SPOT'],
};

function ticker() {
  const now = Date.now();
  return {
    symbol: 'BTCUSDT', priceChange: '120.00', priceChangePercent: '0.24', weightedAvgPrice: '50010.00', prevClosePrice: '49880.00',
    lastPrice: '50000.00', lastQty: '0.010', bidPrice: '49999.99', bidQty: '1.2', askPrice: '50000.01', askQty: '0.8',
    openPrice: '49880.00', highPrice: '50500.00', lowPrice: '49500.00', volume: '1234.5', quoteVolume: '61725000.00',
    openTime: now - 86_400_000, closeTime: now, firstId: 1, lastId: 1000, count: 1000,
  };
}

/**
 * @param {{ rateLimitedIps?: Iterable<string> }} [options]
 * @returns {Promise<{ url: string, port: number, requests: Array<{ ip: string, path: string, account?: string, status: number }>, rateLimit(ip: string): void, close(): Promise<void> }>}
 */
export async function startFakeExchange(options = {}) {
  const limited = new Set(options.rateLimitedIps ?? []);
  const requests = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const ip = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const path = req.url ?? '/';
    const account = req.headers['x-account'];
    const send = (status, body) => {
      requests.push({ ip, path, account: typeof account === 'string' ? account : undefined, status });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (limited.has(ip)) return send(429, { code: -1003, msg: `Too many requests from ${ip}` });
    const { pathname } = new URL(path, 'http://x');
    if (pathname === '/api/v3/time') return send(200, { serverTime: Date.now() });
    if (pathname === '/api/v3/exchangeInfo') return send(200, { timezone: 'UTC', serverTime: Date.now(), rateLimits: [], exchangeFilters: [], symbols: [MARKET] });
    if (pathname === '/api/v3/ticker/24hr') return send(200, ticker());
    if (pathname === '/ip') return send(200, { ip });
    send(404, { code: -1, msg: `no such endpoint ${pathname}` });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://${EXCHANGE_HOST}:${port}`,
    port,
    requests,
    rateLimit: (ip) => limited.add(ip),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** ccxt options that point a Binance instance at the fake exchange. */
export function binanceOptions(exchangeUrl, account) {
  const api = `${exchangeUrl}/api/v3`;
  return {
    headers: { 'X-Account': account },
    urls: { api: { public: api, private: api } },
    // Only spot markets, and no currencies call: the fake exchange answers only these.
    options: { fetchMarkets: { types: ['spot'] }, fetchCurrencies: false },
  };
}
