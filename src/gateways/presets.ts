/**
 * Vendor presets: each vendor's documented grammar for the credential that
 * carries the session, the country and the lifetime. The pages are cited next
 * to each preset; `test/gateways/fixtures.ts` keeps the examples they give,
 * copied verbatim with their address, and checks that they parse and render
 * exactly. Where a vendor's page was not available (it is said so below), the
 * grammar follows the issue that asked for the preset, and the fixture says so.
 */
import type { FieldPatterns } from './grammar.js';

export type GatewayPresetName = 'brightdata' | 'oxylabs' | 'decodo' | 'smartproxy' | 'iproyal' | 'soax' | 'webshare';

export interface SessionRule {
  /** Characters a minted session id is drawn from. */
  readonly alphabet: string;
  /** Length of a minted id. */
  readonly length: number;
  /** What the vendor accepts, for a pinned or parsed id (a regex source, anchored when used). */
  readonly accepts: string;
  /** The rule in words, for messages. */
  readonly rule: string;
}

export interface LifetimeRule {
  /** How the credential carries it: whole seconds, minutes or hours, or one number with one unit (s, m, h, d). */
  readonly unit: 's' | 'm' | 'h' | 'one-unit';
  readonly minMs: number;
  readonly maxMs: number;
  /** The range in the vendor's words, for messages. */
  readonly range: string;
}

export interface GatewayPreset {
  readonly name: GatewayPresetName;
  readonly title: string;
  /** Which half of the credentials carries the parameters. */
  readonly in: 'username' | 'password';
  readonly format: string;
  readonly patterns: FieldPatterns;
  /** Added in front of the credential when the URL does not have it (`customer-` for Oxylabs). */
  readonly prefix?: string;
  /** The credential the URL must carry (Bright Data: `brd-customer-<id>-zone-<zone>`). */
  readonly base?: { readonly pattern: RegExp; readonly expected: string };
  /** Country codes: two letters (ISO 3166-1 alpha-2), as the vendor writes them; `extra` are codes beyond ISO (`eu`). */
  readonly country: { readonly case: 'lower' | 'upper'; readonly extra?: readonly string[] };
  /** How a city name with spaces is written: `sanfrancisco`, `st_petersburg`, `new+york`. */
  readonly city: 'squash' | 'underscore' | 'plus';
  /** Undefined: a rotating endpoint only, no sticky session (Webshare). */
  readonly session: SessionRule | undefined;
  /** Undefined: the vendor has no lifetime parameter (a `lifetime` is a ConfigError). */
  readonly lifetime: LifetimeRule | undefined;
  /** The session length the vendor documents when none is asked for: the app rotates shortly before it. */
  readonly defaultLifetimeMs?: number;
  readonly docs: readonly string[];
}

const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
const MINUTE = 60_000;

const brightdata: GatewayPreset = {
  name: 'brightdata',
  title: 'Bright Data',
  in: 'username',
  // docs.brightdata.com/proxy-networks/config-options: "brd-customer-[customerID]-zone-[zone name]-[optional parameters]";
  // -country-xx (two-letter, lowercase, or `eu`) and -city-xxxxx (lowercase, no spaces): api-reference/proxy/geolocation-targeting.
  format: '{user}[-country-{country}][-city-{city}][-session-{session}]',
  patterns: { country: '[a-z]{2}', city: '[a-z0-9]+', session: '[A-Za-z0-9]+', lifetime: '\\d+' },
  base: { pattern: /^brd-customer-.+-zone-.+$/, expected: 'brd-customer-<customer id>-zone-<zone name>' },
  country: { case: 'lower', extra: ['eu'] },
  city: 'squash',
  // docs.brightdata.com/api-reference/proxy/rotate_ips: the -session value "should contain only alphanumeric
  // characters. Using special characters like - or * will result in an error". No lifetime parameter: the
  // super proxy keeps an idle session 60 s (help.brightdata.com/hc/en-us/articles/4413222056849).
  session: { alphabet: ALNUM, length: 12, accepts: '[A-Za-z0-9]+', rule: 'letters and digits only (a "-" or "*" is an error)' },
  lifetime: undefined,
  docs: [
    'https://docs.brightdata.com/proxy-networks/config-options',
    'https://docs.brightdata.com/api-reference/proxy/geolocation-targeting.md',
    'https://docs.brightdata.com/api-reference/proxy/rotate_ips.md',
    'https://help.brightdata.com/hc/en-us/articles/4413222056849-How-do-I-configure-IP-rotation-when-using-Bright-Data-',
  ],
};

