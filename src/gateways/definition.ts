/**
 * A rotating gateway as configured: one vendor URL whose exit IP is chosen by
 * parameters in the username (or password). A GatewayDefinition is validated
 * once, at start-up (every invalid combination is a ConfigError then), and
 * renders the proxy endpoint of any session: `endpoint(id)` for a sticky
 * session, `endpoint(undefined)` for the sessionless form. It never holds a
 * session itself — the manager gives each account its own (sessions.ts).
 *
 * The password stays inside the base ProxyEndpoint's private field; the
 * definition prints itself redacted and serializes the password only through
 * `toDocument()` (what a child process receives, like endpointJson).
 */
import { randomInt } from 'node:crypto';
import { inspect } from 'node:util';
import { ConfigError, ProxyUrlError } from '../errors.js';
import { ProxyEndpoint, isProxyEndpoint, typeName, type ProxyInfo, type ProxyTlsOptions } from '../proxy/endpoint.js';
import { parseProxy } from '../proxy/parse.js';
import { formatDuration, parseDuration, unitMs, wholeUnits } from './duration.js';
import { Grammar, type FieldValues } from './grammar.js';
import { GATEWAY_PRESETS, GATEWAY_PRESET_NAMES, isGatewayPresetName, type GatewayPreset, type GatewayPresetName, type LifetimeRule, type SessionRule } from './presets.js';

export type SessionMode = 'sticky' | 'per-connection';

/** `template` instead of `gateway`: any other vendor's grammar. */
export interface GatewayTemplateInput {
  /** Which half of the credentials carries the parameters. */
  in: 'username' | 'password';
  /** e.g. `'{user}[-country-{country}]-session-{session}'`; `[…]` segments are left out when their field is unset. */
  format: string;
  /** How minted session ids look. @default { length: 10, alphabet: 'abcdefghijklmnopqrstuvwxyz0123456789' } */
  session?: { length?: number; alphabet?: string };
  /** How `{lifetime}` is written: whole seconds, minutes or hours, optionally bounded (in that unit). */
  lifetime?: { unit: 's' | 'm' | 'h'; min?: number; max?: number };
  /** How `{country}` is written. @default 'lower' */
  countryCase?: 'lower' | 'upper';
}

export interface GatewayInput {
  /** The vendor's gateway URL with the account's credentials, e.g. `http://brd-customer-C-zone-Z:pw@brd.superproxy.io:33335`. */
  url: string | URL;
  gateway?: GatewayPresetName;
  template?: GatewayTemplateInput;
  /** Two-letter ISO 3166-1 code (`us`); written as the vendor wants it. */
  country?: string;
  city?: string;
  /** `sticky` (default): one session per account, kept until rotate() or its lifetime. `per-connection`: a new session for every connection. */
  session?: SessionMode;
  /** How long the vendor keeps a session (`'10m'`, `'90s'`, or milliseconds): the account moves to a fresh one shortly before. */
  lifetime?: string | number;
  /** Start with this session id instead of minting one (a restarted process keeping its IP, a child process). */
  sessionId?: string;
  label?: string;
  username?: string;
  password?: string;
  tls?: ProxyTlsOptions;
  connectTimeout?: number;
}

/** What a session endpoint says about itself (no secrets): ProxyEndpoint.gateway. */
export interface GatewayTag {
  readonly name: string;
  /** The session id the credentials carry; undefined for the sessionless (rotating) form. */
  readonly session: string | undefined;
  /** Every session of one gateway shares this key: health is per gateway host. */
  readonly key: string;
  /** The gateway's secret-free identity across processes (the definition's storeKey). */
  readonly slot: string;
  /** The redacted URL of the sessionless form. */
  readonly slotUrl: string;
}

export const GATEWAY_KEYS = ['gateway', 'template', 'country', 'city', 'session', 'lifetime', 'sessionId'] as const;

const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
const UNIT_WORDS = { s: 'seconds', m: 'minutes', h: 'hours' } as const;
const kDefinition = Symbol.for('session-proxy.gateway-definition');

/** Which definition made a session endpoint: a child's configuration carries the gateway, not a bare URL. */
const definitions = new WeakMap<ProxyEndpoint, GatewayDefinition>();

