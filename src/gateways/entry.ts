/**
 * One entry of a pool as written — a proxy (URL, vendor line, object,
 * ProxyEndpoint) or a rotating gateway (`{ url, gateway | template, … }`, or
 * a GatewayDefinition) — parsed and validated. Config loading and the manager
 * both go through here, so a gateway is checked at start-up like any proxy.
 */
import type { ParseOptions, ProxyEndpoint } from '../proxy/endpoint.js';
import { parseProxy } from '../proxy/parse.js';
import { GatewayDefinition, isGatewayDefinition, isGatewayInput } from './definition.js';

export type PoolEntry = ProxyEndpoint | GatewayDefinition;

/** @throws ConfigError for an invalid gateway, ProxyUrlError for an invalid proxy */
export function parsePoolEntry(input: unknown, options: ParseOptions & { path?: string } = {}): PoolEntry {
  if (isGatewayDefinition(input)) return input;
  if (isGatewayInput(input)) return new GatewayDefinition(input, { defaultProtocol: options.defaultProtocol, path: options.path });
  const { path: _path, ...parse } = options;
  return parseProxy(input, parse);
}

/** Parses a gateway entry on its own (`{ url, gateway | template, … }`). @throws ConfigError */
export function parseGateway(input: unknown, options: { defaultProtocol?: ParseOptions['defaultProtocol']; path?: string } = {}): GatewayDefinition {
  if (isGatewayDefinition(input)) return input;
  return new GatewayDefinition(input as never, options);
}

/**
 * A proxy endpoint for any entry, for one-off use outside a manager (the CLI):
 * a gateway gives a fresh session (sticky) or its sessionless form.
 */
export function endpointOf(input: unknown, options: ParseOptions & { path?: string } = {}): ProxyEndpoint {
  const entry = parsePoolEntry(input, options);
  if (!isGatewayDefinition(entry)) return entry;
  return entry.endpoint(entry.mode === 'sticky' ? (entry.pinnedSession ?? entry.mint()) : undefined);
}
