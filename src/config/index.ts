/**
 * Configuration: loadConfig (code + config file + environment), the config
 * file format (schema/config.schema.json), and what a child process or
 * Worker needs to run under the same configuration in one account's scope.
 */
export { loadConfig, resolveConfig, hasProxies, PROXY_ENV_VARS, CONFIG_FILE_ENV, CONFIG_JSON_ENV, ACCOUNT_ENV } from './load.js';
export type { LoadConfigOptions, ResolvedConfig } from './load.js';
export { registerEnvFor, registerPaths, registerImportUrl, nodeOptionsWithRegister, installedOptions } from './child-env.js';
export type { RegisterEnvOptions } from './child-env.js';
export { workerOptionsFor } from './worker.js';
export { serializeConfig, MAX_CONFIG_JSON } from './serialize.js';
export { interpolate } from './interpolate.js';