/** The gateway a session endpoint belongs to, if `endpoint()` of a definition made it. */
export function gatewayDefinitionOf(endpoint: ProxyEndpoint): GatewayDefinition | undefined {
  return definitions.get(endpoint);
}

export function isGatewayDefinition(v: unknown): v is GatewayDefinition {
  return v !== null && typeof v === 'object' && (v as Record<symbol, unknown>)[kDefinition] === 1;
}

/** A `{ url, gateway | template, … }` object (not yet validated). */
export function isGatewayInput(v: unknown): v is GatewayInput {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || isGatewayDefinition(v) || isProxyEndpoint(v)) return false;
  const o = v as Record<string, unknown>;
  return o.gateway !== undefined || o.template !== undefined;
}

export class GatewayDefinition {
  /** Preset name, or `template`. */
  readonly name: string;
  readonly title: string;
  readonly mode: SessionMode;
  readonly country: string | undefined;
  readonly city: string | undefined;
  /** The lifetime asked for (ms), rendered into the credentials. */
  readonly lifetimeMs: number | undefined;
  /** When the vendor ends a session: the lifetime asked for, else the vendor's documented default. */
  readonly expiresAfterMs: number | undefined;
  readonly pinnedSession: string | undefined;
  /** Health key shared by every session (per gateway host and credentials). */
  readonly key: string;
  /** Secret-free and stable across processes: where a session store keeps this gateway's sessions. */
  readonly storeKey: string;
  readonly #base: ProxyEndpoint;
  readonly #grammar: Grammar;
  readonly #in: 'username' | 'password';
  readonly #credential: string;
  readonly #sessionRule: SessionRule | undefined;
  readonly #lifetimeRule: LifetimeRule | undefined;
  readonly #input: Readonly<Record<string, unknown>>;

