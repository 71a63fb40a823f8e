/**
 * The raw request a log entry records (`rawHead`): the bytes as received,
 * one latin1 character per byte, so a test can assert on exactly what reached
 * the proxy (a CR/LF smuggled into a CONNECT line, a NUL in a SOCKS4a name).
 * Bounded, and the one secret a request head carries, the Proxy-Authorization
 * credentials, is masked: a log printed by a failing test must not hold them.
 */

/** At most this many bytes of a request are kept. */
export const MAX_RAW_HEAD = 16 * 1024;

export function rawText(...parts: Buffer[]): string {
  const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  return maskProxyAuthorization(bytes.subarray(0, MAX_RAW_HEAD).toString('latin1'));
}

/** `Proxy-Authorization: Basic dXNlcjpwdw==` → `Proxy-Authorization: Basic ***`, on every line that has one. */
function maskProxyAuthorization(text: string): string {
  return text.replace(/(^|\r\n|\n)(proxy-authorization[ \t]*:[ \t]*)([^\r\n]*)/gi, (_, before: string, name: string, value: string) => {
    const scheme = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)([ \t]+)\S/.exec(value);
    return `${before}${name}${scheme ? `${scheme[1]}${scheme[2]}***` : '***'}`;
  });
}
