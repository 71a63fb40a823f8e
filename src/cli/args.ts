/** A small argv parser: `--name value`, `--name=value`, boolean flags, repeated flags, `--` ends options. */

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type FlagType = 'string' | 'number' | 'boolean' | 'strings';

export interface FlagSpec {
  readonly [name: string]: FlagType;
}

export interface Parsed {
  readonly positionals: string[];
  readonly flags: Record<string, string | number | boolean | string[] | undefined>;
}

/** Short aliases accepted by every command. */
const ALIASES: Record<string, string> = { '-h': '--help', '-c': '--config', '-j': '--json' };

export function parseArgs(argv: readonly string[], spec: FlagSpec): Parsed {
  const positionals: string[] = [];
  const flags: Parsed['flags'] = {};
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    arg = ALIASES[arg] ?? arg;
    if (!arg.startsWith('--') || arg === '-') {
      if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option ${arg}`);
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const type = spec[name];
    if (!type) throw new UsageError(`unknown option --${name}`);
    if (type === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      flags[name] = true;
      continue;
    }
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
      value = argv[++i]!;
    }
    if (type === 'number') {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got ${JSON.stringify(value)}`);
      flags[name] = n;
    } else if (type === 'strings') {
      ((flags[name] ??= []) as string[]).push(value);
    } else {
      flags[name] = value;
    }
  }
  return { positionals, flags };
}
