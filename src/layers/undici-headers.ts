/**
 * Node 20's bundled fetch (undici 6) merges a caller's explicit
 * `content-length` with its own into `"3, 3"`; undici 6 parsed that leniently,
 * undici 7 (the pools we delegate to) rejects it. Fold a list of *identical*
 * values back into one; anything else is left for undici to reject.
 */
type Headers = Record<string, unknown> | unknown[] | null | undefined;

export function foldRepeatedContentLength<T extends { headers?: unknown }>(opts: T): T {
  const headers = opts.headers as Headers;
  if (!headers || typeof headers !== 'object') return opts;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() !== 'content-length') continue;
      const folded = fold(headers[i + 1]);
      if (folded === undefined) return opts;
      const copy = headers.slice();
      copy[i + 1] = folded;
      return { ...opts, headers: copy };
    }
    return opts;
  }
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() !== 'content-length') continue;
    const folded = fold(headers[key]);
    return folded === undefined ? opts : { ...opts, headers: { ...headers, [key]: folded } };
  }
  return opts;
}

function fold(value: unknown): string | undefined {
  if (typeof value !== 'string' || !value.includes(',')) return undefined;
  const parts = value.split(',').map((p) => p.trim());
  return parts.every((p) => p === parts[0]) ? parts[0] : undefined;
}
