/**
 * Test harness: real proxy daemons from Debian (tinyproxy, microsocks, squid,
 * dante-server; stunnel as a TLS terminator that wants a client certificate;
 * mitmproxy's mitmdump as a TLS-inspecting proxy), each started in the foreground as a child process on a free
 * 127.0.0.1 port, with its upstream (egress) connections bound to its own
 * loopback address. 127.0.0.0/8 is all loopback on Linux, so an echo server
 * sees a different client IP per proxy: that is how tests prove routing.
 *
 * Usage with vitest:
 *
 *   describe.skipIf(skipWithout('tinyproxy', 'curl'))('tinyproxy', () => {
 *     let proxy: RealProxy;
 *     beforeAll(async () => { proxy = await startTinyproxy({ egressIp: '127.0.0.2' }); });
 *     afterAll(() => proxy?.close());
 *     …
 *   });
 *
 * `skipWithout` / `requireBinary` skip with a clear message when a binary is
 * missing on a developer machine, but throw when process.env.CI is set (CI
 * installs them in .ci/run, so a missing one there is a broken CI, not a skip).
 *
 * Safety: egress addresses must be in 127.0.0.0/8, and tinyproxy, squid and
 * dante are configured to refuse non-loopback destinations; microsocks has
 * no such setting, so only point it at loopback.
 *
 * Works as root (squid is made to switch to the `proxy`/`nobody` user, which
 * it insists on; tinyproxy and danted just keep running as root) and as a
 * normal user (nothing switches user).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type ProxyName = 'tinyproxy' | 'microsocks' | 'squid' | 'dante' | 'stunnel' | 'mitmproxy';
export type BinaryName = 'tinyproxy' | 'microsocks' | 'squid' | 'danted' | 'curl' | 'stunnel4' | 'mitmdump' | 'openssl';

export interface ProxyAuth {
  username: string;
  password: string;
}

export interface RealProxy {
  name: ProxyName;
  /** e.g. http://user:pass@127.0.0.1:PORT (tinyproxy, squid, mitmdump), socks5h://… (microsocks, dante), https://… (stunnel). */
  url: string;
  host: string;
  port: number;
  /** The loopback address the proxy's upstream connections come from. */
  egressIp: string;
  /** Credentials the proxy requires, if any (already embedded in `url`). */
  auth?: ProxyAuth;
  /** PID of the daemon (also its process-group id). */
  pid: number;
  /** Milliseconds from spawn until the port accepted connections. */
  startupMs: number;
  /** The daemon's own log text (stdout/stderr + its log files); still available after close(). */
  log(): string;
  /** Stops the daemon (whole process group) and removes its temp dir. Idempotent. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** Source address for the proxy's upstream connections; must be in 127.0.0.0/8. */
  egressIp: string;
  /** Credentials the proxy will require: [A-Za-z0-9._~-], 1–64 chars each. */
  auth?: ProxyAuth;
}

const LISTEN_HOST = '127.0.0.1';
const MAX_PORT_ATTEMPTS = 5;
const MAX_CAPTURE = 1 << 20;
const TEMPLATE_DIR = fileURLToPath(new URL('../fixtures/proxies/', import.meta.url));

// ---------------------------------------------------------------------------
// binaries
// ---------------------------------------------------------------------------

/** Debian package that provides each binary. */
export const DEBIAN_PACKAGE: Record<BinaryName, string> = {
  tinyproxy: 'tinyproxy',
  microsocks: 'microsocks',
  squid: 'squid',
  danted: 'dante-server',
  curl: 'curl',
  stunnel4: 'stunnel4',
  mitmdump: 'mitmproxy',
  openssl: 'openssl',
};

// squid and danted live in /usr/sbin, which a non-root PATH often lacks.
const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/bin'];
const binaryCache = new Map<string, string | null>();

/** Absolute path of a binary (PATH, then the sbin dirs), or null. */
export function binaryPath(name: string): string | null {
  const cached = binaryCache.get(name);
  if (cached !== undefined) return cached;
  let found: string | null = null;
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) {
        found = candidate;
        break;
      }
    } catch {
      // not here
    }
  }
  binaryCache.set(name, found);
  return found;
}

export function hasBinary(name: BinaryName): boolean {
  return binaryPath(name) !== null;
}

