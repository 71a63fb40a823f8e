/**
 * `session-proxy/register`: install the process's manager from configuration
 * with no code change.
 *
 *   SESSION_PROXY_CONFIG=./proxies.json node --import session-proxy/register app.js
 *   HTTPS_PROXY=http://u:p@10.0.0.5:8080 node -r session-proxy/register app.js
 *
 * Reads loadConfig() (config file, SESSION_PROXY_URL / HTTPS_PROXY / …, or
 * the configuration a parent points to in SESSION_PROXY_CONFIG_REF — a
 * pointer that cannot be followed fails closed, see preload.ts), turns on
 * debug logging when
 * DEBUG=session-proxy* or NODE_DEBUG=session-proxy, and with
 * SESSION_PROXY_ACCOUNT runs the whole process in that account's scope.
 * With nothing configured it prints one warning line and installs nothing.
 * An invalid configuration stops the process with a one-line ConfigError.
 *
 * The app reaches the manager with getManager(); its own install() fails
 * with AlreadyInstalledError.
 */
import { preloadEntry } from './preload.js';

declare const __filename: string | undefined;

preloadEntry(typeof __filename === 'string' ? 'cjs' : 'esm');
