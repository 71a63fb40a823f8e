/**
 * Output helpers: a plain text table, a TTY-only progress bar on stderr, and
 * a last-line scrub of every password the command loaded (defense in depth:
 * proxies are printed through their redacting toString()).
 */
import { redactUrl } from '../proxy/redact.js';

export class Scrubber {
  private readonly secrets = new Set<string>();

  /** Remembers a secret to mask if it ever shows up in output. Very short ones are skipped: masking them would mangle IPs and ports. */
  add(secret: string | undefined): void {
    if (secret && secret.length >= 4) this.secrets.add(secret);
  }

  scrub(text: string): string {
    return redactUrl(text, this.secrets);
  }
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export interface Progress {
  tick(ok: boolean): void;
  done(): void;
}

/** A progress bar on stderr, only when stderr is a TTY and the list is long. */
export function progress(total: number, stream: NodeJS.WriteStream = process.stderr, minimum = 5): Progress {
  if (!stream.isTTY || total < minimum) return { tick() {}, done() {} };
  let finished = 0;
  let failed = 0;
  const width = 30;
  const draw = (): void => {
    const filled = Math.round((finished / total) * width);
    stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${finished}/${total}  failed ${failed}`);
  };
  draw();
  return {
    tick(ok: boolean) {
      finished++;
      if (!ok) failed++;
      draw();
    },
    done() {
      stream.write('\r\x1b[K');
    },
  };
}

/** Runs `fn` over items with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

export function formatLatency(ms: number | undefined): string {
  return ms === undefined ? '-' : `${ms} ms`;
}