function isCI(): boolean {
  const v = process.env.CI;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/**
 * Checks that the binaries are installed. Returns undefined when they all are.
 * When some are missing: throws if process.env.CI is set (CI must install
 * them), otherwise prints why and returns 'skip'. Meant for
 * `describe.skipIf(requireBinary('squid') === 'skip')(…)`; see skipWithout.
 */
export function requireBinary(...names: BinaryName[]): void | 'skip' {
  const missing = names.filter((n) => !hasBinary(n));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((n) => DEBIAN_PACKAGE[n]))].join(' ');
  const msg =
    `real-proxy tests need ${missing.join(', ')}, not found in PATH or ${EXTRA_DIRS.join(':')} ` +
    `(Debian: apt-get install -y --no-install-recommends ${pkgs})`;
  if (isCI()) {
    throw new Error(`${msg}. CI is set, so this is an error, not a skip: .ci/run must install them.`);
  }
  console.warn(`[session-proxy] skipping: ${msg}`);
  return 'skip';
}

/** `describe.skipIf(skipWithout('tinyproxy', 'curl'))(…)`: true = skip (never true under CI, it throws). */
export function skipWithout(...names: BinaryName[]): boolean {
  return requireBinary(...names) === 'skip';
}

// ---------------------------------------------------------------------------
// public starters
// ---------------------------------------------------------------------------

/** tinyproxy (HTTP proxy, CONNECT to any port), `Bind egressIp`, optional BasicAuth. */
export function startTinyproxy(o: StartOptions): Promise<RealProxy> {
  return launch({
    name: 'tinyproxy',
    binary: 'tinyproxy',
    scheme: 'http',
    options: o,
    readyTimeoutMs: 10_000,
    readyMarker: /Starting main loop/,
    stopSignal: 'SIGTERM',
    prepare({ dir, port }) {
      const logFile = path.join(dir, 'tinyproxy.log');
      const filterFile = path.join(dir, 'filter');
      // Default-deny host filter: only loopback destinations.
      fs.writeFileSync(filterFile, '^127\\.[0-9.]+$\n^localhost$\n^\\[?::1\\]?$\n');
      const conf = render('tinyproxy.conf.tmpl', {
        PORT: String(port),
        LISTEN_HOST,
        EGRESS_IP: o.egressIp,
        LOG_FILE: logFile,
        PID_FILE: path.join(dir, 'tinyproxy.pid'),
        FILTER_FILE: filterFile,
        AUTH_LINES: o.auth ? `BasicAuth ${o.auth.username} ${o.auth.password}` : '',
      });
      const confFile = path.join(dir, 'tinyproxy.conf');
      fs.writeFileSync(confFile, conf);
      return { args: ['-d', '-c', confFile], logFiles: [logFile] };
    },
  });
}

/** microsocks (SOCKS5), `-b egressIp`, optional `-u/-P` user/password auth. */
export function startMicrosocks(o: StartOptions): Promise<RealProxy> {
  return launch({
    name: 'microsocks',
    binary: 'microsocks',
    scheme: 'socks5h',
    options: o,
    readyTimeoutMs: 10_000,
    stopSignal: 'SIGTERM',
    prepare({ port }) {
      const args = ['-i', LISTEN_HOST, '-p', String(port), '-b', o.egressIp];
      if (o.auth) args.push('-u', o.auth.username, '-P', o.auth.password);
      return { args, logFiles: [] };
    },
  });
}

/**
 * squid (HTTP proxy, CONNECT to any port), `tcp_outgoing_address egressIp`,
 * no disk cache. Optional Basic auth through a tiny shell helper (no
 * htpasswd/crypt needed). Starts in well under a second; stopping takes
 * ~2 s (its shutdown steps run on a 1 s event tick).
 */
