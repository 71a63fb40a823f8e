/**
 * Helpers for the child-process tests: the probe fixture, the environment of
 * a spawned program as it really is (`env`), and what a pointer refers to.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const probe = fileURLToPath(new URL('./fixtures/probe.mjs', import.meta.url));
/** Children load dist/register.cjs: these tests need the build (npm test builds first). */
export const needsDist = !existsSync(`${root}/dist/register.cjs`) && !process.env.CI;

export const PROXY_VARS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'];
export const REF = 'SESSION_PROXY_CONFIG_REF';

export interface ProbeResult {
  fetchIp?: string;
  fetchError?: { code: string; message: string };
  httpIp?: string | { error: { code: string; message: string } };
  account?: string | null;
  accounts?: string[];
  manager?: string;
  grandchild?: ProbeResult & { failed?: string; stderr?: string };
}

/** Runs the probe (through the patched child_process, so the layer applies). */
export function runProbe(base: string, via?: 'node' | 'sh', options: { env?: NodeJS.ProcessEnv } = {}): Promise<ProbeResult & { stderr: string; code: number }> {
  const args = via ? [probe, base, via] : [probe, base];
  return new Promise((resolve, reject) =>
    execFile(process.execPath, args, { timeout: 30_000, cwd: root, ...options }, (err, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve({ ...(JSON.parse(line) as ProbeResult), stderr, code: (err as { code?: number } | null)?.code ?? 0 });
      } catch {
        reject(new Error(`probe printed no JSON (${err?.message ?? 'exit 0'})\nstdout: ${stdout}\nstderr: ${stderr}`));
      }
    }),
  );
}

/** `env` output as a record (values here hold no newlines). */
export function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

/**
 * Every place a password shows up in `env` where it may not: another route's
 * password anywhere, the own route's anywhere but its *_PROXY variables.
 */
export function misplacedSecrets(env: Record<string, string>, own: string | undefined, secrets: Record<string, string>): string[] {
  const found: string[] = [];
  for (const [name, secret] of Object.entries(secrets)) {
    for (const [key, value] of Object.entries(env)) {
      if (!value.includes(secret) && !value.includes(encodeURIComponent(secret))) continue;
      if (name === own && PROXY_VARS.includes(key)) continue;
      found.push(`${key} holds ${name}'s password`);
    }
  }
  return found;
}

/** What the pointer refers to: the file's text and the modes of the file and its directory. */
export function pointed(env: Record<string, string | undefined>): { text: string; fileMode: number; dirMode: number; path: string } {
  const path = env[REF];
  if (!path) throw new Error(`no ${REF} in the child's environment`);
  return { path, text: readFileSync(path, 'utf8'), fileMode: statSync(path).mode & 0o777, dirMode: statSync(dirname(path)).mode & 0o777 };
}
