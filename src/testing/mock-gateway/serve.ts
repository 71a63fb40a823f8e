/**
 * One client connection to the mock gateway: HTTP CONNECT or SOCKS5 (told
 * apart by the first byte), the credentials read with the vendor's grammar,
 * the session bound to its exit address, then the mock proxy's own tunnel.
 * Refusals are answered the way a gateway answers: 407 for credentials it
 * does not know, 400 for parameters that do not follow the grammar (SOCKS5:
 * the RFC 1929 failure), 502 for a session whose exit went away (SOCKS5:
 * general failure).
 */
import * as net from 'node:net';
import type { ProxyContext } from '../mock-proxy/context.js';
import { answer, basicCredentials } from '../mock-proxy/http-answer.js';
import { HEAD_END, MAX_HEAD, headerValue, parseHead } from '../mock-proxy/http-message.js';
import { hangUp } from '../mock-proxy/io.js';
import { EndOfStream, type SocketReader } from '../mock-proxy/reader.js';
import { acceptConnection } from '../mock-proxy/accept.js';
import { Meter, startTunnel } from '../mock-proxy/tunnel.js';
import type { MockProxyLogEntry } from '../mock-proxy/types.js';
import { connectUpstream, splitAuthority } from '../mock-proxy/upstream.js';
import { formatIpv6 } from '../mock-proxy/socks5.js';
import type { gatewayGrammar } from '../../gateways/definition.js';
import type { Bindings } from './bindings.js';
import type { MockGatewayLogEntry, MockGatewayOptions } from './types.js';

export interface GatewayContext {
  readonly ctx: ProxyContext;
  readonly grammar: ReturnType<typeof gatewayGrammar>;
  readonly bindings: Bindings;
  readonly options: MockGatewayOptions;
  readonly log: MockGatewayLogEntry[];
  nextId: number;
}

type Verdict = { ok: true; session: string | undefined; egressIp: string } | { ok: false; status: 400 | 407 | 502; why: string };

export function accept(g: GatewayContext, socket: net.Socket): void {
  acceptConnection(g.ctx, socket, (reader) => serve(g, socket, reader));
}

async function serve(g: GatewayContext, socket: net.Socket, reader: SocketReader): Promise<void> {
  const first = await reader.peekByte();
  if (first === undefined) return void socket.destroy();
  if (first === 0x05) return serveSocks5(g, socket, reader);
  if (first === 0x04) return void socket.destroy(); // no SOCKS4: it has no password to carry a session
  return serveConnect(g, socket, reader);
}

function openEntry(g: GatewayContext, init: Pick<MockGatewayLogEntry, 'protocol' | 'targetHost' | 'targetPort' | 'rawAuthorization' | 'username' | 'password'>): MockGatewayLogEntry {
  const entry: MockGatewayLogEntry = { id: g.nextId++, ...init, status: 'open', bytesIn: 0, bytesOut: 0, openedAt: Date.now() };
  for (const k of Object.keys(entry) as Array<keyof MockGatewayLogEntry>) if (entry[k] === undefined) delete entry[k];
  g.log.push(entry);
  return entry;
}

/** Reads the credential with the vendor's grammar and binds the session; the verdict says how to answer. */
function admit(g: GatewayContext, entry: MockGatewayLogEntry, credentials: { username: string; password: string } | undefined): Verdict {
  if (!credentials) return { ok: false, status: 407, why: 'proxy authentication required' };
  const carried = g.grammar.carrier === 'username' ? credentials.username : credentials.password;
  const read = g.grammar.grammar.check(carried);
  if ('error' in read) return { ok: false, status: 400, why: `${g.grammar.title}: ${read.error} in the ${g.grammar.carrier}` };
  const params = read.values;
  entry.params = params;
  const auth = g.options.auth;
  if (auth) {
    const base = params.user;
    const [user, pass] = g.grammar.carrier === 'username' ? [base, credentials.password] : [credentials.username, base];
    if (user !== auth.username || pass !== auth.password) return { ok: false, status: 407, why: 'wrong proxy credentials' };
  }
  const session = params.session;
  if (session !== undefined) entry.session = session;
  if (session !== undefined && g.bindings.isDead(session)) return { ok: false, status: 502, why: `session ${session}: its exit node is no longer available` };
  let lifetime: number | undefined;
  try {
    lifetime = params.lifetime === undefined ? undefined : g.grammar.lifetimeMs(params.lifetime);
  } catch {
    return { ok: false, status: 400, why: `${g.grammar.title}: malformed lifetime` };
  }
  const egressIp = g.bindings.connect(session, lifetime);
  entry.egressIp = egressIp;
  return { ok: true, session, egressIp };
}

function settle(g: GatewayContext, entry: MockGatewayLogEntry, status: Exclude<MockGatewayLogEntry['status'], 'open'>, why?: string): void {
  g.ctx.settle(entry as unknown as MockProxyLogEntry, status, why);
}

