/** What a config test expects of a refusal: a ConfigError whose message shows none of the secrets (plain or percent-encoded). */
import { expect } from 'vitest';
import { ConfigError } from '../../../src/index.js';

export function configErrorWithout(secrets: readonly string[], fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    for (const secret of secrets) {
      expect(message).not.toContain(secret);
      expect(message).not.toContain(encodeURIComponent(secret));
    }
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}
