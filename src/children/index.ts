/** What a child process or Worker receives to run under the same configuration in one account's scope. */
export { registerEnvFor, registerPaths, registerImportUrl, nodeOptionsWithRegister, installedOptions } from './child-env.js';
export type { RegisterEnvOptions } from './child-env.js';
export { workerOptionsFor } from './worker.js';
