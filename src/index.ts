export { SessionProxyManager } from './manager.js';
export type { MoveReason } from './routing/rotation.js';
export type { RotateOptions, RotateEvent, SessionProxyEvents, EgressEvent, ProxyHealthEvent, VerifyRow, VerifyEgressOptions } from './manager.js';
export type { ManagerStats, ProxyStats, AccountStats } from './health/stats.js';
export type { RotationStrategy } from './routing/strategies.js';
export type { SessionProxyOptions, ProxySpec, PoolEntryInput, RoutingRule, PacOptions } from './options.js';
export { install, getManager, withProxy, rotate, verifyEgress, uninstall } from './global.js';
export { parseProxy, parseProxyList } from './proxy/parse.js';
export { ProxyEndpoint, isProxyEndpoint } from './proxy/endpoint.js';
export type { ProxyInput, ProxyInfo, ProxyProtocol, ProxyObjectInput, ProxyTlsOptions, ProxyTlsKey, ParseOptions } from './proxy/endpoint.js';
export { NoProxyMatcher, LOOPBACK_NO_PROXY } from './proxy/no-proxy.js';
export { GatewayDefinition, isGatewayDefinition } from './gateways/definition.js';
export type { GatewayInput, GatewayTemplateInput, SessionMode } from './gateways/definition.js';
export { parseGateway } from './gateways/entry.js';
export { GATEWAY_PRESETS, GATEWAY_PRESET_NAMES } from './gateways/presets.js';
export type { GatewayPreset, GatewayPresetName } from './gateways/presets.js';
export { MemorySessionStore } from './gateways/sessions.js';
export type { SessionStore, StoredSession } from './gateways/sessions.js';
export { DEFAULT_EGRESS_ENDPOINTS } from './egress/verify.js';
export type { EgressOptions, EgressResult } from './egress/verify.js';
export type { EgressChangeEvent, WatchEgressConfig, WatchEgressOptions, WatchStats, WatchAction } from './egress/watch.js';
export type { LeakEvent } from './routing/leak-policy.js';
export { channels } from './diagnostics.js';
export {
  SessionProxyError,
  ProxyUrlError,
  ConfigError,
  InvalidArgumentError,
  UnknownAccountError,
  AlreadyInstalledError,
  NotInstalledError,
  ProxyConnectError,
  ProxyAuthError,
  ProxyUnavailableError,
  EgressUnavailableError,
  DrainTimeoutError,
  LeakBlockedError,
  EgressMismatchError,
  EgressLeakError,
  InvalidTargetError,
  EgressChangedError,
  StoreUnavailableError,
  findSessionProxyError,
} from './errors.js';
export { readFleet, fleetKey } from './store/index.js';
export type { StoreOptions, StoreSentinelOptions, StoreSpec, FleetStats, FleetAccountStats, FleetProxyStats, FleetInstance, FleetHolder } from './store/index.js';
export type { StoreStateEvent, LeaseEvent, FleetMismatchEvent } from './routing/fleet.js';
export { loadConfig, resolveConfig } from './config/index.js';
export type { LoadConfigOptions } from './config/index.js';
export { registerEnvFor, workerOptionsFor } from './children/index.js';
export type { RegisterEnvOptions } from './children/index.js';
export { enableDebugLogging, enableDebugLoggingFromEnv } from './debug.js';