async function serveConnect(g: GatewayContext, client: net.Socket, reader: SocketReader): Promise<void> {
  let head;
  try {
    head = parseHead(await reader.readUntil(HEAD_END, MAX_HEAD));
  } catch (error) {
    if (error instanceof EndOfStream) client.destroy();
    else answer(client, reader, 400, (error as Error).message);
    return;
  }
  if (head.start[0] !== 'CONNECT') {
    answer(client, reader, 501, 'this gateway tunnels with CONNECT only');
    return;
  }
  let target: { host: string; port: number };
  try {
    target = splitAuthority(head.start[1]);
  } catch {
    answer(client, reader, 400, 'CONNECT needs host:port');
    return;
  }
  const credentials = basicCredentials(head);
  const entry = openEntry(g, { protocol: 'connect', targetHost: target.host, targetPort: target.port, rawAuthorization: headerValue(head, 'proxy-authorization'), username: credentials?.username, password: credentials?.password });
  await g.ctx.delay();
  const forced = g.ctx.faults.takeAnswer();
  if (forced !== undefined) {
    settle(g, entry, 'refused', `forced ${forced} (fault)`);
    answer(client, reader, forced, `forced ${forced} (fault)`);
    return;
  }
  const verdict = admit(g, entry, credentials);
  if (!verdict.ok) {
    settle(g, entry, verdict.status === 407 ? 'auth-failed' : 'refused', verdict.why);
    answer(client, reader, verdict.status, verdict.why);
    return;
  }
  let upstream: net.Socket;
  try {
    upstream = await connectUpstream(g.ctx, target.host, target.port, verdict.egressIp);
  } catch (error) {
    settle(g, entry, 'error', (error as Error).message);
    answer(client, reader, 502, `cannot reach ${head.start[1]}: ${(error as Error).message}`);
    return;
  }
  if (!client.destroyed) client.write('HTTP/1.1 200 Connection established\r\n\r\n');
  const logged = entry as unknown as MockProxyLogEntry;
  startTunnel(g.ctx, logged, new Meter(logged, g.ctx.faults.resetAfterBytes), { client, clientRest: reader.detach(), upstream, upstreamRest: Buffer.alloc(0) });
}

const USER_PASS = 0x02;

async function serveSocks5(g: GatewayContext, client: net.Socket, reader: SocketReader): Promise<void> {
  const greeting = await reader.readExact(2);
  const methods = [...(await reader.readExact(greeting[1]!))];
  await g.ctx.delay();
  const write = (bytes: number[]): void => {
    if (!client.destroyed && !client.writableEnded) client.write(Buffer.from(bytes));
  };
  if (!methods.includes(USER_PASS)) {
    const entry = openEntry(g, { protocol: 'socks5', targetHost: '', targetPort: 0 });
    settle(g, entry, 'auth-failed', 'username/password authentication required');
    write([5, 0xff]);
    return hangUp(client, reader);
  }
  write([5, USER_PASS]);
  if ((await reader.readExact(1))[0] !== 1) throw new Error('bad username/password negotiation version');
  const username = (await reader.readExact((await reader.readExact(1))[0]!)).toString('utf8');
  const password = (await reader.readExact((await reader.readExact(1))[0]!)).toString('utf8');
  // The target is only known after the auth step: the entry is completed below.
  const entry = openEntry(g, { protocol: 'socks5', targetHost: '', targetPort: 0, username, password });
  const forced = g.ctx.faults.takeAnswer();
  if (forced === 407) {
    settle(g, entry, 'refused', 'forced 407 (fault)');
    write([1, 1]);
    return hangUp(client, reader);
  }
  const verdict = admit(g, entry, { username, password });
  if (!verdict.ok && verdict.status !== 502) {
    settle(g, entry, verdict.status === 407 ? 'auth-failed' : 'refused', verdict.why);
    write([1, 1]);
    return hangUp(client, reader);
  }
  write([1, 0]);
  const request = await reader.readExact(4);
  if (request[0] !== 5) throw new Error('bad SOCKS5 request version');
  let host: string;
  switch (request[3]) {
    case 0x01:
      host = [...(await reader.readExact(4))].join('.');
      break;
    case 0x03:
      host = (await reader.readExact((await reader.readExact(1))[0]!)).toString('utf8');
      break;
    case 0x04:
      host = formatIpv6(await reader.readExact(16));
      break;
    default:
      settle(g, entry, 'refused', 'address type not supported');
      write([5, 0x08, 0, 1, 0, 0, 0, 0, 0, 0]);
      return hangUp(client, reader);
  }
  const port = (await reader.readExact(2)).readUInt16BE(0);
  entry.targetHost = host;
  entry.targetPort = port;
  const refuse = (code: number, why: string, status: 'refused' | 'error' = 'refused'): void => {
    settle(g, entry, status, why);
    write([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
    hangUp(client, reader);
  };
  if (request[1] !== 1) return refuse(0x07, `SOCKS5 command ${request[1]} not supported`);
  if (forced !== undefined) return refuse(forced === 403 ? 0x02 : 0x01, `forced ${forced} (fault)`);
  if (!verdict.ok) return refuse(0x01, verdict.why);
  let upstream: net.Socket;
  try {
    upstream = await connectUpstream(g.ctx, host, port, verdict.egressIp);
  } catch (error) {
    return refuse(0x01, (error as Error).message, 'error');
  }
  const bound = upstream.localAddress && net.isIPv4(upstream.localAddress) ? upstream.localAddress.split('.').map(Number) : [0, 0, 0, 0];
  write([5, 0, 0, 1, ...bound, (upstream.localPort! >> 8) & 0xff, upstream.localPort! & 0xff]);
  const logged = entry as unknown as MockProxyLogEntry;
  startTunnel(g.ctx, logged, new Meter(logged, g.ctx.faults.resetAfterBytes), { client, clientRest: reader.detach(), upstream, upstreamRest: Buffer.alloc(0) });
}
