/**
 * `${ENV_VAR}` interpolation inside the string values of a config file, so
 * secrets can stay in the environment: `"http://bot:${ALICE_PASS}@10.0.0.6:3128"`.
 *
 * - `${NAME}` is replaced by the variable's value; NAME is
 *   `[A-Za-z_][A-Za-z0-9_]*`. An unset variable is a ConfigError naming it
 *   (an empty one is used as is: set means set).
 * - `$${` is a literal `${`. A `$` not followed by `{` is literal.
 * - Keys are never interpolated, only values.
 *
 * Values carried in a parent's configuration (SESSION_PROXY_CONFIG_REF,
 * SESSION_PROXY_CONFIG_JSON) are already resolved and are not interpolated
 * again (a password may contain `${`).
 */
import { ConfigError } from '../errors.js';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface Interpolated {
  value: string;
  /** Whether any `${…}` was substituted: such a value may hold a secret and is never echoed. */
  substituted: boolean;
}

/** @param where key path for messages, e.g. `accounts.alice[0]` */
export function interpolate(text: string, env: NodeJS.ProcessEnv, where: string): Interpolated {
  if (!text.includes('$')) return { value: text, substituted: false };
  let out = '';
  let substituted = false;
  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    if (text.startsWith('$${', i)) {
      out += '${';
      i += 3;
      continue;
    }
    if (text[i + 1] !== '{') {
      out += c;
      i++;
      continue;
    }
    const close = text.indexOf('}', i + 2);
    if (close < 0) throw new ConfigError(`${where}: unterminated "\${" (expected \${ENV_VAR}; write $\${ for a literal "\${")`);
    const name = text.slice(i + 2, close);
    if (!NAME.test(name)) {
      throw new ConfigError(`${where}: invalid environment variable reference (expected \${NAME} with NAME made of letters, digits and _; write $\${ for a literal "\${")`);
    }
    const value = env[name];
    if (value === undefined) throw new ConfigError(`${where}: environment variable ${name} is not set (referenced as \${${name}})`);
    out += value;
    substituted = true;
    i = close + 1;
  }
  return { value: out, substituted };
}
