/**
 * The package as a user installs it, into a scratch project: the tarball of
 * `npm pack`, and a git URL of this repository (npm clones it, installs its
 * devDependencies and runs `prepare`, which builds dist/). Each installed copy
 * must load `.`, `./testing` and `./register` from ESM and from CJS and run
 * `npx session-proxy --help`.
 *
 * The git URL is this checkout's HEAD commit (uncommitted changes are not in
 * it). It downloads every devDependency (or takes them from npm's cache), so it
 * runs once, on Node 20, and is skipped with the reason printed when the
 * registry cannot be reached.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/consumer.js';

const nodeMajor = Number(process.versions.node.split('.')[0]);
const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

/**
 * The environment of npm, node and the CLI here: this Node first on PATH (npm
 * runs on it, as do `prepare` and the checks), no proxy variables, none of
 * the session-proxy ones, and no npm_* variables of the `npm test` that runs
 * this file (its lifecycle and package settings), except where the registry
 * and the cache are.
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_registry', 'npm_config_cache', 'npm_config_userconfig', 'npm_config_globalconfig']);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    const lower = k.toLowerCase();
    if (lower.startsWith('npm_') && !keep.has(lower)) continue;
    if (/^(http|https|all|no)_proxy$/.test(lower) || k.startsWith('SESSION_PROXY_') || k.startsWith('GLOBAL_AGENT_') || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  env.PATH = `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`;
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], cwd: string, timeout: number, extraEnv?: Record<string, string>): string {
  try {
    return execFileSync(cmd, args, { cwd, env: cleanEnv(extraEnv), encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

function scratchProject(prefix: string): string {
  const dir = tempDir(prefix);
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'scratch-consumer', version: '1.0.0', private: true }));
  return dir;
}

function npmInstall(project: string, spec: string, timeout: number): number {
  const t0 = Date.now();
  // --prefer-offline: what npm's cache holds (CI's `npm ci` filled it) is not asked for again.
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', spec], project, timeout);
  return Date.now() - t0;
}

const ESM_CHECK = `
const main = await import('session-proxy');
const testing = await import('session-proxy/testing');
await import('session-proxy/register');
const out = {
  resolved: import.meta.resolve('session-proxy'),
  manager: typeof main.SessionProxyManager,
  testing: [typeof testing.startMockProxy, typeof testing.startEchoServer],
  registered: main.getManager().accountNames(),
};
await main.uninstall();
console.log(JSON.stringify(out));
`;

const CJS_CHECK = `
const main = require('session-proxy');
const testing = require('session-proxy/testing');
require('session-proxy/register');
const out = {
  resolved: require('node:url').pathToFileURL(require.resolve('session-proxy')).href,
  manager: typeof main.SessionProxyManager,
  testing: [typeof testing.startMockProxy, typeof testing.startEchoServer],
  registered: main.getManager().accountNames(),
};
main.uninstall().then(() => console.log(JSON.stringify(out)));
`;

/** The installed copy loads from ESM and CJS (the preload installs from SESSION_PROXY_URL), and its bin runs. */
function checkInstalled(project: string): void {
  const pkgDir = path.join(project, 'node_modules', 'session-proxy');
  const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { exports: Record<string, unknown>; bin: Record<string, string> };
  const targets = JSON.stringify(pkg.exports).match(/\.\/dist\/[^"]+/g) ?? [];
  expect(targets.length).toBeGreaterThanOrEqual(12);
  expect(targets.filter((t) => !existsSync(path.join(pkgDir, t))), 'exports-map targets missing from the installed package').toEqual([]);
  expect(existsSync(path.join(pkgDir, 'LICENSE'))).toBe(true);

  writeFileSync(path.join(project, 'check.mjs'), ESM_CHECK);
  writeFileSync(path.join(project, 'check.cjs'), CJS_CHECK);
  const env = { SESSION_PROXY_URL: 'http://127.0.0.1:9' };
  const expected = (file: string) => ({
    resolved: pathToFileURL(path.join(pkgDir, 'dist', file)).href,
    manager: 'function',
    testing: ['function', 'function'],
    registered: ['default'],
  });
  const last = (out: string) => JSON.parse(out.trim().split('\n').pop()!) as unknown;
  expect(last(run(process.execPath, ['check.mjs'], project, 30_000, env))).toEqual(expected('index.mjs'));
  expect(last(run(process.execPath, ['check.cjs'], project, 30_000, env))).toEqual(expected('index.cjs'));
  // --no: never fetch a package of that name from the registry; the local bin must be there.
  const help = run('npx', ['--no', '--', 'session-proxy', '--help'], project, 30_000);
  expect(help).toMatch(/^Usage: session-proxy <command>/m);
  expect(help).toMatch(/check <proxy \| file>/);
}

/** Why the registry cannot serve a git install here, or undefined. `npm ping` uses npm's own settings (.npmrc, auth, proxy). */
function registryProblem(): string | undefined {
  try {
    run('npm', ['ping', '--fetch-retries=0', '--fetch-timeout=5000', '--loglevel=error'], repoRoot, 20_000);
    return undefined;
  } catch (err) {
    const lines = (err as Error).message.split('\n').filter((l) => /npm error|ETIMEDOUT|ENOTFOUND|ECONNREFUSED|timed out/i.test(l));
    return `npm ping failed: ${lines.slice(0, 2).join(' ').trim() || (err as Error).message.split('\n')[0]}`;
  }
}

const built = existsSync(path.join(repoRoot, 'dist', 'index.mjs')) && existsSync(path.join(repoRoot, 'dist', 'cli.mjs'));

describe('install into a scratch project', () => {
  it.skipIf(!built && !process.env.CI)('the npm pack tarball loads from ESM and CJS, and npx session-proxy --help runs', () => {
    const packDir = tempDir('sp-pack-');
    // --ignore-scripts: `prepare` would rebuild dist/ under the other test files; npm test built it.
    const packed = JSON.parse(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], repoRoot, 60_000)) as Array<{ filename: string }>;
    const tarball = path.join(packDir, packed[0].filename);
    const project = scratchProject('sp-tarball-');
    const ms = npmInstall(project, tarball, 120_000);
    console.log(`[install] tarball: npm install took ${(ms / 1000).toFixed(1)}s`);
    checkInstalled(project);
  }, 180_000);

  it.skipIf(nodeMajor !== 20)('a git URL of the repository builds dist/ by prepare and loads likewise (once, on Node 20)', (ctx) => {
    let head: string;
    try {
      head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } catch (err) {
      if (process.env.CI) throw new Error(`CI runs in a git clone, but git rev-parse HEAD failed: ${(err as Error).message}`);
      console.warn(`[install] git URL skipped: ${repoRoot} is not a git checkout (or git is missing)`);
      return ctx.skip('not a git checkout');
    }
    const problem = registryProblem();
    if (problem) {
      console.warn(`[install] git URL skipped: ${problem}; a git install runs prepare, which needs the devDependencies`);
      return ctx.skip(problem);
    }
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    if (dirty) console.warn(`[install] git URL: installs the commit ${head.slice(0, 12)}; uncommitted changes are not part of it`);
    const project = scratchProject('sp-git-');
    const ms = npmInstall(project, `git+${pathToFileURL(repoRoot).href.replace(/\/$/, '')}#${head}`, 420_000);
    console.log(`[install] git URL: npm install (clone, devDependencies, prepare) took ${(ms / 1000).toFixed(1)}s`);
    const lock = JSON.parse(readFileSync(path.join(project, 'package-lock.json'), 'utf8')) as { packages: Record<string, { resolved?: string }> };
    expect(lock.packages['node_modules/session-proxy']?.resolved).toContain(head);
    checkInstalled(project);
  }, 480_000);
});
