/**
 * The vendors' own examples, copied verbatim from the page given as `source`
 * (the reference corpus this project was built with), so the presets are
 * checked against the vendors' words and not only against our mock gateway.
 *
 * `text` is the credential exactly as the page prints it. Where the page gives
 * a template with placeholders instead of a concrete example, `substitute`
 * lists the replacements made before parsing, each taken from the same page
 * ("Example: rand123456") unless said otherwise. `from: 'issue'` marks a
 * fixture that comes from the issue text because no vendor page with the
 * grammar was available (Decodo's username grammar).
 */
import type { GatewayPresetName } from '../../src/gateways/presets.js';
import type { FieldValues } from '../../src/gateways/grammar.js';

export interface VendorFixture {
  readonly preset: GatewayPresetName;
  readonly from: 'vendor' | 'issue';
  readonly source: string;
  /** The line on the page the credential was taken from, verbatim. */
  readonly line: string;
  readonly text: string;
  readonly substitute?: Readonly<Record<string, string>>;
  readonly expect: FieldValues;
}

export const FIXTURES: readonly VendorFixture[] = [
  // --- Bright Data -----------------------------------------------------------
  {
    preset: 'brightdata',
    from: 'vendor',
    source: 'https://docs.brightdata.com/api-reference/proxy/geolocation-targeting.md',
    line: 'curl "https://example.com" --proxy brd.superproxy.io:33335 --proxy-user brd-customer-<customer_id>-zone-<zone_name>-country-us:<zone_password>',
    text: 'brd-customer-<customer_id>-zone-<zone_name>-country-us',
    expect: { user: 'brd-customer-<customer_id>-zone-<zone_name>', country: 'us' },
  },
  {
    preset: 'brightdata',
    from: 'vendor',
    source: 'https://help.brightdata.com/hc/en-us/articles/4413169471249-How-to-get-an-IP-in-a-specific-city',
    line: '--proxy-user brd-customer-<CUSTOMER_ID>-zone-<ZONE_NAME>-country-us-city-sanfrancisco:<ZONE_PASSWORD>',
    text: 'brd-customer-<CUSTOMER_ID>-zone-<ZONE_NAME>-country-us-city-sanfrancisco',
    expect: { user: 'brd-customer-<CUSTOMER_ID>-zone-<ZONE_NAME>', country: 'us', city: 'sanfrancisco' },
  },
  {
    preset: 'brightdata',
    from: 'vendor',
    source: 'https://help.brightdata.com/hc/en-us/articles/4413222056849-How-do-I-configure-IP-rotation-when-using-Bright-Data-',
    line: '--proxy-user brd-customer-<CUSTOMER\\_ID>-zone-<ZONE\\_NAME>-session-mystring12345:<ZONE\\_PASSWORD>',
    // The page escapes the underscores for its markdown (`<CUSTOMER\_ID>`); the credential is the unescaped text.
    text: 'brd-customer-<CUSTOMER_ID>-zone-<ZONE_NAME>-session-mystring12345',
    expect: { user: 'brd-customer-<CUSTOMER_ID>-zone-<ZONE_NAME>', session: 'mystring12345' },
  },
  // --- Oxylabs ---------------------------------------------------------------
  ...['iqwcp', 'tevab', '6drwn', '7eh7g', 'z7cao'].map(
    (id): VendorFixture => ({
      preset: 'oxylabs',
      from: 'vendor',
      source: 'https://developers.oxylabs.io/products/proxies/residential-proxies/session-control',
      line: `customer-USERNAME-sessid-${id}:PASSWORD`,
      text: `customer-USERNAME-sessid-${id}`,
      expect: { user: 'customer-USERNAME', session: id },
    }),
  ),
  {
    preset: 'oxylabs',
    from: 'vendor',
    source: 'https://developers.oxylabs.io/products/cn/proxies/residential-proxies/session-control',
    line: 'curl -x pr.oxylabs.io:7777 -U "customer-USERNAME-cc-DE-sessid-abcd1234:PASSWORD" https://ip.oxylabs.io/location',
    text: 'customer-USERNAME-cc-DE-sessid-abcd1234',
    expect: { user: 'customer-USERNAME', country: 'DE', session: 'abcd1234' },
  },
  ...[
    ['DE', 'qwert'],
    ['US', 'asdfg'],
    ['GB', 'zxcvb'],
  ].map(
    ([cc, id]): VendorFixture => ({
      preset: 'oxylabs',
      from: 'vendor',
      source: 'https://developers.oxylabs.io/products/cn/proxies/residential-proxies/session-control',
      line: `customer-USERNAME-cc-${cc}-sessid-${id}:PASSWORD`,
      text: `customer-USERNAME-cc-${cc}-sessid-${id}`,
      expect: { user: 'customer-USERNAME', country: cc, session: id },
    }),
  ),
  {
    preset: 'oxylabs',
    from: 'vendor',
    source: 'https://developers.oxylabs.io/es/proxies/residential-proxies/making-requests',
    line: 'customer-USERNAME-cc-US-city-CITY-sessid-abcde12345:PASSWORD',
    text: 'customer-USERNAME-cc-US-city-CITY-sessid-abcde12345',
    expect: { user: 'customer-USERNAME', country: 'US', city: 'CITY', session: 'abcde12345' },
  },
  {
    preset: 'oxylabs',
    from: 'vendor',
    source: 'https://developers.oxylabs.io/es/proxies/residential-proxies/making-requests',
    line: 'customer-USERNAME-cc-US-city-CITY-sessid-abcde12345-sesstime-5:PASSWORD',
    text: 'customer-USERNAME-cc-US-city-CITY-sessid-abcde12345-sesstime-5',
    expect: { user: 'customer-USERNAME', country: 'US', city: 'CITY', session: 'abcde12345', lifetime: '5' },
  },
  {
    preset: 'oxylabs',
    from: 'vendor',
    source: 'https://developers.oxylabs.io/proxies/residential-proxies/select-country',
    line: 'curl -x pr.oxylabs.io:7777 -U "customer-USERNAME-cc-DE:PASSWORD" https://ip.oxylabs.io/location',
    text: 'customer-USERNAME-cc-DE',
    expect: { user: 'customer-USERNAME', country: 'DE' },
  },
  // --- Decodo / Smartproxy: no Decodo page with the username grammar was in the corpus ---------
  {
    preset: 'decodo',
    from: 'issue',
    source: 'issue 12 ("Rotating gateways"), Interface: decodo / smartproxy',
    line: '`decodo` / `smartproxy` (`user-U-country-xx-session-<id>-sessionduration-<min>`)',
    text: 'user-U-country-xx-session-<id>-sessionduration-<min>',
    // Not from a vendor page: sample values for the placeholders (30 is inside the documented 1..1440).
    substitute: { '<id>': 'abc123', '<min>': '30' },
    expect: { user: 'user-U', country: 'xx', session: 'abc123', lifetime: '30' },
  },
  // --- IPRoyal ---------------------------------------------------------------
  {
    preset: 'iproyal',
    from: 'vendor',
    source: 'https://docs.iproyal.com/proxies/residential/proxy/rotation.md',
    line: 'curl -v -x http://username123:password321_country-br_session-sgn34f3e_lifetime-10m@geo.iproyal.com:12321 -L http://example.com',
    text: 'password321_country-br_session-sgn34f3e_lifetime-10m',
    expect: { user: 'password321', country: 'br', session: 'sgn34f3e', lifetime: '10m' },
  },
  // --- SOAX ------------------------------------------------------------------
  {
    preset: 'soax',
    from: 'vendor',
    source: 'https://helpcenter.soax.com/en/articles/7035059-session-control-for-isp-proxies',
    line: 'proxy.soax.com:5000 package-{package_id}-country-us-sessionid-{session_id}-sessionlength-{time_in_sec}:{package_key}',
    text: 'package-{package_id}-country-us-sessionid-{session_id}-sessionlength-{time_in_sec}',
    // The same page: "sessionid … Example: rand123456", "sessionlength … Example: 90".
    substitute: { '{session_id}': 'rand123456', '{time_in_sec}': '90' },
    expect: { user: 'package-{package_id}', country: 'us', session: 'rand123456', lifetime: '90' },
  },
  // --- Webshare --------------------------------------------------------------
  {
    preset: 'webshare',
    from: 'vendor',
    source: 'https://apidocs.webshare.io/proxy-connection',
    line: 'Rotate`{username}-us-rotate`',
    text: '{username}-us-rotate',
    expect: { user: '{username}', country: 'us' },
  },
];

export function substituted(f: VendorFixture): string {
  let text = f.text;
  for (const [from, to] of Object.entries(f.substitute ?? {})) text = text.split(from).join(to);
  return text;
}
