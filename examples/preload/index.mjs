/**
 * Runs app.mjs — which contains no proxy code — under the preload, three
 * times: unscoped (the default proxy), and as accounts alice and bob.
 *
 *   npm run build && node examples/preload/index.mjs
 *
 * Offline: mock proxies leave from 127.0.0.4 (default), 127.0.0.2 (alice)
 * and 127.0.0.3 (bob), and resolve echo.example.test to the loopback echo
 * server. proxies.json takes the proxy URLs from the environment (${VAR}).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startEchoServer, startMockProxy } from 'session-proxy/testing';

const here = (file) => fileURLToPath(new URL(file, import.meta.url));
const hosts = { 'echo.example.test': '127.0.0.1' };
const echo = await startEchoServer();
const proxies = {
  default: await startMockProxy({ egressIp: '127.0.0.4', hosts }),
  alice: await startMockProxy({ egressIp: '127.0.0.2', hosts, auth: { username: 'alice', password: 'alice-secret' } }),
  bob: await startMockProxy({ egressIp: '127.0.0.3', hosts }),
};

const env = {
  PATH: process.env.PATH,
  SESSION_PROXY_CONFIG: here('./proxies.json'),
  DEFAULT_PROXY_URL: proxies.default.url,
  ALICE_PROXY_URL: proxies.alice.urlFor('socks5h'),
  BOB_PROXY_URL: proxies.bob.url,
  TARGET_URL: `http://echo.example.test:${echo.httpPort}/ip`,
};

/** node <args> app.mjs, asynchronously (the proxies above run in this process). */
function node(args, extraEnv = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...args, here('./app.mjs')], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (out += c));
    const timer = setTimeout(() => child.kill(), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      code === 0 ? resolve(out.trim()) : reject(new Error(`app exited with ${code}`));
    });
  });
}

try {
  console.log(`unscoped (--import):  ${await node(['--import', 'session-proxy/register'])}`);
  // -r: a CommonJS preload's scope reaches the app on every Node version.
  console.log(`alice (-r + account): ${await node(['-r', 'session-proxy/register'], { SESSION_PROXY_ACCOUNT: 'alice' })}`);
  console.log(`bob (-r + account):   ${await node(['-r', 'session-proxy/register'], { SESSION_PROXY_ACCOUNT: 'bob' })}`);
} finally {
  await Promise.all([echo.close(), ...Object.values(proxies).map((p) => p.close())]);
}
