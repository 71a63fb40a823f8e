/**
 * Where a child's configuration goes: never its environment (any program the
 * app spawns — sh, git — would receive every password, and Linux caps one
 * environment string at 128 KiB), but a file the environment points to
 * (SESSION_PROXY_CONFIG_REF), readable by this user only:
 *
 * - one private directory per process, `fs.mkdtempSync` under `os.tmpdir()`
 *   (mode 0700), created at the first child that needs it;
 * - one file per distinct configuration (named by its SHA-256, mode 0600,
 *   written once with `wx`): a child gets the configuration as it is when it
 *   is spawned (a rotation or setAccount() writes a new file, earlier ones
 *   stay for the children that still have to read them);
 * - the directory is removed on the process's `exit` event (also
 *   `process.exit()` and an uncaught exception). A process that ends without
 *   one — SIGKILL, or SIGINT/SIGTERM/SIGHUP with Node's default handling —
 *   leaves it behind: 0600 files in a 0700 directory of this user in tmp,
 *   readable only by the user who could read the process's memory and its
 *   config file anyway, until the OS cleans tmp. No signal handler is
 *   installed for it: that would change how the app reacts to signals.
 *
 * A descendant that reads the file after this process exited (a daemon
 * started through `sh -c '… &'` that outlives it) finds it gone and fails
 * closed (see preload.ts). Writing can fail (tmp full or read-only): the
 * pointer then names why, every Node descendant fails closed, and programs
 * that are not Node spawn as usual.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UNAVAILABLE } from '../config/inherited.js';

let dir: string | undefined;
let hooked = false;
const written = new Map<string, string>();

function removeAll(): void {
  if (dir === undefined) return;
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // Nothing to do at exit; tmp is cleaned eventually.
  }
  dir = undefined;
  written.clear();
}

function privateDir(): string {
  if (dir !== undefined && existsSync(dir)) return dir;
  written.clear();
  if (!hooked) {
    process.on('exit', removeAll);
    hooked = true;
  }
  dir = mkdtempSync(join(tmpdir(), 'session-proxy-'));
  chmodSync(dir, 0o700);
  return dir;
}

/**
 * The pointer to a file holding `text` (written now, or earlier with the same
 * content). Never throws: when the file cannot be written, returns an
 * UNAVAILABLE pointer that says why.
 */
export function configFileFor(text: string): string {
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 32);
  const known = written.get(hash);
  if (known !== undefined && existsSync(known)) return known;
  try {
    const file = join(privateDir(), `${hash}.json`);
    try {
      writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    written.set(hash, file);
    return file;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
    return `${UNAVAILABLE} the parent process could not write the configuration under ${tmpdir()} (${code})`;
  }
}

/** The private directory, if one was created (tests; `removeChildConfigFiles` for an early cleanup). */
export function childConfigDir(): string | undefined {
  return dir;
}

/** Removes every file written so far (they are removed at exit anyway). */
export function removeChildConfigFiles(): void {
  removeAll();
}
