/**
 * Debug logging: one line per diagnostics-channel event on stderr, e.g.
 *
 *   session-proxy:route alice → http://u:***@127.0.0.1:3128 (undici) api.exchange.test:443
 *
 * Turned on by `DEBUG=session-proxy*` (the `debug` package's syntax: comma or
 * space separated patterns, `*` wildcards, `-pattern` excludes; so
 * `DEBUG=session-proxy:route,session-proxy:leak` picks channels) or
 * `NODE_DEBUG=session-proxy` (all channels). The preload calls
 * `enableDebugLoggingFromEnv()`; apps can call `enableDebugLogging()`.
 *
 * Payloads carry redacted proxies only; every line also goes through
 * redactUrl, so a URL with credentials that slipped into a message (an
 * error from a third-party agent) is masked too.
 */
import diagnostics from 'node:diagnostics_channel';
import { redactUrl } from './proxy/redact.js';

export const DEBUG_CHANNELS = ['route', 'rotate', 'leak', 'egress', 'dns', 'proxy-down', 'proxy-up'] as const;
export type DebugChannel = (typeof DEBUG_CHANNELS)[number];

export type DebugWrite = (line: string) => void;

export interface DebugOptions {
  /** Channels to log (names without the `session-proxy:` prefix). @default all */
  channels?: readonly DebugChannel[];
}

const kActive = Symbol.for('session-proxy.debug.v1');

interface Active {
  disable: () => void;
}

/**
 * Subscribes a line writer to the library's channels; returns a function
 * that unsubscribes. Calling it again replaces the previous subscription (one
 * per process, shared by the ESM and CJS builds).
 */
export function enableDebugLogging(write: DebugWrite = defaultWrite, options: DebugOptions = {}): () => void {
  const g = globalThis as unknown as Record<symbol, Active | undefined>;
  g[kActive]?.disable();
  const names = options.channels ?? DEBUG_CHANNELS;
  const subscriptions: Array<[string, (message: unknown) => void]> = [];
  for (const name of names) {
    const channel = `session-proxy:${name}`;
    const onMessage = (message: unknown): void => {
      let line: string;
      try {
        line = `${channel} ${formatEvent(name, message)}`;
      } catch {
        line = `${channel} (unprintable event)`;
      }
      try {
        write(redactUrl(line));
      } catch {
        // A broken writer must never break the traffic being logged.
      }
    };
    diagnostics.subscribe(channel, onMessage);
    subscriptions.push([channel, onMessage]);
  }
  const active: Active = {
    disable: () => {
      for (const [channel, fn] of subscriptions) diagnostics.unsubscribe(channel, fn);
      subscriptions.length = 0;
      if (g[kActive] === active) g[kActive] = undefined;
    },
  };
  Object.defineProperty(globalThis, kActive, { value: active, enumerable: false, configurable: true, writable: true });
  return active.disable;
}