export function startSquid(o: StartOptions): Promise<RealProxy> {
  const runAs = process.getuid?.() === 0 ? squidUser() : null;
  let serviceName = '';
  return launch({
    name: 'squid',
    binary: 'squid',
    scheme: 'http',
    options: o,
    readyTimeoutMs: 20_000,
    readyMarker: /Accepting HTTP Socket connections/,
    // SIGINT = shut down without the graceful client wait; SIGKILL after the grace.
    stopSignal: 'SIGINT',
    stopGraceMs: 6_000,
    setupDir(dir) {
      // Root squid switches to runAs, which must be able to write its logs here.
      if (runAs) fs.chownSync(dir, runAs.uid, runAs.gid);
    },
    prepare({ dir, port }) {
      // Unique per instance: squid names its /dev/shm segments after it.
      serviceName = `sp${process.pid}x${port}`;
      const logFile = path.join(dir, 'cache.log');
      const accessLog = path.join(dir, 'access.log');
      const authLines: string[] = [];
      if (o.auth) {
        const helper = path.join(dir, 'basic-auth-helper.sh');
        fs.writeFileSync(
          helper,
          [
            '#!/bin/sh',
            '# squid basic auth helper: reads "user password" lines, answers OK or ERR.',
            'while read -r user pass; do',
            `  if [ "$user" = '${o.auth.username}' ] && [ "$pass" = '${o.auth.password}' ]; then echo OK; else echo ERR; fi`,
            'done',
            '',
          ].join('\n'),
          { mode: 0o755 },
        );
        authLines.push(
          `auth_param basic program /bin/sh ${helper}`,
          'auth_param basic children 2 startup=0 idle=1',
          'auth_param basic realm session-proxy-test',
          'auth_param basic credentialsttl 1 second',
          'acl authenticated proxy_auth REQUIRED',
          'http_access deny !authenticated',
        );
      }
      const conf = render('squid.conf.tmpl', {
        PORT: String(port),
        LISTEN_HOST,
        EGRESS_IP: o.egressIp,
        DIR: dir,
        LOG_FILE: logFile,
        ACCESS_LOG_FILE: accessLog,
        PID_FILE: path.join(dir, 'squid.pid'),
        USER_LINES: runAs ? `cache_effective_user ${runAs.name}\ncache_effective_group ${runAs.group}` : '',
        AUTH_LINES: authLines.join('\n'),
      });
      const confFile = path.join(dir, 'squid.conf');
      fs.writeFileSync(confFile, conf);
      return {
        args: ['-N', '-n', serviceName, '-f', confFile],
        logFiles: [logFile, accessLog],
        cleanup: () => removeSquidShm(serviceName),
      };
    },
  });
}

/** dante-server (SOCKS5, no auth), `external: egressIp`. */
export function startDante(o: { egressIp: string; auth?: never }): Promise<RealProxy> {
  return launch({
    name: 'dante',
    binary: 'danted',
    scheme: 'socks5h',
    options: o,
    readyTimeoutMs: 10_000,
    readyMarker: /running/,
    stopSignal: 'SIGTERM',
    prepare({ dir, port }) {
      const logFile = path.join(dir, 'danted.log');
      const conf = render('danted.conf.tmpl', {
        PORT: String(port),
        LISTEN_HOST,
        EGRESS_IP: o.egressIp,
        LOG_FILE: logFile,
      });
      const confFile = path.join(dir, 'danted.conf');
      fs.writeFileSync(confFile, conf);
      // -N 1: one mother process (it still forks its negotiate/request/io children).
      return { args: ['-f', confFile, '-p', path.join(dir, 'danted.pid'), '-N', '1'], logFiles: [logFile] };
    },
  });
}

export interface StunnelOptions {
  /** Source address of stunnel's connections to the upstream proxy (127.0.0.0/8). */
  egressIp: string;
  /** The proxy stunnel relays to, e.g. a tinyproxy's `host:port`. */
  upstream: { host: string; port: number };
  /** stunnel's own certificate and key (PEM text). */
  cert: string;
  key: string;
  /** CA (PEM text) a client certificate must chain to: `verify = 2` requires one. */
  clientCa: string;
  /** 'TLSv1.2' caps the protocol (the refusal then comes during the handshake rather than after it). */
  tlsMax?: 'TLSv1.2';
}

/**
 * stunnel (Debian stunnel4) in front of an HTTP proxy: an https:// proxy
 * that requires a client certificate (`verify = 2`). The url is
 * https://127.0.0.1:PORT; the handshake's SNI/certificate name is localhost
 * or 127.0.0.1, whatever the cert says.
 */
