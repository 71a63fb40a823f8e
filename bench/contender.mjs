#!/usr/bin/env node
/**
 * One contender, in its own fresh process:
 *
 *   node --expose-gc bench/contender.mjs <name> [--key=value …]
 *
 * The servers (echo, proxies) run in the parent (bench/run.mjs), which passes
 * their addresses in the BENCH_CONFIG environment variable (JSON) and trusts
 * the echo server's test CA through NODE_EXTRA_CA_CERTS, so no client needs a
 * `ca` option and every client verifies the certificate the same way.
 *
 * Prints one line `BENCH_RESULT {json}` on stdout; anything else is noise.
 *
 * Like for like: each hand-wired reference uses the same client function as
 * the session-proxy contender it is compared with —
 *   global fetch + `dispatcher:` (undici 7 ProxyAgent / Socks5ProxyAgent / Agent)
 *     vs global fetch inside manager.withProxy();
 *   https.get + `agent:` (https-proxy-agent / socks-proxy-agent / https.Agent)
 *     vs https.get inside manager.withProxy().
 * Session-proxy contenders enter the scope per request (withProxy around each
 * request), the stricter of the two ways an app can use it.
 */
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sequential, concurrent, fixedCount, warmup, heapAfterGc, openFds, sleep, now, quantile } from './lib/measure.mjs';

const [name, ...rest] = process.argv.slice(2);
const args = Object.fromEntries(
  rest.filter((a) => a.startsWith('--')).map((a) => {
    const [k, v = 'true'] = a.slice(2).split('=');
    return [k, v];
  }),
);
const config = JSON.parse(process.env.BENCH_CONFIG ?? '{}');
if (!config.echo) {
  console.error('contender.mjs is started by bench/run.mjs (BENCH_CONFIG is missing)');
  process.exit(2);
}
const budget = config.budget;
const TARGET = `${config.echo.httpsUrl}/ip`;
const TARGET_HTTP = `${config.echo.httpUrl}/ip`;

const proxyUrl = (key = args.proxy) => {
  const url = config.proxies[key];
  if (!url) throw new Error(`proxy "${key}" is not available in this run`);
  return url;
};

const lib = () => import(pathToFileURL(path.join(config.dist, 'index.mjs')).href);
const undici = () => import('undici');

// --- the two client functions ------------------------------------------------

/** Global fetch, optionally with a dispatcher; the body is read to the end. */
async function fetchOnce(url, dispatcher) {
  const res = await fetch(url, dispatcher ? { dispatcher } : undefined);
  const body = await res.arrayBuffer();
  if (res.status !== 200 || body.byteLength === 0) throw new Error(`fetch ${url}: status ${res.status}`);
}

