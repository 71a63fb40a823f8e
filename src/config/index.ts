/**
 * Configuration: loadConfig (code + config file + environment), the config
 * file format (schema/config.schema.json), interpolation and serialization.
 * Pure: what a child process or Worker receives lives in children/.
 */
export { loadConfig, resolveConfig, hasProxies, PROXY_ENV_VARS, CONFIG_FILE_ENV, CONFIG_JSON_ENV, ACCOUNT_ENV } from './load.js';
export type { LoadConfigOptions, ResolvedConfig } from './load.js';
export { serializeConfig } from './serialize.js';
export { interpolate } from './interpolate.js';