function defaultWrite(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Which channels the environment asks for; undefined when debug logging is off. */
export function debugChannelsFromEnv(env: NodeJS.ProcessEnv = process.env): DebugChannel[] | undefined {
  const nodeDebug = (env.NODE_DEBUG ?? '').split(/[\s,]+/).map((s) => s.trim().toLowerCase());
  if (nodeDebug.includes('session-proxy') || nodeDebug.includes('session-proxy*')) return [...DEBUG_CHANNELS];
  const spec = env.DEBUG;
  if (!spec) return undefined;
  const include: RegExp[] = [];
  const exclude: RegExp[] = [];
  for (const raw of spec.split(/[\s,]+/)) {
    if (!raw) continue;
    const negative = raw.startsWith('-');
    const pattern = negative ? raw.slice(1) : raw;
    const re = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*?')}$`);
    (negative ? exclude : include).push(re);
  }
  const picked = DEBUG_CHANNELS.filter((name) => {
    const full = `session-proxy:${name}`;
    return include.some((re) => re.test(full)) && !exclude.some((re) => re.test(full));
  });
  return picked.length ? picked : undefined;
}

/** Turns debug logging on when DEBUG / NODE_DEBUG ask for it; returns whether it did. */
export function enableDebugLoggingFromEnv(env: NodeJS.ProcessEnv = process.env, write?: DebugWrite): boolean {
  const channels = debugChannelsFromEnv(env);
  if (!channels) return false;
  enableDebugLogging(write, { channels });
  return true;
}

// --- formatting ------------------------------------------------------------

type Rec = Record<string, unknown>;

/** A proxy as the payloads carry it: a redacted string, a ProxyInfo, or an endpoint (whose toString redacts). */
function proxyText(p: unknown): string {
  if (p === undefined || p === null) return '-';
  if (typeof p === 'string') return p;
  if (typeof p === 'object' && typeof (p as Rec).url === 'string') return (p as Rec).url as string;
  return String(p);
}

function text(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  if (typeof v === 'object' && typeof (v as Rec).url === 'string') return (v as Rec).url as string;
  if (typeof v === 'object' && typeof (v as Rec).host === 'string' && typeof (v as Rec).port === 'number') {
    const host = (v as Rec).host as string;
    return `${host.includes(':') ? `[${host}]` : host}:${(v as Rec).port}`;
  }
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

const ACCOUNT_NONE = '(unscoped)';

export function formatEvent(name: DebugChannel | string, message: unknown): string {
  const m = (message && typeof message === 'object' ? message : { value: message }) as Rec;
  const account = m.account === undefined ? ACCOUNT_NONE : text(m.account);
  switch (name) {
    case 'route': {
      // { account, target, proxy, layer, decision, reason? }
      const via = m.proxy !== undefined && m.proxy !== null ? proxyText(m.proxy) : text(m.decision);
      const decision = m.proxy !== undefined && m.proxy !== null && m.decision !== undefined && m.decision !== 'proxy' ? ` [${text(m.decision)}]` : '';
      const reason = m.reason !== undefined && m.reason !== null && m.decision !== 'proxy' ? `: ${text(m.reason)}` : '';
      return `${account} → ${via} (${text(m.layer)}) ${text(m.target)}${decision}${reason}`;
    }
    case 'rotate': {
      // RotateEvent { account, from, to, reason, closed, drained, draining }
      const counts = (['closed', 'drained', 'draining'] as const)
        .filter((k) => typeof m[k] === 'number' && (m[k] as number) > 0)
        .map((k) => `, ${k} ${m[k] as number}`)
        .join('');
      return `${account} ${proxyText(m.from)} → ${proxyText(m.to)} (${text(m.reason)}${counts})`;
    }
    case 'leak':
      // LeakEvent { account, target, layer, action, reason }
      return `${account} ${text(m.action)} (${text(m.layer)}) ${text(m.target)}: ${text(m.reason)}`;
    case 'egress': {
      // EgressResult & { status } { account, proxy, ip, endpoint, latencyMs }
      const latency = typeof m.latencyMs === 'number' ? `, ${m.latencyMs} ms` : '';
      const status = m.status !== undefined && m.status !== 'verified' ? ` ${text(m.status)}` : '';
      return `${account} via ${proxyText(m.proxy)} egress ${text(m.ip)}${status} (${text(m.endpoint)}${latency})`;
    }
    case 'dns': {
      // { account, hostname, address?, reason }
      const address = m.address !== undefined ? ` → ${text(m.address)}` : '';
      return `${account} lookup ${text(m.hostname)}${address}: ${text(m.reason)}`;
    }
    case 'proxy-down':
    case 'proxy-up': {
      // { proxy, accounts, error?, nextProbeAt?, latencyMs? }
      const accounts = Array.isArray(m.accounts) && m.accounts.length ? ` accounts ${m.accounts.map(text).join(',')}` : '';
      const extra: string[] = [];
      if (m.error !== undefined) extra.push(text(m.error));
      if (typeof m.latencyMs === 'number') extra.push(`${m.latencyMs} ms`);
      if (typeof m.nextProbeAt === 'number') extra.push(`next probe in ${Math.max(0, m.nextProbeAt - Date.now())} ms`);
      return `${proxyText(m.proxy)}${accounts}${extra.length ? ` (${extra.join(', ')})` : ''}`;
    }
    default:
      return Object.entries(m)
        .map(([k, v]) => `${k}=${k === 'proxy' ? proxyText(v) : text(v)}`)
        .join(' ');
  }
}