/** https.get (or http.get), optionally with an agent; the body is read to the end. */
function getOnce(url, agent, mod = https) {
  return new Promise((resolve, reject) => {
    const req = mod.get(url, agent ? { agent } : {}, (res) => {
      if (res.statusCode !== 200) reject(new Error(`get ${url}: status ${res.statusCode}`));
      res.on('data', () => undefined);
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

// --- setups: each returns { request(i), close?() } -----------------------------

async function installManager(options) {
  const { SessionProxyManager } = await lib();
  return new SessionProxyManager(options).install();
}

const setups = {
  /** The floor: global fetch with a plain undici 7 Agent, no proxy. */
  async 'fetch-direct'() {
    const { Agent } = await undici();
    const agent = new Agent();
    return { request: () => fetchOnce(TARGET, agent), close: () => agent.close() };
  },
  /** Reference: global fetch with a hand-wired undici ProxyAgent. */
  async 'fetch-proxyagent'() {
    const { ProxyAgent } = await undici();
    const agent = new ProxyAgent(proxyUrl());
    return { request: () => fetchOnce(TARGET, agent), close: () => agent.close() };
  },
  /** Reference (SOCKS5): global fetch with a hand-wired undici Socks5ProxyAgent (experimental in undici 7). */
  async 'fetch-socks5agent'() {
    const { Socks5ProxyAgent } = await undici();
    if (typeof Socks5ProxyAgent !== 'function') throw new Error('this undici has no Socks5ProxyAgent');
    const agent = new Socks5ProxyAgent(proxyUrl());
    return { request: () => fetchOnce(TARGET, agent), close: () => agent.close() };
  },
  /** session-proxy: global fetch inside withProxy (the dispatcher layer). */
  async 'fetch-sp'() {
    const m = await installManager({ accounts: { a: proxyUrl() }, noProxy: [] });
    return { request: () => m.withProxy('a', () => fetchOnce(TARGET)), close: () => m.uninstall() };
  },
  /**
   * session-proxy, socket layer: a ccxt-style app-owned undici.Agent used
   * inside the scope; its connections go through the loopback relay.
   */
  async 'fetch-sp-own-agent'() {
    const m = await installManager({ accounts: { a: proxyUrl() }, noProxy: [] });
    const { Agent } = await undici();
    const own = new Agent();
    return {
      request: () => m.withProxy('a', () => fetchOnce(TARGET, own)),
      close: async () => {
        await own.close();
        await m.uninstall();
      },
    };
  },
  /** The floor for https.get: a keep-alive https.Agent, no proxy. */
  async 'get-direct'() {
    const agent = new https.Agent({ keepAlive: true });
    return { request: () => getOnce(TARGET, agent), close: () => agent.destroy() };
  },
  /** Reference: https.get with https-proxy-agent, keepAlive: true. */
  async 'get-hpa'() {
    const { HttpsProxyAgent } = await import('https-proxy-agent');
    const agent = new HttpsProxyAgent(proxyUrl(), { keepAlive: true });
    return { request: () => getOnce(TARGET, agent), close: () => agent.destroy() };
  },
  /** Reference (SOCKS5): https.get with socks-proxy-agent, keepAlive: true. */
  async 'get-spa'() {
    const { SocksProxyAgent } = await import('socks-proxy-agent');
    const agent = new SocksProxyAgent(proxyUrl(), { keepAlive: true });
    return { request: () => getOnce(TARGET, agent), close: () => agent.destroy() };
  },
  /** global-agent: bootstrap() with GLOBAL_AGENT_HTTP_PROXY (http:// proxies only; no keep-alive). */
  async 'get-global-agent'() {
    const url = proxyUrl();
    if (!url.startsWith('http://')) throw new Error('global-agent only supports http:// proxies');
    process.env.GLOBAL_AGENT_HTTP_PROXY = url;
    const ga = await import('global-agent');
    (ga.bootstrap ?? ga.default.bootstrap)();
    return { request: () => getOnce(TARGET) };
  },
  /** session-proxy: https.get inside withProxy (the http layer). */
  async 'get-sp'() {
    const m = await installManager({ accounts: { a: proxyUrl() }, noProxy: [] });
    return { request: () => m.withProxy('a', () => getOnce(TARGET)), close: () => m.uninstall() };
  },
};

// --- scenario 8: the fleet store ---------------------------------------------------

/**
 * N accounts (default 8), each its own identity on the mock proxy, requests
 * round-robin over them, each in withProxy(account) — the same client and
 * scope as scenario 1's session-proxy contenders — with or without the
 * `store` option (--store=memory|redis, --ttl=leaseTtl ms):
 *   fleet-fetch / fleet-get              no store (the reference)
 *   fleet-fetch-store / fleet-get-store  the same accounts with `store`
 * Every account makes its first request before the setup returns (with a
 * store: its lease; a new in-process store first settles TTL + margin, as
 * a brand-new fleet does), so the warm-up and the time boxes only see
 * accounts whose leases hold and are renewed in the background.
 */
async function fleetSetup(client, withStore) {
  const n = Number(args.accounts ?? 8);
  const store = withStore ? fleetStoreOption() : undefined;
  const observer = store && args.store === 'redis' ? await redisObserver(store) : undefined;
  const base = new URL(proxyUrl('mock'));
  const accounts = {};
  const names = [];
  for (let i = 0; i < n; i++) {
    const u = new URL(base);
    u.username = `fleet${i}`;
    u.password = `pw${i}`;
    names.push(`acct${i}`);
    accounts[`acct${i}`] = u.href;
  }
  const m = await installManager({ accounts, noProxy: [], ...(store ? { store } : {}) });
  const one = client === 'fetch' ? () => fetchOnce(TARGET) : () => getOnce(TARGET);
  await Promise.all(names.map((name) => m.withProxy(name, one)));
  return {
    request: (i) => m.withProxy(names[i % n], one),
    observer,
    close: () => m.uninstall(),
  };
}

function fleetStoreOption() {
  const ttl = args.ttl === undefined ? {} : { leaseTtl: Number(args.ttl) };
  if (args.store === 'memory') return { url: 'memory:', ...ttl };
  if (args.store === 'redis') {
    if (!config.redis) throw new Error('redis-server is not available in this run');
    return { url: config.redis.url, prefix: config.redis.prefix, ...ttl };
  }
  throw new Error(`--store=memory|redis, not ${args.store}`);
}

/** The fleet coordinator's timers (routing/fleet.ts defaults): the only source of store calls while leases hold. */
const FLEET_POLL_MS = 500;
const FLEET_STATS_MS = 2000;
const renewEvery = (ttl) => Math.max(100, Math.floor(ttl / 3));
const FLEET_STARTUP_CALLS = 2 + 4 + 4;

/**
 * Watches the bench's redis-server from a client of its own, one per
 * process (connected before the first manager is installed, kept across
 * paired blocks so that a B block sets up exactly what an app does; it
 * sends nothing inside a time box):
 * `INFO stats commandstats` before and after a box gives the store's round
 * trips (EVALSHA/EVAL calls: every store operation is one, store/redis.ts)
 * and every command the server ran (including those inside the scripts);
 * a keyspace notification per HSET of acct0's holders hash counts lease
 * renewal cycles (one call renews all accounts).
 */
let observing;
function redisObserver(store) {
  return (observing ??= startObserver(store));
}

async function startObserver(store) {
  const ttl = store.leaseTtl ?? 15_000;
  const { createClient } = await import('redis');
  const client = createClient({ url: store.url });
  client.on('error', () => undefined);
  await client.connect();
  const sub = client.duplicate();
  sub.on('error', () => undefined);
  await sub.connect();
  let renewals = 0;
  await sub.subscribe(`__keyspace@0__:{${store.prefix}}:h:acct0`, (event) => {
    if (event === 'hset') renewals++;
  });
  const field = (text, re) => Number(re.exec(text)?.[1] ?? 0);
  return {
    async sample() {
      const info = String(await client.sendCommand(['INFO', 'stats', 'commandstats']));
      return { cmds: field(info, /total_commands_processed:(\d+)/), calls: field(info, /cmdstat_evalsha:calls=(\d+)/) + field(info, /cmdstat_eval:calls=(\d+)/), renewals };
    },
    /**
     * The box's figures. `timerCalls`: the most calls the coordinator's
     * background work can make in it — polls, renewals, stats flushes (one
     * tick more each for the edges), plus the renewal and the health read a
     * poll adds the first time it learns the store's versions; and with
     * `box.fresh` (a paired block, timed right after its manager was
     * installed) the startup's own calls: hello + poll at start, and a
     * resync (hello, poll, renewal, health) when the client connects and
     * again when the subscriber is ready.
     */
    delta(a, b, box) {
      const w = box.wallMs;
      const timerCalls = Math.floor(w / FLEET_POLL_MS) + 1 + Math.floor(w / renewEvery(ttl)) + 1 + Math.floor(w / FLEET_STATS_MS) + 1 + 2 + (box.fresh ? FLEET_STARTUP_CALLS : 0);
      // The first INFO itself is counted in the second sample.
      return perThousand({ requests: box.n, windowMs: w, calls: b.calls - a.calls, cmds: b.cmds - a.cmds - 1, renewals: b.renewals - a.renewals, timerCalls, excess: b.calls - a.calls - timerCalls });
    },
    async close() {
      sub.destroy();
      client.destroy();
    },
  };
}

function perThousand(x) {
  return { ...x, callsPer1k: (1000 * x.calls) / x.requests, cmdsPer1k: (1000 * x.cmds) / x.requests };
}

/** Several boxes (paired blocks) as one: sums; `excess` is the worst box's. */
function sumWindows(list) {
  const sum = (k) => list.reduce((t, x) => t + x[k], 0);
  return perThousand({ boxes: list.length, requests: sum('requests'), windowMs: sum('windowMs'), calls: sum('calls'), cmds: sum('cmds'), renewals: sum('renewals'), timerCalls: sum('timerCalls'), excess: Math.max(...list.map((x) => x.excess)) });
}

Object.assign(setups, {
  'fleet-fetch': () => fleetSetup('fetch', false),
  'fleet-fetch-store': () => fleetSetup('fetch', true),
  'fleet-get': () => fleetSetup('get', false),
  'fleet-get-store': () => fleetSetup('get', true),
});

/**
 * Scenario 8's renewal figure: 10,000 accounts' leases held by one process,
 * renewed in batches of 1000 (bench/fleet-renewals.mjs), against the
 * bench's redis-server under a prefix of its own.
 */
async function fleetRenewals() {
  if (!config.redis) throw new Error('redis-server is not available in this run');
  const { measureRenewals, medianOf } = await import('./fleet-renewals.mjs');
  const r = await measureRenewals({ url: config.redis.url, n: Number(args.n ?? 10_000), cycles: Number(args.cycles ?? 5) });
  const cycleMs = medianOf(r.rounds.map((x) => x.ms));
  return {
    ...r,
    renewals: {
      cycleMs,
      perTtlMs: (r.ttl / r.intervalMs) * cycleMs,
      ttlSharePct: (100 * (r.ttl / r.intervalMs) * cycleMs) / r.ttl,
      intervalSharePct: (100 * cycleMs) / r.intervalMs,
      cpuMsPerCycle: medianOf(r.rounds.map((x) => x.cpuMs)),
      longestBatchMs: Math.max(...r.rounds.map((x) => x.longestBatchMs)),
      acquireUs: (1000 * r.acquireMs) / r.n,
    },
  };
}

// --- workloads ------------------------------------------------------------------

/** Scenarios 1, 2, 3, 6: sequential then 32-way concurrent, after a count-based warm-up. */
async function seqconc(setupName) {
  const setup = await setups[setupName]();
  const out = {};
  // --seqMs / --concMs: a group's own time boxes (scenario 8's are longer, so renewals fall inside them).
  const seqMs = Number(args.seqMs ?? budget.seqMs);
  const concMs = Number(args.concMs ?? budget.concMs);
  out.warmupRequests = await warmup(setup.request, { count: budget.warmCount, ms: budget.warmMs });
  out.seq = await storeWindow(setup, () => sequential(setup.request, { ms: seqMs, max: 1e6, min: 20 }));
  if (args.conc !== 'false') {
    const concurrency = Number(args.concurrency ?? 32);
    // Opens the 32 connections before the clock starts.
    await concurrent(setup.request, { ms: 150, max: 4 * concurrency, concurrency });
    out.conc = await storeWindow(setup, () => concurrent(setup.request, { ms: concMs, max: 1e6, concurrency }));
  }
  await setup.close?.();
  return out;
}

/** A time box; with a Redis store, what the store's server did during it (`store`, see redisObserver). */
async function storeWindow(setup, box) {
  if (!setup.observer) return box();
  const before = await setup.observer.sample();
  const r = await box();
  r.store = setup.observer.delta(before, await setup.observer.sample(), r);
  return r;
}

/**
 * Paired in one process (scenarios 1, 3): setup A (a hand-wired reference)
 * and setup B (session-proxy) alternate in blocks, in triplets A B A; each
 * block builds its setup (B installs a manager, A creates its agent), opens
 * its connections untimed, times `block` requests, and tears down. Both use
 * the same client function, so they share its JIT state; what differs is
 * the routing. ratio = B's throughput / A's (the middle block against the
 * mean of the two around it); aa = first / second block of the same setup
 * in a triplet. Median over triplets.
 */
async function paired() {
  const A = args.a;
  const B = args.b;
  const med = (a) => quantile([...a].sort((x, y) => x - y), 0.5);
  const q = (a, p) => quantile([...a].sort((x, y) => x - y), p);
  // --startupMs (scenario 8): untimed requests until this long after the block's install, A and B alike:
  // a store manager's startup (connect, hello, two resyncs, the first poll at 500 ms and its catch-up)
  // is over before the clock starts. An app installs once; its startup is not the request path.
  const startupMs = Number(args.startupMs ?? 0);
  const runBlock = async (name, concurrency, block, timed = true) => {
    const installed = now();
    const setup = await setups[name]();
    await fixedCount(setup.request, { count: Math.max(2 * concurrency, 10), concurrency });
    if (startupMs && timed) await warmup(setup.request, { count: 1e6, ms: installed + startupMs - now(), concurrency });
    const s0 = await setup.observer?.sample();
    const c0 = process.cpuUsage();
    const t0 = now();
    if (concurrency === 1) for (let i = 0; i < block; i++) await setup.request(i);
    else await fixedCount(setup.request, { count: block, concurrency });
    const wall = now() - t0;
    const cpu = process.cpuUsage(c0);
    if (s0) storeTotals.push(setup.observer.delta(s0, await setup.observer.sample(), { n: block, wallMs: wall, fresh: true }));
    await setup.close?.();
    return { wall, cpu: cpu.user + cpu.system };
  };
  /** With a Redis store (scenario 8): what its server did during the timed blocks. */
  let storeTotals = [];
  // Warm-up: both setups, alternating, until warmCount requests were made.
  for (let done = 0, k = 0; done < budget.warmCount && k < 40; k++) {
    await runBlock(k % 2 ? B : A, 8, 100, false);
    done += 110;
  }
  const out = { a: A, b: B };
  for (const mode of (args.modes ?? 'seq,conc').split(',')) {
    const concurrency = mode === 'seq' ? 1 : 32;
    const block = Number(args.block ?? (mode === 'seq' ? 150 : 800));
    const ratio = [];
    const cpuRatio = [];
    const aa = [];
    // --pairedMs: a group's own time per mode (scenario 8's B blocks each connect to Redis and take their leases first).
    const deadline = now() + Number(args.pairedMs ?? budget.pairedMs);
    storeTotals = [];
    // Triplets alternate A B A and B A B, so an effect of position (what ran
    // just before a block) falls on both setups equally.
    for (let k = 0; k < 100 && (k < 4 || now() < deadline); k++) {
      if (k % 2 === 0) {
        const a1 = await runBlock(A, concurrency, block);
        const b = await runBlock(B, concurrency, block);
        const a2 = await runBlock(A, concurrency, block);
        ratio.push((a1.wall + a2.wall) / 2 / b.wall);
        cpuRatio.push(b.cpu / ((a1.cpu + a2.cpu) / 2));
        aa.push(a1.wall / a2.wall);
      } else {
        const b1 = await runBlock(B, concurrency, block);
        const a = await runBlock(A, concurrency, block);
        const b2 = await runBlock(B, concurrency, block);
        ratio.push(a.wall / ((b1.wall + b2.wall) / 2));
        cpuRatio.push((b1.cpu + b2.cpu) / 2 / a.cpu);
        aa.push(b1.wall / b2.wall);
      }
    }
    out[mode] = { triplets: ratio.length, block, ratio: med(ratio), ratioP25: q(ratio, 0.25), ratioP75: q(ratio, 0.75), cpuRatio: med(cpuRatio), aa: med(aa), aaP25: q(aa, 0.25), aaP75: q(aa, 0.75) };
    if (storeTotals.length) out[mode].store = sumWindows(storeTotals);
  }
  return out;
}

/**
 * Scenario 5: un-scoped, direct traffic (loopback is in the default noProxy)
 * with a manager installed (a default proxy set, so every request is
 * routed and matched against noProxy) or only imported. Plain HTTP
 * keep-alive: the cheapest request there is, so a fixed per-request cost of
 * the hooks is the largest share it can be.
 */
const OVERHEAD_PHASES = {
  'fetch-http': () => fetchOnce(TARGET_HTTP),
  'get-http': () => getOnce(TARGET_HTTP, undefined, http),
  'fetch-https': () => fetchOnce(TARGET),
};

/** A default proxy (so un-scoped traffic is routed, and bypassed by noProxy) and one account with its own identity. */
function overheadOptions() {
  const account = new URL(proxyUrl());
  account.username = 'acct';
  account.password = 'pw';
  return { proxy: proxyUrl(), accounts: { a: account.href } };
}

async function overhead() {
  const mod = await lib();
  let m;
  if (args.install === 'true') m = new mod.SessionProxyManager(overheadOptions()).install();
  const out = {};
  for (const phase of (args.phases ?? 'fetch-http,get-http').split(',')) {
    const request = OVERHEAD_PHASES[phase];
    await warmup(request, { count: budget.warmCount, ms: budget.warmMs });
    out[phase] = await sequential(request, { ms: budget.seqMs, max: 1e6, min: 20 });
  }
  await m?.uninstall();
  return out;
}

/**
 * Scenario 5, paired in one process: blocks of B sequential requests with
 * the manager installed (I) and not installed (P), in triplets P I P with
 * the order of each triplet alternating (P I P, then P I P reversed in
 * time…): overhead = I / mean(P, P), A/A = P2 / P1, median over triplets.
 * Process-to-process variance (JIT, placement) cancels out; what is left
 * is the hooks' cost. Complements the fresh-process rounds.
 */
async function overheadPaired() {
  const { SessionProxyManager } = await lib();
  const options = overheadOptions();
  const block = Number(args.block ?? 200);
  const out = {};
  for (const phase of (args.phases ?? 'fetch-http,get-http').split(',')) {
    const request = OVERHEAD_PHASES[phase];
    const timeBlock = async (installed) => {
      const m = installed ? new SessionProxyManager(options).install() : undefined;
      const c0 = process.cpuUsage();
      const t0 = now();
      for (let i = 0; i < block; i++) await request(i);
      const wall = now() - t0;
      const cpu = process.cpuUsage(c0);
      await m?.uninstall();
      return { wall, cpu: cpu.user + cpu.system };
    };
    // Both modes warm.
    for (const installed of [true, false, true, false]) {
      const m = installed ? new SessionProxyManager(options).install() : undefined;
      await warmup(request, { count: budget.warmCount / 2, ms: budget.warmMs / 2 });
      await m?.uninstall();
    }
    const over = [];
    const overCpu = [];
    const aa = [];
    const deadline = now() + budget.pairedMs;
    for (let k = 0; k < 200 && (k < 4 || now() < deadline); k++) {
      const p1 = await timeBlock(false);
      const i1 = await timeBlock(true);
      const p2 = await timeBlock(false);
      over.push(i1.wall / ((p1.wall + p2.wall) / 2) - 1);
      overCpu.push(i1.cpu / ((p1.cpu + p2.cpu) / 2) - 1);
      aa.push(p2.wall / p1.wall - 1);
    }
    const med = (a) => quantile([...a].sort((x, y) => x - y), 0.5);
    const q = (a, p) => quantile([...a].sort((x, y) => x - y), p);
    out[phase] = {
      triplets: over.length,
      block,
      overheadPct: 100 * med(over),
      overheadP25Pct: 100 * q(over, 0.25),
      overheadP75Pct: 100 * q(over, 0.75),
      cpuOverheadPct: 100 * med(overCpu),
      aaPct: 100 * med(aa),
      aaP25Pct: 100 * q(aa, 0.25),
      aaP75Pct: 100 * q(aa, 0.75),
    };
  }
  return out;
}

/**
 * Scenario 4: N accounts, each with its own identity on ONE mock proxy that
 * accepts any credentials; requests round-robin over them, 32 in flight.
 *
 * States measured (heap after gc, open descriptors):
 * - empty: manager installed, no account;
 * - configured: N accounts configured, never used;
 * - baseline: configured, after the request code paths were compiled (two
 *   extra accounts used, then removed), so "after idle" is compared with a
 *   state that already holds the JIT code every first request creates;
 * - active: after the requests; afterIdle: after the idle timeout.
 */
async function accounts() {
  const n = Number(args.n);
  const idle = args.idle === undefined || args.idle === '0' ? undefined : Number(args.idle);
  const client = args.client ?? 'fetch';
  const { SessionProxyManager } = await lib();
  const base = new URL(proxyUrl('mock'));
  const identity = (prefix, i) => {
    const u = new URL(base);
    u.username = `${prefix}${i}`;
    u.password = `pw${i}`;
    return u.href;
  };
  const opts = { noProxy: [] };
  if (idle !== undefined) opts.idleTimeout = idle;
  const m = new SessionProxyManager(opts).install();
  // Let the relay start listening and module-level lazies settle.
  await sleep(50);
  const out = { n, idleTimeout: idle ?? null, client };
  out.emptyHeap = await heapAfterGc();
  out.emptyFds = openFds();
  const names = [];
  for (let i = 0; i < n; i++) {
    m.setAccount(`acct${i}`, identity('user', i));
    names.push(`acct${i}`);
  }
  out.configuredHeap = await heapAfterGc();
  out.configuredFds = openFds();
  out.idleAccountsHeapDelta = out.configuredHeap - out.emptyHeap;

  const one = client === 'fetch' ? () => fetchOnce(TARGET) : () => getOnce(TARGET);
  const concurrency = Number(args.concurrency ?? 32);
  // Compile the request paths (new tunnels, TLS, keep-alive reuse) on two extra accounts, then remove them.
  m.setAccount('warm0', identity('warm', 0));
  m.setAccount('warm1', identity('warm', 1));
  await warmup((i) => m.withProxy(`warm${i % 2}`, one), { count: 300, ms: budget.warmMs, concurrency });
  await m.removeAccount('warm0');
  await m.removeAccount('warm1');
  await sleep(100);
  out.baselineHeap = await heapAfterGc();
  out.baselineFds = openFds();

  const request = (i) => m.withProxy(names[i % n], one);
  // Cold: the first request of every account opens its tunnel and TLS session (bounded at 10 s).
  out.cold = await concurrent(request, { ms: 10_000, max: n, concurrency });
  // Warm-up: the same count-based JIT warm-up as every contender, and at
  // least one more pass over the accounts, so every account has its connection.
  await warmup(request, { count: Math.max(budget.warmCount, n), ms: budget.warmMs * 2, concurrency });
  out.warm = await concurrent(request, { ms: budget.accountsMs, max: 1e6, concurrency });
  out.activeHeap = await heapAfterGc();
  out.activeFds = openFds();
  out.activeSockets = m.openSockets();
  if (args.timeline === 'true') {
    // Idle: sample heap and descriptors until well past idleTimeout. The
    // bench's echo server keeps idle connections 30 s (undici: 28 s), so
    // within this window only the library's eviction closes anything; the
    // run without idleTimeout (the control) shows what happens without it.
    const step = Number(args.step ?? 500);
    const until = Number(args.until ?? 4000);
    const t0 = now();
    out.timeline = [];
    for (let t = step; t <= until; t += step) {
      const wait = t0 + t - now();
      if (wait > 0) await sleep(wait);
      const heap = await heapAfterGc();
      out.timeline.push({ t, heap, fds: openFds(), sockets: m.openSockets() });
    }
    const at = (t) => out.timeline.reduce((best, s) => (Math.abs(s.t - t) < Math.abs(best.t - t) ? s : best));
    // "After the idle timeout": idleTimeout + one sweep period (idle/2) + slack; and the last sample.
    const probeT = Number(args.probe ?? (idle ?? 2000) + 1500);
    out.afterIdle = at(probeT);
    out.final = out.timeline[out.timeline.length - 1];
  }
  await m.uninstall();
  return out;
}

/**
 * Scenario 4, hand-wired context: N undici ProxyAgents (one per identity)
 * with global fetch, round-robin — what N separate pools cost without the
 * library, so the library's own scaling can be told from the inherent one.
 */
async function accountsHandwired() {
  const n = Number(args.n);
  const { ProxyAgent } = await undici();
  const base = new URL(proxyUrl('mock'));
  const agents = [];
  const out = { n };
  out.emptyHeap = await heapAfterGc();
  for (let i = 0; i < n; i++) {
    const u = new URL(base);
    u.username = `user${i}`;
    u.password = `pw${i}`;
    agents.push(new ProxyAgent(u.href));
  }
  out.configuredHeap = await heapAfterGc();
  out.idleAccountsHeapDelta = out.configuredHeap - out.emptyHeap;
  const concurrency = Number(args.concurrency ?? 32);
  const request = (i) => fetchOnce(TARGET, agents[i % n]);
  out.cold = await concurrent(request, { ms: 20_000, max: n, concurrency });
  await warmup(request, { count: Math.max(budget.warmCount, n), ms: budget.warmMs * 2, concurrency });
  out.warm = await concurrent(request, { ms: budget.accountsMs, max: 1e6, concurrency });
  out.activeHeap = await heapAfterGc();
  out.activeFds = openFds();
  await Promise.all(agents.map((a) => a.close()));
  return out;
}

/**
 * Scenario 7: rotate() on an account whose pool holds 2 proxies, and the
 * first request after it (a new pool: tunnel + TLS). With --background=N,
 * N other accounts are configured (and each used once), to show whether
 * rotate() scales with the number of accounts.
 */
async function rotateSp() {
  const { SessionProxyManager } = await lib();
  const background = Number(args.background ?? 0);
  const accountsOpt = { r: [proxyUrl('mock'), proxyUrl('mockB')] };
  const base = new URL(proxyUrl('mock'));
  for (let i = 0; i < background; i++) {
    const u = new URL(base);
    u.username = `bg${i}`;
    u.password = `pw${i}`;
    accountsOpt[`bg${i}`] = u.href;
  }
  const m = new SessionProxyManager({ accounts: accountsOpt, noProxy: [] }).install();
  if (background) await fixedCount((i) => m.withProxy(`bg${i}`, () => fetchOnce(TARGET)), { count: background, concurrency: 32 });
  const req = () => m.withProxy('r', () => fetchOnce(TARGET));
  for (let i = 0; i < 20; i++) await req();
  const rot = [];
  const first = [];
  const warm = [];
  const deadline = now() + budget.rotateMs;
  for (let i = 0; i < budget.rotateMax && (i < 5 || now() < deadline); i++) {
    const t0 = now();
    await m.rotate('r');
    const t1 = now();
    await req();
    const t2 = now();
    await req();
    const t3 = now();
    rot.push(t1 - t0);
    first.push(t2 - t1);
    warm.push(t3 - t2);
  }
  const med = (a) => quantile([...a].sort((x, y) => x - y), 0.5);
  const out = { iterations: rot.length, rotateMs: med(rot), firstAfterMs: med(first), warmMs: med(warm), rotateP99Ms: quantile([...rot].sort((x, y) => x - y), 0.99) };
  if (args.inflight === 'true') {
    // rotate() while a slow request (a 500 ms stream) is in flight on the old proxy.
    const slow = [];
    for (let i = 0; i < 2; i++) {
      const inflight = m.withProxy('r', () => fetchOnce(`${config.echo.httpsUrl}/stream?chunks=5&size=16&delay=100`));
      await sleep(50);
      const t0 = now();
      await m.rotate('r');
      slow.push(now() - t0);
      await inflight;
    }
    out.rotateWithInflightMs = med(slow);
  }
  await m.uninstall();
  return out;
}

/** Reference for scenario 7: the first request through a fresh hand-wired ProxyAgent (tunnel + TLS), alternating 2 proxies. */
async function rotateRef() {
  const { ProxyAgent } = await undici();
  const urls = [proxyUrl('mock'), proxyUrl('mockB')];
  const warmAgent = new ProxyAgent(urls[0]);
  for (let i = 0; i < 20; i++) await fetchOnce(TARGET, warmAgent);
  await warmAgent.close();
  const first = [];
  const warm = [];
  const create = [];
  const deadline = now() + budget.rotateMs;
  for (let i = 0; i < budget.rotateMax && (i < 5 || now() < deadline); i++) {
    const t0 = now();
    const agent = new ProxyAgent(urls[i % 2]);
    const t1 = now();
    await fetchOnce(TARGET, agent);
    const t2 = now();
    await fetchOnce(TARGET, agent);
    const t3 = now();
    create.push(t1 - t0);
    first.push(t2 - t1);
    warm.push(t3 - t2);
    await agent.close();
  }
  const med = (a) => quantile([...a].sort((x, y) => x - y), 0.5);
  return { iterations: first.length, rotateMs: med(create), firstAfterMs: med(first), warmMs: med(warm) };
}

// --- main -------------------------------------------------------------------------

const workloads = {
  seqconc: () => seqconc(args.setup ?? name),
  overhead,
  'overhead-paired': overheadPaired,
  paired,
  accounts,
  'accounts-handwired': accountsHandwired,
  'rotate-sp': rotateSp,
  'rotate-ref': rotateRef,
  'fleet-renewals': fleetRenewals,
};

async function main() {
  const workload = setups[name] ? workloads.seqconc : workloads[name];
  if (!workload) throw new Error(`unknown contender "${name}" (known: ${[...Object.keys(setups), ...Object.keys(workloads)].join(', ')})`);
  const t0 = now();
  const result = await workload();
  result.elapsedMs = now() - t0;
  await (await observing)?.close();
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err?.stack ?? String(err));
    process.stdout.write(`BENCH_RESULT ${JSON.stringify({ error: String(err?.message ?? err) })}\n`);
    process.exit(1);
  },
);
