/**
 * diagnostics_channel channels, one per event. Publishing is guarded by
 * `hasSubscribers`, so an unobserved process pays one property read.
 * Payloads carry accounts and *redacted* proxies only.
 */
import diagnostics from 'node:diagnostics_channel';

export const channels = {
  route: diagnostics.channel('session-proxy:route'),
  rotate: diagnostics.channel('session-proxy:rotate'),
  leak: diagnostics.channel('session-proxy:leak'),
  egress: diagnostics.channel('session-proxy:egress'),
  egressChange: diagnostics.channel('session-proxy:egress-change'),
  dns: diagnostics.channel('session-proxy:dns'),
  proxyDown: diagnostics.channel('session-proxy:proxy-down'),
  proxyUp: diagnostics.channel('session-proxy:proxy-up'),
  storeDown: diagnostics.channel('session-proxy:store-down'),
  storeUp: diagnostics.channel('session-proxy:store-up'),
  lease: diagnostics.channel('session-proxy:lease'),
  fleetMismatch: diagnostics.channel('session-proxy:fleet-mismatch'),
} as const;

export type ChannelName = keyof typeof channels;

export function publish(name: ChannelName, payload: () => object): void {
  const ch = channels[name];
  if (ch.hasSubscribers) ch.publish(payload());
}