const oxylabs: GatewayPreset = {
  name: 'oxylabs',
  title: 'Oxylabs',
  in: 'username',
  // developers.oxylabs.io …/residential-proxies/making-requests: customer-USERNAME-cc-US-city-CITY-sessid-abcde12345-sesstime-5;
  // cc: "case insensitive country code in 2-letter 3166-1 alpha-2 format" (…/select-country), written upper case in the docs;
  // city: "replace space with _" (city-st_petersburg).
  format: '{user}[-cc-{country}][-city-{city}][-sessid-{session}][-sesstime-{lifetime}]',
  patterns: { country: '[A-Za-z]{2}', city: '[A-Za-z0-9_]+', session: '[A-Za-z0-9]+', lifetime: '\\d+' },
  prefix: 'customer-',
  country: { case: 'upper' },
  city: 'underscore',
  // sessid: "randomly created alphanumeric string"; sesstime in minutes, "Maximum 1440 minutes (24 hours)" for
  // residential (products/cn/proxies/residential-proxies/session-control.md; older pages said 30). Default 10 minutes.
  session: { alphabet: ALNUM, length: 10, accepts: '[A-Za-z0-9]+', rule: 'letters and digits' },
  lifetime: { unit: 'm', minMs: MINUTE, maxMs: 1440 * MINUTE, range: 'sesstime: whole minutes, 1 to 1440' },
  defaultLifetimeMs: 10 * MINUTE,
  docs: [
    'https://developers.oxylabs.io/products/proxies/residential-proxies/session-control',
    'https://developers.oxylabs.io/products/cn/proxies/residential-proxies/session-control.md',
    'https://developers.oxylabs.io/es/proxies/residential-proxies/making-requests',
    'https://developers.oxylabs.io/proxies/residential-proxies/select-country',
  ],
};

const decodo: GatewayPreset = {
  name: 'decodo',
  title: 'Decodo (formerly Smartproxy)',
  in: 'username',
  // The username grammar user-U-country-xx-session-<id>-sessionduration-<min> is from the issue: no Decodo page
  // giving it was in the reference corpus. The range is Decodo's own: "The sessionduration parameter accepts any
  // integer (minute) value between 1 and 1440", default sticky time 10 minutes
  // (help.decodo.com/docs/residential-proxy-custom-sticky-sessions.md).
  format: '{user}[-country-{country}][-city-{city}][-session-{session}][-sessionduration-{lifetime}]',
  patterns: { country: '[a-z]{2}', city: '[a-z0-9_]+', session: '[A-Za-z0-9]+', lifetime: '\\d+' },
  prefix: 'user-',
  country: { case: 'lower' },
  city: 'underscore',
  session: { alphabet: ALNUM, length: 10, accepts: '[A-Za-z0-9]+', rule: 'letters and digits' },
  lifetime: { unit: 'm', minMs: MINUTE, maxMs: 1440 * MINUTE, range: 'sessionduration: whole minutes, 1 to 1440' },
  defaultLifetimeMs: 10 * MINUTE,
  docs: ['https://help.decodo.com/docs/residential-proxy-custom-sticky-sessions.md'],
};

