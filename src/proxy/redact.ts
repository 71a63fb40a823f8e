/**
 * Scrubs passwords out of text we did not write (messages of errors thrown
 * by agents, sockets, undici), where proxy URLs may appear verbatim.
 *
 * The pattern errs towards over-redaction: a password may contain raw `@`,
 * `/`, `#` or `:` (parseProxy accepts them), so everything from the first
 * `:` after `scheme://user` up to the LAST `@` of the same whitespace-free run
 * is masked. That can also mask text that was not a password (in
 * `http://host:8080/a@b` the port and path go), which is the safe mistake.
 *
 * What no pattern can find, callers who know the secret can pass in
 * `secrets`: a password with raw spaces, a `host:port:user:pass` vendor line.
 */

// scheme://user:password@ — the user may contain `@` (e-mail style user
// names), not `:` or `/`; the password is greedy up to the last `@`.
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^\s:/]*):(\S+)@/gi;

export function redactUrl(text: string, secrets?: Iterable<string | undefined>): string {
  let out = String(text).replace(URL_CREDENTIALS, '$1:***@');
  if (!secrets) return out;
  // The raw form and the percent-encoded form a URL would carry; longest
  // first, so a secret that contains another is not left half masked.
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (!secret) continue;
    forms.add(secret);
    forms.add(encodeURIComponent(secret));
  }
  for (const form of [...forms].sort((a, b) => b.length - a.length)) out = out.split(form).join('***');
  return out;
}
