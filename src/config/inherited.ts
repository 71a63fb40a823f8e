/**
 * The child's side of children/config-files.ts: the configuration a parent
 * handed down, as JSON text (a configuration source, like a file or the
 * environment: the loader follows the pointer).
 *
 * - A Worker finds it in worker environment data (`getEnvironmentData`,
 *   copied into each Worker when it is constructed; never its `env`). The
 *   preload takes it out, so the app and the Workers it starts do not see it.
 * - A child process finds a pointer in SESSION_PROXY_CONFIG_REF: an absolute
 *   path to a regular file of this user that nobody else can read or write
 *   (anything else is refused: a file another user could write would let
 *   them choose this process's proxies).
 *
 * A pointer that cannot be followed is a ConfigError saying why; the preload
 * then fails closed.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { getEnvironmentData, isMainThread, setEnvironmentData } from 'node:worker_threads';
import { ConfigError } from '../errors.js';

export const CONFIG_REF_ENV = 'SESSION_PROXY_CONFIG_REF';
/** A pointer that says why there is no file (the parent could not write one): the child fails closed with that reason. */
export const UNAVAILABLE = 'unavailable:';
/** The worker environment data key a Worker's configuration travels under. */
export const WORKER_CONFIG_KEY = 'session-proxy.config.v1';

/** The configuration handed to this Worker, taken out of its environment data (undefined on the main thread, or when none was). */
export function takeWorkerConfig(): string | undefined {
  if (isMainThread) return undefined;
  const text = getEnvironmentData(WORKER_CONFIG_KEY);
  if (text === undefined) return undefined;
  setEnvironmentData(WORKER_CONFIG_KEY, undefined);
  return typeof text === 'string' ? text : undefined;
}

/** Reads the file a pointer names. @throws ConfigError naming the pointer and why it cannot be used */
export function readConfigRef(ref: string): string {
  const refuse = (why: string): ConfigError => new ConfigError(`${CONFIG_REF_ENV}: cannot use the configuration the parent process passed${why}`);
  if (ref.startsWith(UNAVAILABLE)) throw refuse(`:${ref.slice(UNAVAILABLE.length)}`);
  if (!isAbsolute(ref)) throw refuse(': the pointer is not an absolute file path');
  let fd: number;
  try {
    fd = openSync(ref, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'file not found (the process that wrote it has exited and removed it)'
        : code === 'EACCES'
          ? 'permission denied (it belongs to another user)'
          : code === 'ELOOP'
            ? 'it is a symbolic link'
            : `cannot read it (${code ?? 'error'})`;
    throw refuse(` at ${ref}: ${why}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw refuse(` at ${ref}: not a regular file`);
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) throw refuse(` at ${ref}: it belongs to another user (uid ${st.uid})`);
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) throw refuse(` at ${ref}: other users can read or write it (mode ${(st.mode & 0o777).toString(8)})`);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
