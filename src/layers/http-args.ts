/**
 * `http.request(url?, options?, callback?)` in all its shapes, folded into one
 * options object the way Node itself does it, so the router sees the real
 * target and the original function receives an equivalent call.
 */
import type * as http from 'node:http';
import { urlToHttpOptions } from 'node:url';

export type RequestOptions = http.RequestOptions & { href?: string; protocol?: string | null; [key: symbol]: unknown };
export type ResponseCallback = (res: http.IncomingMessage) => void;

export function normalizeRequestArgs(args: unknown[]): { options: RequestOptions; callback: ResponseCallback | undefined } {
  let [input, options, callback] = args as [unknown, unknown, unknown];
  let base: RequestOptions | undefined;
  if (typeof input === 'string') base = urlToHttpOptions(new URL(input)) as RequestOptions;
  else if (input instanceof URL) base = urlToHttpOptions(input) as RequestOptions;
  else {
    callback = options;
    options = input;
    input = undefined;
  }
  if (typeof options === 'function') {
    callback = options;
    options = undefined;
  }
  const merged: RequestOptions = Object.assign(base ?? {}, (options as RequestOptions | undefined) ?? {});
  return { options: merged, callback: typeof callback === 'function' ? (callback as ResponseCallback) : undefined };
}

/** Host as the caller named it (IPv6 unbracketed), and the effective port. */
export function requestTarget(options: RequestOptions, secure: boolean): { host: string; port: number } {
  // `||` as Node's ClientRequest: an empty hostname falls back to host, an empty host to localhost.
  let host = String(options.hostname || options.host || 'localhost');
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const fallback = (options as { defaultPort?: number }).defaultPort ?? (options.agent as { defaultPort?: number } | undefined)?.defaultPort ?? (secure ? 443 : 80);
  const port = options.port !== undefined && options.port !== null && options.port !== '' ? Number(options.port) : fallback;
  return { host, port };
}

/** A copy of the options without the named headers. */
export function withoutHeaders(options: RequestOptions, names: readonly string[]): RequestOptions {
  const headers = options.headers;
  if (!headers) return options;
  const drop = (k: unknown): boolean => names.includes(String(k).toLowerCase());
  if (Array.isArray(headers)) {
    const kept: string[] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) if (!drop(headers[i])) kept.push(String(headers[i]), String(headers[i + 1]));
    return { ...options, headers: kept as unknown as http.OutgoingHttpHeaders };
  }
  return { ...options, headers: Object.fromEntries(Object.entries(headers).filter(([k]) => !drop(k))) };
}
