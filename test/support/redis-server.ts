/**
 * A real redis-server (Debian's, installed by .ci/run) for the fleet tests:
 * started on a free loopback port from test/fixtures/redis/redis.conf.template,
 * no persistence unless asked, a password (requirepass) when asked; stop()
 * and start() again on the same port (a restart comes back empty without
 * persistence). Tests that need it are
 * skipped when the binary is missing, except in CI (where it must exist).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const template = fileURLToPath(new URL('../fixtures/redis/redis.conf.template', import.meta.url));

export function redisServerBinary(): string | undefined {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

/** Skip fleet tests without redis-server, except in CI. */
export const noRedis = !redisServerBinary() && !process.env.CI;

export interface RedisServer {
  readonly port: number;
  /** redis://[:password@]127.0.0.1:port */
  readonly url: string;
  /** Starts (again) on the same port; resolves once it accepts connections. */
  start(): Promise<void>;
  /** SIGTERM, resolves when it exited. */
  stop(): Promise<void>;
  /** redis-cli-free command over a raw socket (RESP), for scans in tests. */
  command(...args: string[]): Promise<unknown>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export async function startRedis(options: { persist?: boolean; password?: string } = {}): Promise<RedisServer> {
  const bin = redisServerBinary();
  if (!bin) throw new Error('redis-server is not installed (apt-get install redis-server; .ci/run does)');
  const dir = mkdtempSync(join(tmpdir(), 'sp-redis-'));
  const port = await freePort();
  const conf = join(dir, 'redis.conf');
  writeFileSync(conf, readFileSync(template, 'utf8').replaceAll('${PORT}', String(port)).replaceAll('${DIR}', dir));
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const args = [conf, ...(options.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : []), ...(options.password ? ['--requirepass', options.password] : [])];
    const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let output = '';
    c.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`redis-server exited (${c.exitCode}): ${output.slice(0, 500)}`);
      if (await accepts(port, options.password)) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not accept connections within 10 s: ${output.slice(0, 500)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => c.kill('SIGKILL'), 5000);
      c.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      c.kill('SIGTERM');
    });
  };
  await start();
  return {
    port,
    url: `redis://${options.password ? `:${encodeURIComponent(options.password)}@` : ''}127.0.0.1:${port}`,
    start,
    stop,
    command: (...args) => resp(port, args, options.password),
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function accepts(port: number, password: string | undefined): Promise<boolean> {
  return resp(port, ['PING'], password).then(
    (r) => r === 'PONG',
    () => false,
  );
}

/** One RESP command on a fresh connection (no client library: the tests check the store from outside), after AUTH with a password. */
function resp(port: number, args: string[], password?: string): Promise<unknown> {
  const commands = password ? [['AUTH', password], args] : [args];
  const encode = (c: string[]): string => `*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
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