const iproyal: GatewayPreset = {
  name: 'iproyal',
  title: 'IPRoyal',
  // docs.iproyal.com/proxies/residential/proxy/rotation: the parameters ride in the PASSWORD,
  // password321_country-br_session-sgn34f3e_lifetime-10m. "_session-": "a random alphanumeric string, precisely
  // 8 characters in length"; "_lifetime-": "minimum … 1 second, … maximum … 7 days … only one unit of time can be specified".
  in: 'password',
  format: '{user}[_country-{country}][_city-{city}][_session-{session}][_lifetime-{lifetime}]',
  patterns: { country: '[a-z]{2}', city: '[a-z0-9]+', session: '[A-Za-z0-9]{8}', lifetime: '\\d+[smhd]' },
  country: { case: 'lower' },
  city: 'squash',
  session: { alphabet: ALNUM, length: 8, accepts: '[A-Za-z0-9]{8}', rule: 'exactly 8 letters and digits' },
  lifetime: { unit: 'one-unit', minMs: 1_000, maxMs: 7 * 24 * 60 * MINUTE, range: 'lifetime: one number with one unit (s, m, h, d), 1 second to 7 days' },
  docs: ['https://docs.iproyal.com/proxies/residential/proxy/rotation.md'],
};

const soax: GatewayPreset = {
  name: 'soax',
  title: 'SOAX',
  in: 'username',
  // helpcenter.soax.com/en/articles/7035059: package-{package_id}-country-us-sessionid-{session_id}-sessionlength-{time_in_sec};
  // sessionlength "in seconds – from 0 seconds up to 86400 sec (24 hours). If you don't indicate sessionlength, a session
  // will last 180 sec"; country "Two symbols in ISO 3166-1 Alpha-2 format", city "New York - new+york" (articles/6723733).
  format: '{user}[-country-{country}][-city-{city}][-sessionid-{session}][-sessionlength-{lifetime}]',
  patterns: { country: '[a-z]{2}', city: '[a-z0-9+]+', session: '[A-Za-z0-9]+', lifetime: '\\d+' },
  prefix: 'package-',
  country: { case: 'lower' },
  city: 'plus',
  session: { alphabet: ALNUM, length: 10, accepts: '[A-Za-z0-9]+', rule: 'letters and digits' },
  lifetime: { unit: 's', minMs: 1_000, maxMs: 86_400_000, range: 'sessionlength: whole seconds, 1 to 86400' },
  defaultLifetimeMs: 180_000,
  docs: ['https://helpcenter.soax.com/en/articles/7035059-session-control-for-isp-proxies', 'https://helpcenter.soax.com/en/articles/6723733-sticky-sessions'],
};

const webshare: GatewayPreset = {
  name: 'webshare',
  title: 'Webshare (rotating endpoint)',
  in: 'username',
  // apidocs.webshare.io/proxy-connection: "{username}-us-rotate": "Append rotate to get a new IP on every request.
  // Cannot be combined with a session ID"; city "{username}-us-city_los_angeles". The same page also documents a
  // numeric sticky session id ({username}-us-1234); as the issue asks, the preset is the rotating endpoint only,
  // and Webshare's static proxies are plain proxies.
  format: '{user}[-{country}][-city_{city}]-rotate',
  patterns: { country: '[a-z]{2}', city: '[a-z_]+', session: '[0-9]+', lifetime: '\\d+' },
  country: { case: 'lower' },
  city: 'underscore',
  session: undefined,
  lifetime: undefined,
  docs: ['https://apidocs.webshare.io/proxy-connection'],
};

export const GATEWAY_PRESETS: Readonly<Record<GatewayPresetName, GatewayPreset>> = Object.freeze({
  brightdata,
  oxylabs,
  decodo,
  // Smartproxy is Decodo's former name: the same network and grammar.
  smartproxy: { ...decodo, name: 'smartproxy', title: 'Smartproxy (now Decodo)' },
  iproyal,
  soax,
  webshare,
});

export const GATEWAY_PRESET_NAMES = Object.keys(GATEWAY_PRESETS) as GatewayPresetName[];

export function isGatewayPresetName(v: unknown): v is GatewayPresetName {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(GATEWAY_PRESETS, v);
}
