/** Files a configuration names (`proxyList`, `caFile`): resolved against the config file's directory, read without echoing them. */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { fail } from './report.js';

export { isPlainObject } from './keys.js';

export function resolveFile(file: string, baseDir: string): string {
  return isAbsolute(file) ? file : resolvePath(baseDir, file);
}

export function readText(file: string, shown: string, path: string, src: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : `cannot read it (${code ?? 'error'})`;
    throw fail(path, `${shown}: ${why}`, src);
  }
}