export function startStunnel(o: StunnelOptions): Promise<RealProxy> {
  return launch({
    name: 'stunnel',
    binary: 'stunnel4',
    scheme: 'https',
    options: { egressIp: o.egressIp },
    readyTimeoutMs: 10_000,
    readyMarker: /Configuration successful/,
    stopSignal: 'SIGTERM',
    prepare({ dir, port }) {
      const file = (name: string, text: string): string => {
        const f = path.join(dir, name);
        fs.writeFileSync(f, text, { mode: 0o600 });
        return f;
      };
      const conf = render('stunnel.conf.tmpl', {
        LISTEN_HOST,
        PORT: String(port),
        UPSTREAM: `${o.upstream.host}:${o.upstream.port}`,
        EGRESS_IP: o.egressIp,
        CERT_FILE: file('server.pem', o.cert),
        KEY_FILE: file('server.key', o.key),
        CLIENT_CA_FILE: file('client-ca.pem', o.clientCa),
        TLS_LINES: o.tlsMax ? `sslVersionMax = ${o.tlsMax}` : '',
      });
      const confFile = path.join(dir, 'stunnel.conf');
      fs.writeFileSync(confFile, conf);
      return { args: [confFile], logFiles: [] };
    },
  });
}

export interface MitmproxyOptions {
  egressIp: string;
  /** PEM text of the CA that signed the targets' certificates: mitmdump verifies them against it. */
  upstreamCa: string;
}

export interface Mitmproxy extends RealProxy {
  /** mitmproxy's own CA (PEM): the certificates it mints for the targets chain to it. */
  readonly ca: string;
  /** Its CA as a file, for NODE_EXTRA_CA_CERTS (removed by close()). */
  readonly caFile: string;
}

/**
 * mitmdump (Debian mitmproxy) as a TLS-inspecting HTTP proxy, configured by
 * the shipped config.yaml template. Its flow log (one line per request, on
 * stdout) is in log(). Like microsocks it has no destination filter: point
 * it at loopback only.
 */
export async function startMitmdump(o: MitmproxyOptions): Promise<Mitmproxy> {
  let confdir = '';
  const proxy = await launch({
    name: 'mitmproxy',
    binary: 'mitmdump',
    scheme: 'http',
    options: { egressIp: o.egressIp },
    // Python start-up, and a CA key generated on the first start.
    readyTimeoutMs: 30_000,
    readyMarker: /listening at/,
    stopSignal: 'SIGTERM',
    prepare({ dir, port }) {
      confdir = path.join(dir, 'conf');
      fs.mkdirSync(confdir);
      const upstreamCa = path.join(dir, 'upstream-ca.pem');
      fs.writeFileSync(upstreamCa, o.upstreamCa);
      fs.writeFileSync(
        path.join(confdir, 'config.yaml'),
        render('mitmproxy.config.yaml.tmpl', { LISTEN_HOST, PORT: String(port), EGRESS_IP: o.egressIp, UPSTREAM_CA_FILE: upstreamCa }),
      );
      return { args: ['--set', `confdir=${confdir}`], logFiles: [] };
    },
  });
  const ca = fs.readFileSync(path.join(confdir, 'mitmproxy-ca-cert.pem'), 'utf8');
  // Outside the daemon's dir, which close() removes while a test may still start a child with it.
  const caDir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-proxy-mitmproxy-ca-'));
  const caFile = path.join(caDir, 'mitmproxy-ca-cert.pem');
  fs.writeFileSync(caFile, ca);
  const close = proxy.close;
  return Object.assign(proxy, {
    ca,
    caFile,
    close: async () => {
      await close();
      fs.rmSync(caDir, { recursive: true, force: true });
    },
  });
}

// ---------------------------------------------------------------------------
// machinery
// ---------------------------------------------------------------------------

interface Prepared {
  args: string[];
  logFiles: string[];
  cleanup?: () => void;
}

interface LaunchSpec {
  name: ProxyName;
  binary: BinaryName;
  scheme: 'http' | 'https' | 'socks5h';
  options: { egressIp: string; auth?: ProxyAuth };
  readyTimeoutMs: number;
  /** Text the daemon logs once it listens (guards against someone else owning the port). */
  readyMarker?: RegExp;
  stopSignal: NodeJS.Signals;
  stopGraceMs?: number;
  setupDir?(dir: string): void;
  prepare(ctx: { dir: string; port: number }): Prepared;
}

/** Thrown internally when the daemon lost a race for its port; launch() retries. */
class PortInUse extends Error {}

const BIND_FAILURE =
  /Address already in use|EADDRINUSE|Could not create listening sockets|Unable to open HTTP Socket|failed to bind/i;

/**
 * Daemons not closed yet, with a synchronous last-resort cleanup (SIGKILL the
 * group, remove the temp dir) run if the test process exits without close().
 */