  /** @throws ConfigError naming the key path (`path`) and what is wrong; never the password. */
  constructor(input: GatewayInput, options: { defaultProtocol?: ProxyEndpoint['protocol']; path?: string } = {}) {
    const path = options.path ?? 'gateway';
    if (input === null || typeof input !== 'object') throw new ConfigError(`${path}: expected a gateway object { url, gateway | template, … }, got ${typeName(input)}`);
    const has = (k: string): boolean => (input as unknown as Record<string, unknown>)[k] !== undefined;
    if (has('gateway') === has('template')) throw new ConfigError(`${path}: a gateway needs exactly one of "gateway" (${GATEWAY_PRESET_NAMES.join(', ')}) or "template"`);
    let preset: GatewayPreset | undefined;
    if (has('gateway')) {
      const name: unknown = input.gateway;
      if (!isGatewayPresetName(name)) {
        throw new ConfigError(`${path}.gateway: unknown gateway ${typeof name === 'string' && name.length <= 30 ? JSON.stringify(name) : typeName(name)} (known: ${GATEWAY_PRESET_NAMES.join(', ')}; use "template" for another vendor)`);
      }
      preset = GATEWAY_PRESETS[name];
    }
    const t = preset ? undefined : checkTemplate(input.template, `${path}.template`);
    this.name = preset?.name ?? 'template';
    this.title = preset?.title ?? 'template gateway';
    this.#in = preset?.in ?? t!.in;
    this.#sessionRule = preset ? preset.session : t!.session;
    this.#lifetimeRule = preset ? preset.lifetime : t!.lifetime;
    this.#grammar = preset ? Grammar.parse(preset.format, preset.patterns, `${path}.gateway`) : t!.grammar;
    const countryCase = preset?.country.case ?? t!.countryCase;
    const cityStyle = preset?.city ?? 'underscore';

    let base: ProxyEndpoint;
    try {
      const { gateway: _g, template: _t, country: _c, city: _ci, session: _s, lifetime: _l, sessionId: _id, ...plain } = input as unknown as Record<string, unknown>;
      base = parseProxy(plain, options.defaultProtocol ? { defaultProtocol: options.defaultProtocol } : undefined);
    } catch (err) {
      if (err instanceof ProxyUrlError) throw new ConfigError(`${path}.url: ${err.message}`, { cause: err });
      throw err;
    }
    this.#base = base;
    const raw = this.#in === 'username' ? base.username : base.getPassword();
    if (raw === undefined || raw === '') {
      throw new ConfigError(`${path}.url: the ${this.title} gateway carries its parameters in the ${this.#in}, and the URL has none (${base})`);
    }

    // The URL may already carry parameters (a username copied from the vendor's dashboard): read them out.
    const read = this.#grammar.read(raw) ?? (preset?.name === 'webshare' ? this.#grammar.read(`${raw}-rotate`) : undefined) ?? { user: raw };
    let credential = read.user ?? raw;
    if (preset?.prefix && !credential.startsWith(preset.prefix)) credential = preset.prefix + credential;
    if (preset?.base && !preset.base.pattern.test(credential)) {
      throw new ConfigError(`${path}.url: a ${this.title} ${this.#in} is ${preset.base.expected}${this.#in === 'username' ? ` (got "${credential}")` : ''}`);
    }
    this.#credential = credential;

    const fromUrl = (key: 'country' | 'city' | 'session' | 'lifetime', option: unknown): unknown => {
      const inUrl = read[key];
      if (inUrl === undefined) return option;
      if (option !== undefined && String(option).toLowerCase() !== inUrl.toLowerCase()) {
        throw new ConfigError(`${path}: the URL's ${this.#in} sets ${key} "${this.#in === 'password' ? '…' : inUrl}" and the option "${key === 'session' ? 'sessionId' : key}" another; give it once`);
      }
      return option ?? inUrl;
    };

    this.country = normalizeCountry(fromUrl('country', input.country), countryCase, preset?.country.extra ?? [], `${path}.country`, this.title);
    this.city = normalizeCity(fromUrl('city', input.city), cityStyle, `${path}.city`);
    if (this.city !== undefined && this.country === undefined) throw new ConfigError(`${path}.city: a city needs a country too`);
    if (this.city !== undefined && !this.#grammar.fields.includes('city')) throw new ConfigError(`${path}.city: the ${this.title} format has no {city}`);
    if (this.country !== undefined && !this.#grammar.fields.includes('country')) throw new ConfigError(`${path}.country: the ${this.title} format has no {country}`);

    const mode: unknown = input.session ?? (this.#sessionRule && this.#grammar.fields.includes('session') ? 'sticky' : 'per-connection');
    if (mode !== 'sticky' && mode !== 'per-connection') throw new ConfigError(`${path}.session: expected "sticky" or "per-connection", got ${typeof mode === 'string' && mode.length <= 20 ? JSON.stringify(mode) : typeName(mode)}`);
    if (mode === 'sticky' && !this.#sessionRule) throw new ConfigError(`${path}.session: ${this.title} is a rotating endpoint only (a new IP per connection, no sticky session): use session: "per-connection", or its static proxies as plain proxies`);
    if (this.#sessionRule && !this.#grammar.fields.includes('session')) throw new ConfigError(`${path}.template.format: a session gateway's format needs {session}`);
    this.mode = mode as SessionMode;

    const urlLifetime = read.lifetime === undefined ? undefined : this.#lifetimeFromVendor(read.lifetime);
    if (urlLifetime !== undefined && input.lifetime !== undefined && parseDuration(input.lifetime, `${path}.lifetime`) !== urlLifetime) {
      throw new ConfigError(`${path}: the URL's ${this.#in} sets a lifetime and the option "lifetime" another; give it once`);
    }
    const lifetime = input.lifetime ?? urlLifetime;
    if (lifetime !== undefined) {
      const ms = parseDuration(lifetime, `${path}.lifetime`);
      if (!this.#lifetimeRule || !this.#grammar.fields.includes('lifetime')) throw new ConfigError(`${path}.lifetime: ${this.title} has no lifetime parameter${preset?.name === 'brightdata' ? ' (a session lasts while it is used; idle, it ends after 60 s)' : ''}`);
      if (mode !== 'sticky') throw new ConfigError(`${path}.lifetime: a lifetime applies to sticky sessions, not to session: "per-connection"`);
      this.#checkLifetime(ms, `${path}.lifetime`);
      this.lifetimeMs = ms;
    }
    this.expiresAfterMs = mode === 'sticky' ? (this.lifetimeMs ?? preset?.defaultLifetimeMs) : undefined;

    const pinned = fromUrl('session', input.sessionId);
    if (pinned !== undefined) {
      if (typeof pinned !== 'string' || !this.acceptsSession(pinned)) throw new ConfigError(`${path}.sessionId: a ${this.title} session id is ${this.#sessionRule?.rule ?? 'not used (rotating endpoint)'}`);
      if (mode !== 'sticky') throw new ConfigError(`${path}.sessionId: a pinned session needs session: "sticky"`);
    }
    this.pinnedSession = pinned as string | undefined;
    this.key = `gateway:${base.identityKey}`;
    this.storeKey = JSON.stringify([this.name, base.protocol, base.host, base.port, base.username ?? null, this.country ?? null, this.city ?? null]);
    const record: Record<string, unknown> = { ...(preset ? { gateway: preset.name } : { template: input.template }) };
    for (const k of ['country', 'city', 'session', 'lifetime', 'sessionId'] as const) if (input[k] !== undefined) record[k] = input[k];
    this.#input = Object.freeze(record);
    Object.defineProperty(this, kDefinition, { value: 1, enumerable: false });
    Object.freeze(this);
  }

  /** The base endpoint: the URL as given, without parameters in its credentials. */
  get base(): ProxyEndpoint {
    return this.#base;
  }

  /** Which half of the credentials carries the parameters. */
  get carrier(): 'username' | 'password' {
    return this.#in;
  }

  /** Whether the credentials can carry a session id (Webshare's rotating endpoint cannot). */
  get hasSessions(): boolean {
    return !!this.#sessionRule && this.#grammar.fields.includes('session');
  }

  /** A new session id, as the vendor wants it. */
  mint(): string {
    const rule = this.#sessionRule;
    if (!rule) throw new ConfigError(`${this.title} has no sessions to mint`);
    let id = '';
    for (let i = 0; i < rule.length; i++) id += rule.alphabet[randomInt(rule.alphabet.length)];
    return id;
  }

  acceptsSession(id: string): boolean {
    return !!this.#sessionRule && new RegExp(`^(?:${this.#sessionRule.accepts})$`).test(id);
  }

  /** The credential carrying `session` (undefined: the sessionless form) — what the gateway receives. */
  credentialFor(session: string | undefined): string {
    const values: FieldValues = { user: this.#credential, country: this.country, city: this.city, session };
    if (session !== undefined && this.lifetimeMs !== undefined) values.lifetime = this.#lifetimeForVendor(this.lifetimeMs);
    return this.#grammar.render(values);
  }

  /** The proxy endpoint of one session: its identity (pools, exclusivity) is the session's. */
  endpoint(session: string | undefined): ProxyEndpoint {
    if (session !== undefined && !this.acceptsSession(session)) throw new ConfigError(`a ${this.title} session id is ${this.#sessionRule?.rule ?? 'not used'}`);
    const b = this.#base;
    const credential = this.credentialFor(session);
    const endpoint = new ProxyEndpoint({
      protocol: b.protocol,
      host: b.host,
      port: b.port,
      username: this.#in === 'username' ? credential : b.username,
      password: this.#in === 'password' ? credential : b.getPassword(),
      label: b.label,
      tls: b.tls,
      connectTimeout: b.connectTimeout,
      gateway: { name: this.name, session, key: this.key, slot: this.storeKey, slotUrl: session === undefined ? '' : this.#sessionlessUrl() },
    });
    definitions.set(endpoint, this);
    return endpoint;
  }

  #slotUrl: string | undefined;
  /** The redacted URL of the sessionless form, built once. */
  #sessionlessUrl(): string {
    return (this.#slotUrl ??= this.endpoint(undefined).url);
  }

  /** Parameters read back from a credential this gateway's grammar produced (the mock gateway, tests). */
  read(credential: string): FieldValues | undefined {
    return this.#grammar.read(credential);
  }

  /** The configuration object that recreates this definition, password included (for a child process's environment). */
  toDocument(): Record<string, unknown> {
    const b = this.#base;
    const doc: Record<string, unknown> = { url: `${b.protocol}://${b.authority}` };
    if (b.username !== undefined) doc.username = b.username;
    const password = b.getPassword();
    if (password !== undefined) doc.password = password;
    Object.assign(doc, this.#input);
    if (typeof doc.lifetime === 'number') doc.lifetime = formatDuration(doc.lifetime);
    return doc;
  }

  info(): ProxyInfo & { gateway: string } {
    return { ...this.#base.info(), gateway: this.name };
  }

  toString(): string {
    return `${this.name} gateway ${this.#base}`;
  }

  toJSON(): ProxyInfo & { gateway: string } {
    return this.info();
  }

  [inspect.custom](): string {
    return `GatewayDefinition <${this}>`;
  }

  #checkLifetime(ms: number, path: string): void {
    const r = this.#lifetimeRule!;
    if (ms < r.minMs || ms > r.maxMs) throw new ConfigError(`${path}: ${formatDuration(ms)} is outside ${this.title}'s range (${r.range})`);
    this.#lifetimeForVendor(ms, path);
  }

  #lifetimeForVendor(ms: number, path = 'lifetime'): string {
    const r = this.#lifetimeRule!;
    if (r.unit === 'one-unit') {
      const text = formatDuration(ms);
      if (text.endsWith('ms')) throw new ConfigError(`${path}: ${this.title} takes whole seconds at least (${r.range})`);
      return text;
    }
    const n = wholeUnits(ms, r.unit);
    if (n === undefined) throw new ConfigError(`${path}: ${formatDuration(ms)} is not a whole number of ${UNIT_WORDS[r.unit]} (${r.range})`);
    return String(n);
  }

  #lifetimeFromVendor(text: string): number {
    return lifetimeFromVendor(this.#lifetimeRule, text);
  }
}

function checkTemplate(v: unknown, path: string): { in: 'username' | 'password'; grammar: Grammar; session: SessionRule | undefined; lifetime: LifetimeRule | undefined; countryCase: 'lower' | 'upper' } {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${path}: expected { in: "username" | "password", format, session?: { length, alphabet } }, got ${typeName(v)}`);
  const t = v as Record<string, unknown>;
  for (const k of Object.keys(t)) if (!['in', 'format', 'session', 'lifetime', 'countryCase'].includes(k)) throw new ConfigError(`${path}.${k}: unknown key (a template has in, format, session, lifetime, countryCase)`);
  if (t.in !== 'username' && t.in !== 'password') throw new ConfigError(`${path}.in: expected "username" or "password"`);
  const countryCase = t.countryCase ?? 'lower';
  if (countryCase !== 'lower' && countryCase !== 'upper') throw new ConfigError(`${path}.countryCase: expected "lower" or "upper"`);
  const s = (t.session ?? {}) as Record<string, unknown>;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new ConfigError(`${path}.session: expected { length, alphabet }`);
  const length = s.length ?? 10;
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 1 || length > 128) throw new ConfigError(`${path}.session.length: expected a whole number from 1 to 128`);
  const alphabet = s.alphabet ?? ALNUM;
  if (typeof alphabet !== 'string' || alphabet.length < 2 || /[\s:@[\]{}\\]/.test(alphabet)) throw new ConfigError(`${path}.session.alphabet: expected at least two characters, none of them a space, ":", "@", brackets or "\\"`);
  const chars = [...new Set(alphabet)].map((c) => c.replace(/[\]\\^-]/g, '\\$&')).join('');
  const session: SessionRule = { alphabet, length, accepts: `[${chars}]{${length}}`, rule: `${length} characters from "${alphabet}"` };
  let lifetime: LifetimeRule | undefined;
  if (t.lifetime !== undefined) {
    const l = t.lifetime as Record<string, unknown>;
    if (l === null || typeof l !== 'object' || !['s', 'm', 'h'].includes(l.unit as string)) throw new ConfigError(`${path}.lifetime: expected { unit: "s" | "m" | "h", min?, max? }`);
    const unit = l.unit as 's' | 'm' | 'h';
    const per = unitMs(unit);
    const min = l.min ?? 1;
    const max = l.max ?? Number.MAX_SAFE_INTEGER / per;
    if (typeof min !== 'number' || typeof max !== 'number' || !(min > 0) || !(max >= min)) throw new ConfigError(`${path}.lifetime: min and max must be positive numbers, min ≤ max`);
    lifetime = { unit, minMs: min * per, maxMs: max * per, range: `{lifetime}: whole ${UNIT_WORDS[unit]}${l.min !== undefined || l.max !== undefined ? `, ${min} to ${max}` : ''}` };
  }
  const grammar = Grammar.parse(t.format, {
    country: countryCase === 'upper' ? '[A-Za-z]{2}' : '[a-z]{2}',
    city: '[A-Za-z0-9_+]+',
    session: session.accepts,
    lifetime: '\\d+',
  }, `${path}.format`);
  if (grammar.fields.includes('lifetime') && !lifetime) throw new ConfigError(`${path}.lifetime: the format has {lifetime}: say how it is written, e.g. { unit: "m" }`);
  return { in: t.in, grammar, session, lifetime, countryCase };
}

function normalizeCountry(v: unknown, form: 'lower' | 'upper', extra: readonly string[], path: string, title: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^[A-Za-z]{2}$/.test(v.trim())) {
    throw new ConfigError(`${path}: expected a two-letter ISO 3166-1 country code such as "us" or "de"${extra.length ? ` (${title} also takes ${extra.map((e) => `"${e}"`).join(', ')})` : ''}, got ${typeof v === 'string' && v.length <= 30 ? JSON.stringify(v) : typeName(v)}`);
  }
  const code = v.trim();
  return form === 'upper' ? code.toUpperCase() : code.toLowerCase();
}

function normalizeCity(v: unknown, style: 'squash' | 'underscore' | 'plus', path: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.trim() === '') throw new ConfigError(`${path}: expected a city name such as "new york", got ${typeName(v)}`);
  // Bright Data wants lower case without spaces, SOAX `new+york`; underscore-style vendors read it case-insensitively (kept as given).
  const trimmed = v.trim();
  const joined = style === 'underscore' ? trimmed.replace(/\s+/g, '_') : trimmed.toLowerCase().replace(/\s+/g, style === 'plus' ? '+' : '');
  if (!/^[a-z0-9_+]+$/i.test(joined)) throw new ConfigError(`${path}: a city name has letters, digits and spaces only, got ${v.length <= 40 ? JSON.stringify(v) : 'a long string'}`);
  return joined;
}

/**
 * A grammar on its own, as a gateway reads credentials (the mock gateway):
 * which half carries the parameters, and what a lifetime parameter means in ms.
 * @throws ConfigError for an unknown preset or an invalid template
 */
export function gatewayGrammar(vendor: GatewayPresetName | GatewayTemplateInput): { grammar: Grammar; carrier: 'username' | 'password'; title: string; prefix: string | undefined; lifetimeMs: (text: string) => number } {
  if (typeof vendor === 'string') {
    if (!isGatewayPresetName(vendor)) throw new ConfigError(`unknown gateway ${JSON.stringify(vendor)} (known: ${GATEWAY_PRESET_NAMES.join(', ')})`);
    const p = GATEWAY_PRESETS[vendor];
    return { grammar: Grammar.parse(p.format, p.patterns), carrier: p.in, title: p.title, prefix: p.prefix, lifetimeMs: (text) => lifetimeFromVendor(p.lifetime, text) };
  }
  const t = checkTemplate(vendor, 'template');
  return { grammar: t.grammar, carrier: t.in, title: 'template gateway', prefix: undefined, lifetimeMs: (text) => lifetimeFromVendor(t.lifetime, text) };
}

function lifetimeFromVendor(rule: LifetimeRule | undefined, text: string): number {
  if (!rule || rule.unit === 'one-unit') return parseDuration(/^\d+$/.test(text) ? `${text}s` : text, 'lifetime');
  return Number(text) * unitMs(rule.unit);
}
