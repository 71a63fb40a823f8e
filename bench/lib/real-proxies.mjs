/**
 * tinyproxy (HTTP CONNECT), microsocks (SOCKS5) and redis-server (the fleet
 * store of scenario 8) from Debian, started by the bench on a free 127.0.0.1
 * port with a temp config, when installed.
 * Small bits adapted from test/support/real-proxies.ts (not imported: the
 * bench only reads dist/ and its own files). Loopback only: tinyproxy gets a
 * default-deny filter that allows loopback destinations; microsocks has no
 * such setting, and the bench only ever points it at the loopback echo server.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const HOST = '127.0.0.1';
const SEARCH = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/bin', '/sbin'];

export function binaryPath(name) {
  for (const dir of [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SEARCH]) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

const live = new Set();
process.on('exit', () => {
  for (const kill of live) kill();
});

async function launch(name, bin, buildArgs, scheme, readyMarker) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `session-proxy-bench-${name}-`));
  const port = await freePort();
  const { args, logFile } = buildArgs({ dir, port });
  // setpriv --pdeathsig: the daemon dies with the bench even on a crash.
  const setpriv = binaryPath('setpriv');
  const [cmd, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
  const child = spawn(cmd, argv, { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  let output = '';
  child.stdout.on('data', (c) => (output = (output + c).slice(-20000)));
  child.stderr.on('data', (c) => (output = (output + c).slice(-20000)));
  let exited = false;
  child.once('exit', () => (exited = true));
  const kill = (sig = 'SIGKILL') => {
    try {
      process.kill(-child.pid, sig);
    } catch {
      try {
        process.kill(child.pid, sig);
      } catch {
        // gone
      }
    }
  };
  const cleanup = () => {
    kill();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  live.add(cleanup);
  const logs = () => {
    let text = output;
    try {
      if (logFile) text += fs.readFileSync(logFile, 'utf8');
    } catch {
      // not written yet
    }
    return text;
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) {
      cleanup();
      live.delete(cleanup);
      throw new Error(`${name} exited during startup:\n${logs().slice(-2000)}`);
    }
    if ((await canConnect(port)) && (!readyMarker || readyMarker.test(logs()))) break;
    if (Date.now() > deadline) {
      cleanup();
      live.delete(cleanup);
      throw new Error(`${name} did not listen within 10 s:\n${logs().slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name,
    url: `${scheme}://${HOST}:${port}`,
    port,
    pid: child.pid,
    async close() {
      kill('SIGTERM');
      await Promise.race([new Promise((r) => (exited ? r() : child.once('exit', r))), new Promise((r) => setTimeout(r, 2000))]);
      cleanup();
      live.delete(cleanup);
    },
  };
}

/** tinyproxy: CONNECT to any port, only loopback destinations, no auth. */
export function startTinyproxy() {
  const bin = binaryPath('tinyproxy');
  if (!bin) return Promise.resolve(null);
  return launch(
    'tinyproxy',
    bin,
    ({ dir, port }) => {
      const logFile = path.join(dir, 'tinyproxy.log');
      const filter = path.join(dir, 'filter');
      fs.writeFileSync(filter, '^127\\.[0-9.]+$\n^localhost$\n');
      // MaxClients above the bench's concurrency (32) with room for the warm-up's extra connections.
      const conf = [
        `Port ${port}`,
        `Listen ${HOST}`,
        `Bind ${HOST}`,
        'Timeout 60',
        'MaxClients 256',
        'LogLevel Warning',
        `LogFile "${logFile}"`,
        `PidFile "${path.join(dir, 'tinyproxy.pid')}"`,
        'Allow 127.0.0.0/8',
        `Filter "${filter}"`,
        'FilterType ere',
        'FilterDefaultDeny Yes',
        '',
      ].join('\n');
      const confFile = path.join(dir, 'tinyproxy.conf');
      fs.writeFileSync(confFile, conf);
      return { args: ['-d', '-c', confFile], logFile };
    },
    'http',
  );
}

/** microsocks: SOCKS5, no auth, upstream bound to 127.0.0.1. */
export function startMicrosocks() {
  const bin = binaryPath('microsocks');
  if (!bin) return Promise.resolve(null);
  return launch('microsocks', bin, ({ port }) => ({ args: ['-i', HOST, '-p', String(port), '-b', HOST] }), 'socks5');
}

/**
 * redis-server for scenario 8 (the fleet store): the configuration of
 * test/fixtures/redis/redis.conf.template (loopback only, no persistence),
 * plus keyspace notifications for hash commands, so a contender can count
 * lease renewals (each one an HSET of the account's holders hash) as events.
 */
export function startRedis() {
  const bin = binaryPath('redis-server');
  if (!bin) return Promise.resolve(null);
  return launch(
    'redis-server',
    bin,
    ({ dir, port }) => {
      const conf = [
        `bind ${HOST}`,
        `port ${port}`,
        `dir ${dir}`,
        'protected-mode yes',
        'daemonize no',
        'supervised no',
        'logfile ""',
        'loglevel warning',
        'save ""',
        'appendonly no',
        'databases 4',
        'maxclients 200',
        'notify-keyspace-events Kh',
        '',
      ].join('\n');
      const confFile = path.join(dir, 'redis.conf');
      fs.writeFileSync(confFile, conf);
      return { args: [confFile] };
    },
    'redis',
  );
}