const live = new Map<number, () => void>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const emergencyCleanup of live.values()) emergencyCleanup();
  });
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    try {
      process.kill(pgid, signal);
    } catch {
      // already gone
    }
  }
}

const CREDENTIAL = /^[A-Za-z0-9._~-]{1,64}$/;

function validate(name: ProxyName, o: { egressIp: string; auth?: ProxyAuth }): void {
  if (net.isIPv4(o.egressIp) !== true || !o.egressIp.startsWith('127.')) {
    throw new Error(`${name}: egressIp must be an IPv4 loopback address in 127.0.0.0/8, got ${JSON.stringify(o.egressIp)}`);
  }
  if (o.auth && (!CREDENTIAL.test(o.auth.username) || !CREDENTIAL.test(o.auth.password))) {
    // They go verbatim into config files, command lines, a shell script and URLs.
    throw new Error(`${name}: auth username/password must match ${CREDENTIAL} (test credentials only)`);
  }
}

async function launch(spec: LaunchSpec): Promise<RealProxy> {
  validate(spec.name, spec.options);
  const bin = binaryPath(spec.binary);
  if (!bin) {
    throw new Error(
      `${spec.name}: binary '${spec.binary}' not found (Debian: apt-get install -y ${DEBIAN_PACKAGE[spec.binary]})`,
    );
  }
  installExitHook();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `session-proxy-${spec.name}-`));
  try {
    spec.setupDir?.(dir);
    let lastError: unknown;
    for (let attempt = 1; attempt <= MAX_PORT_ATTEMPTS; attempt++) {
      const port = await freePort(LISTEN_HOST);
      try {
        return await launchOnPort(spec, bin, dir, port);
      } catch (err) {
        lastError = err;
        if (!(err instanceof PortInUse)) throw err;
        // Lost the race for the port between probing and the daemon's bind: retry.
      }
    }
    throw new Error(`${spec.name}: no free port after ${MAX_PORT_ATTEMPTS} attempts: ${String(lastError)}`);
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launchOnPort(spec: LaunchSpec, bin: string, dir: string, port: number): Promise<RealProxy> {
  // Fresh files per attempt, so a previous attempt's marker or error can't be read.
  for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
  const prepared = spec.prepare({ dir, port });

  // setpriv --pdeathsig: the daemon gets SIGKILL if the test process dies
  // without running close() (squid loses it when it switches user; the
  // 'exit' hook covers normal exits).
  const setpriv = binaryPath('setpriv');
  const [command, args] = setpriv
    ? [setpriv, ['--pdeathsig', 'KILL', '--', bin, ...prepared.args]]
    : [bin, prepared.args];
  const started = Date.now();
  const child = spawn(command, args, {
    cwd: dir,
    // Own process group, so close() can signal danted's forked children too.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_ALL: 'C' },
  });
  let output = '';
  const capture = (chunk: Buffer) => {
    if (output.length < MAX_CAPTURE) output += chunk.toString('utf8');
  };
  child.stdout!.on('data', capture);
  child.stderr!.on('data', capture);

  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve();
    });
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  if (child.pid === undefined) {
    const err = await spawnError;
    throw new Error(`${spec.name}: could not spawn ${bin}: ${err.message}`);
  }
  const pid = child.pid;
  live.set(pid, () => {
    killGroup(pid, 'SIGKILL');
    try {
      prepared.cleanup?.();
    } catch {
      // best effort
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const readLogs = (): string => {
    const parts: string[] = [];
    if (output.trim()) parts.push(output);
    for (const file of prepared.logFiles) {
      try {
        const text = fs.readFileSync(file, 'utf8');
        if (text.trim()) parts.push(`--- ${path.basename(file)} ---\n${text}`);
      } catch {
        // not written (yet)
      }
    }
    return parts.join('\n');
  };
  const configText = (): string => {
    const confs = fs.readdirSync(dir).filter((f) => f.endsWith('.conf'));
    return confs
      .map((f) => {
        const lines = fs.readFileSync(path.join(dir, f), 'utf8').split('\n');
        return `--- ${f} ---\n${lines.map((l, i) => `${String(i + 1).padStart(3)}  ${l}`).join('\n')}`;
      })
      .join('\n');
  };
  const describeFailure = (what: string) =>
    `${spec.name} ${what} (port ${port}, egress ${spec.options.egressIp}, command: ${bin} ${prepared.args.join(' ')})\n` +
    `--- daemon output and logs ---\n${readLogs() || '(empty)'}\n${configText()}`;

  const stop = async (): Promise<void> => {
    if (exitInfo === null) {
      killGroup(pid, spec.stopSignal);
      const graceful = await Promise.race([exited.then(() => true), sleep(spec.stopGraceMs ?? 3_000).then(() => false)]);
      if (!graceful) {
        killGroup(pid, 'SIGKILL');
        await Promise.race([exited, sleep(3_000)]);
      }
    }
    // Stray children (danted forks helpers) that outlived the leader.
    killGroup(pid, 'SIGKILL');
    live.delete(pid);
    try {
      prepared.cleanup?.();
    } catch {
      // best effort
    }
  };

  // --- wait until it listens -------------------------------------------------
  const deadline = started + spec.readyTimeoutMs;
  try {
    for (;;) {
      if (exitInfo !== null) {
        const info = exitInfo as { code: number | null; signal: NodeJS.Signals | null };
        const logs = readLogs();
        if (BIND_FAILURE.test(logs)) throw new PortInUse(describeFailure('could not bind its port'));
        throw new Error(describeFailure(`exited during startup (code ${info.code}, signal ${info.signal})`));
      }
      if (await canConnect(LISTEN_HOST, port, 500)) {
        if (!spec.readyMarker || spec.readyMarker.test(readLogs())) {
          // Still alive after accepting = it is our daemon on that port.
          await sleep(20);
          if (exitInfo === null) break;
          continue;
        }
      }
      if (Date.now() > deadline) {
        throw new Error(describeFailure(`did not accept connections within ${spec.readyTimeoutMs} ms`));
      }
      await Promise.race([sleep(50), exited]);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const startupMs = Date.now() - started;

  const auth = spec.options.auth;
  const userinfo = auth ? `${encodeURIComponent(auth.username)}:${encodeURIComponent(auth.password)}@` : '';
  let finalLog: string | null = null;
  let closing: Promise<void> | null = null;
  return {
    name: spec.name,
    url: `${spec.scheme}://${userinfo}${LISTEN_HOST}:${port}`,
    host: LISTEN_HOST,
    port,
    egressIp: spec.options.egressIp,
    ...(auth ? { auth: { ...auth } } : {}),
    pid,
    startupMs,
    log: () => finalLog ?? readLogs(),
    close() {
      closing ??= (async () => {
        await stop();
        finalLog = readLogs();
        fs.rmSync(dir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

function render(template: string, values: Record<string, string>): string {
  let text = fs.readFileSync(path.join(TEMPLATE_DIR, template), 'utf8');
  text = text.replace(/\{\{([A-Z_]+)\}\}/g, (whole, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`${template}: no value for placeholder ${whole}`);
    if (/[\r\n]/.test(v) && !key.endsWith('_LINES')) throw new Error(`${template}: newline in ${key}`);
    return v;
  });
  return text;
}

/** A port that was free a moment ago (listen on 0, read it, close). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

function canConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

interface SystemUser {
  name: string;
  uid: number;
  gid: number;
  group: string;
}

/** The unprivileged user root squid switches to: Debian's `proxy`, else `nobody`. */
function squidUser(): SystemUser | null {
  let passwd = '';
  let groups = '';
  try {
    passwd = fs.readFileSync('/etc/passwd', 'utf8');
    groups = fs.readFileSync('/etc/group', 'utf8');
  } catch {
    return null;
  }
  for (const name of ['proxy', 'nobody']) {
    const line = passwd.split('\n').find((l) => l.startsWith(`${name}:`));
    if (!line) continue;
    const [, , uid, gid] = line.split(':');
    const group = groups.split('\n').find((l) => l.split(':')[2] === gid)?.split(':')[0];
    if (!group) continue;
    return { name, uid: Number(uid), gid: Number(gid), group };
  }
  return null;
}

function removeSquidShm(serviceName: string): void {
  if (!serviceName) return;
  let entries: string[];
  try {
    entries = fs.readdirSync('/dev/shm');
  } catch {
    return;
  }
  for (const e of entries) {
    if (e.startsWith(`${serviceName}-`)) fs.rmSync(path.join('/dev/shm', e), { force: true });
  }
}
