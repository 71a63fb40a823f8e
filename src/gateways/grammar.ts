/**
 * The credential grammar of a rotating gateway, written the way vendors
 * document it: `{user}[-country-{country}]-session-{session}` — literal text,
 * `{field}` placeholders and `[…]` optional segments (one level, no nesting).
 * One compiled grammar both renders a credential from field values (an
 * optional segment appears when all its fields have a value) and parses one
 * back (the mock gateway, the vendors' documented examples as fixtures).
 *
 * Parsing is anchored and takes the shortest `{user}` after which the rest
 * reads as the grammar's parameters: `brd-customer-C-zone-Z-country-us` is the
 * user `brd-customer-C-zone-Z` with country `us`, never a user that swallows
 * the country.
 */
import { ConfigError } from '../errors.js';

export type GatewayField = 'user' | 'country' | 'city' | 'session' | 'lifetime';
export const GATEWAY_FIELDS: readonly GatewayField[] = ['user', 'country', 'city', 'session', 'lifetime'];

export type FieldValues = Partial<Record<GatewayField, string>>;

type Token = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'field'; readonly name: GatewayField } | { readonly kind: 'optional'; readonly tokens: readonly Token[] };

/** What each field may look like when parsing (the rendered side is checked before rendering). */
export type FieldPatterns = Readonly<Record<Exclude<GatewayField, 'user'>, string>>;

export class Grammar {
  private readonly regex: RegExp;
  private readonly order: GatewayField[] = [];

  private constructor(readonly format: string, private readonly tokens: readonly Token[], patterns: FieldPatterns) {
    const source = this.compile(tokens, patterns);
    this.regex = new RegExp(`^${source}$`, 's');
  }

  /** @throws ConfigError naming what is wrong with the format (`path` is the key it came from). */
  static parse(format: unknown, patterns: FieldPatterns, path = 'template.format'): Grammar {
    if (typeof format !== 'string' || format === '') throw new ConfigError(`${path}: expected a non-empty format string such as "{user}-session-{session}"`);
    const tokens = tokenize(format, path);
    const top = fieldsOf(tokens, false);
    const all = fieldsOf(tokens, true);
    const users = all.filter((f) => f === 'user');
    if (users.length !== 1 || !top.includes('user')) throw new ConfigError(`${path}: the format needs exactly one {user} (the credential as given in the URL), outside any [optional] segment`);
    for (const f of GATEWAY_FIELDS) if (all.filter((x) => x === f).length > 1) throw new ConfigError(`${path}: {${f}} appears more than once`);
    return new Grammar(format, tokens, patterns);
  }

  /** Fields the format mentions. */
  get fields(): GatewayField[] {
    return fieldsOf(this.tokens, true);
  }

  /** Fields outside optional segments: a credential always carries them. */
  get required(): GatewayField[] {
    return fieldsOf(this.tokens, false);
  }

  /** The credential for these values; undefined values leave their optional segment out. */
  render(values: FieldValues): string {
    const out = (tokens: readonly Token[], optional: boolean): string | undefined => {
      let s = '';
      for (const t of tokens) {
        if (t.kind === 'text') s += t.text;
        else if (t.kind === 'field') {
          const v = values[t.name];
          if (v === undefined || v === '') {
            if (optional) return undefined;
            throw new ConfigError(`the gateway format ${JSON.stringify(this.format)} needs a value for {${t.name}}`);
          }
          s += v;
        } else s += out(t.tokens, true) ?? '';
      }
      return s;
    };
    return out(this.tokens, false)!;
  }

  /** Field values read from a credential, or undefined when it does not follow the grammar. */
  read(credential: string): FieldValues | undefined {
    const m = this.regex.exec(credential);
    if (!m) return undefined;
    const values: FieldValues = {};
    this.order.forEach((name, i) => {
      const v = m[i + 1];
      if (v !== undefined) values[name] = v;
    });
    return values;
  }

  /**
   * Like read(), but as a gateway reads a credential: a parameter key left in
   * the user part (`-session-my-string`, `_session-abc`) means a value that does
   * not follow the grammar — an error naming the key, as the vendor would refuse it.
   */
  check(credential: string): { values: FieldValues } | { error: string } {
    const values = this.read(credential);
    if (!values) return { error: 'the credential does not follow the grammar' };
    const user = values.user ?? '';
    for (const key of this.keys()) if (user.includes(key)) return { error: `malformed "${key}" parameter` };
    return { values };
  }

  /** The literal that opens each optional segment (`-session-`), when it names its parameter. */
  private keys(): string[] {
    const out: string[] = [];
    for (const t of this.tokens) {
      if (t.kind !== 'optional') continue;
      const first = t.tokens[0];
      if (first?.kind === 'text' && /[A-Za-z]{2}/.test(first.text)) out.push(first.text);
    }
    return out;
  }

  private compile(tokens: readonly Token[], patterns: FieldPatterns): string {
    let s = '';
    for (const t of tokens) {
      if (t.kind === 'text') s += escape(t.text);
      else if (t.kind === 'field') {
        this.order.push(t.name);
        s += t.name === 'user' ? '(.+?)' : `(${patterns[t.name]})`;
      } else s += `(?:${this.compile(t.tokens, patterns)})?`;
    }
    return s;
  }
}

const FIELD_ALIASES: Readonly<Record<string, GatewayField>> = { user: 'user', password: 'user', username: 'user', country: 'country', city: 'city', session: 'session', lifetime: 'lifetime' };

function tokenize(format: string, path: string): Token[] {
  const root: Token[] = [];
  let current = root;
  let inOptional = false;
  let text = '';
  const flush = (): void => {
    if (text) current.push({ kind: 'text', text });
    text = '';
  };
  for (let i = 0; i < format.length; i++) {
    const c = format[i]!;
    if (c === '{') {
      const close = format.indexOf('}', i);
      if (close < 0) throw new ConfigError(`${path}: unclosed "{" in the format`);
      const name = format.slice(i + 1, close);
      const field = FIELD_ALIASES[name];
      if (!field) throw new ConfigError(`${path}: unknown placeholder {${name}} (expected {user}, {country}, {city}, {session} or {lifetime})`);
      flush();
      current.push({ kind: 'field', name: field });
      i = close;
    } else if (c === '[') {
      if (inOptional) throw new ConfigError(`${path}: optional [segments] cannot nest`);
      flush();
      inOptional = true;
      current = [];
    } else if (c === ']') {
      if (!inOptional) throw new ConfigError(`${path}: "]" without a matching "["`);
      flush();
      if (!current.some((t) => t.kind === 'field')) throw new ConfigError(`${path}: an optional [segment] must contain a {placeholder}`);
      root.push({ kind: 'optional', tokens: current });
      current = root;
      inOptional = false;
    } else if (c === '}') {
      throw new ConfigError(`${path}: "}" without a matching "{"`);
    } else text += c;
  }
  if (inOptional) throw new ConfigError(`${path}: unclosed "[" in the format`);
  flush();
  return root;
}

function fieldsOf(tokens: readonly Token[], deep: boolean): GatewayField[] {
  const out: GatewayField[] = [];
  for (const t of tokens) {
    if (t.kind === 'field') out.push(t.name);
    else if (t.kind === 'optional' && deep) out.push(...fieldsOf(t.tokens, false));
  }
  return out;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
