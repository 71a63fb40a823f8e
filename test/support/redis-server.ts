/**
 * A real redis-server (Debian's, installed by .ci/run) for the fleet tests:
 * started on a free loopback port from test/fixtures/redis/redis.conf.template,
 * no persistence unless asked; stop() and start() again on the same port
 * (a restart comes back empty without persistence). Tests that need it are
 * skipped when the binary is missing, except in CI (where it must exist).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kPlumbing } from '../../src/plumbing.js';

export function redisServerBinary(): string | undefined {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

/** Skip fleet tests without redis-server, except in CI. */
export const noRedis = !redisServerBinary() && !process.env.CI;

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Starts (again) on the same port; resolves once it accepts connections. */
  start(): Promise<void>;
  /** SIGTERM, resolves when it exited. */
  stop(): Promise<void>;
  /** redis-cli-free command over a raw socket (RESP), for scans in tests. */
  command(...args: string[]): Promise<unknown>;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** A redis-server process on a loopback port (plain, cluster node or sentinel): start again, stop, kill. */
export interface ServerProcess {
  /** Starts (again); resolves once it answers PING. */
  start(): Promise<void>;
  /** SIGTERM (SIGKILL after 5 s), resolves when it exited. */
  stop(): Promise<void>;
  /** SIGKILL at once (a crash: nothing flushed), resolves when it exited. */
  kill(): Promise<void>;
  /** What it printed (for error messages). */
  output(): string;
}

export function serverProcess(bin: string, args: readonly string[], port: number, password?: string): ServerProcess {
  let child: ChildProcess | undefined;
  let output = '';
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => c.kill('SIGKILL'), 5000);
      c.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      c.kill(signal);
    });
  };
  return {
    async start() {
      const c = spawn(bin, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      c.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      c.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      const deadline = Date.now() + 10_000;
      for (;;) {
        if (c.exitCode !== null) throw new Error(`redis-server exited (${c.exitCode}): ${output.slice(-500)}`);
        if (await accepts(port, password)) return;
        if (Date.now() > deadline) throw new Error(`redis-server did not accept connections within 10 s: ${output.slice(-500)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    output: () => output,
  };
}

/** A config file from a template in test/fixtures/redis/ (`${NAME}` replaced), written into `dir`. */
export function writeConfig(name: string, dir: string, vars: Record<string, string | number>): string {
  let text = readFileSync(fileURLToPath(new URL(`../fixtures/redis/${name}`, import.meta.url)), 'utf8');
  for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`\${${k}}`, String(v));
  const file = join(dir, name.replace(/\.template$/, ''));
  writeFileSync(file, text);
  return file;
}

export function requireRedisServer(): string {
  const bin = redisServerBinary();
  if (!bin) throw new Error('redis-server is not installed (apt-get install redis-server; .ci/run does)');
  return bin;
}

export async function startRedis(options: { persist?: boolean; password?: string } = {}): Promise<RedisServer> {
  const bin = requireRedisServer();
  const dir = mkdtempSync(join(tmpdir(), 'sp-redis-'));
  const port = await freePort();
  const conf = writeConfig('redis.conf.template', dir, { PORT: port, DIR: dir });
  const args = [conf, ...(options.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : []), ...(options.password ? ['--requirepass', options.password] : [])];
  const server = serverProcess(bin, args, port, options.password);
  await server.start();
  return {
    port,
    url: `redis://${options.password ? `:${encodeURIComponent(options.password)}@` : ''}127.0.0.1:${port}`,
    start: server.start,
    stop: server.stop,
    command: (...args) => redisCommand(port, args, options.password),
    async close() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function accepts(port: number, password?: string): Promise<boolean> {
  return redisCommand(port, ['PING'], password).then(
    (r) => r === 'PONG',
    () => false,
  );
}

/** One RESP command on a fresh connection (no client library: the tests check the store from outside), after AUTH with a password. */
export function redisCommand(port: number, args: readonly string[], password?: string): Promise<unknown> {
  const commands = password ? [['AUTH', password], args] : [args];
  const encode = (c: readonly string[]): string => `*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    // Marked as the library's plumbing: a test that installs a manager (tunnelSockets on) still reads the server directly.
    const s = net.connect({ port, host: '127.0.0.1', [kPlumbing]: true } as net.NetConnectOpts);
    let buf = Buffer.alloc(0);
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.on('error', reject);
    s.on('connect', () => s.write(commands.map(encode).join('')));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      // One reply per command; the last one is the answer (an AUTH failure is an error reply first).
      let at = 0;
      let parsed: { value: unknown; end: number } | undefined;
      for (let i = 0; i < commands.length; i++) {
        parsed = parse(buf, at);
        if (!parsed) return;
        if (parsed.value instanceof Error) break;
        at = parsed.end;
      }
      s.end();
      if (parsed!.value instanceof Error) reject(parsed!.value);
      else resolve(parsed!.value);
    });
  });
}

function parse(b: Buffer, at: number): { value: unknown; end: number } | undefined {
  const nl = b.indexOf('\r\n', at);
  if (nl < 0) return undefined;
  const type = String.fromCharCode(b[at]!);
  const line = b.toString('utf8', at + 1, nl);
  if (type === '+') return { value: line, end: nl + 2 };
  if (type === '-') return { value: new Error(line), end: nl + 2 };
  if (type === ':') return { value: Number(line), end: nl + 2 };
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return { value: null, end: nl + 2 };
    if (b.length < nl + 2 + n + 2) return undefined;
    return { value: b.toString('utf8', nl + 2, nl + 2 + n), end: nl + 2 + n + 2 };
  }
  if (type === '*') {
    const n = Number(line);
    const out: unknown[] = [];
    let pos = nl + 2;
    for (let i = 0; i < n; i++) {
      const p = parse(b, pos);
      if (!p) return undefined;
      out.push(p.value);
      pos = p.end;
    }
    return { value: out, end: pos };
  }
  return { value: new Error(`unknown RESP type ${type}`), end: nl + 2 };
}
