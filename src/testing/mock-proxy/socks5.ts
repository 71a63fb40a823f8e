/**
 * SOCKS5 (RFC 1928), CONNECT only, with username/password authentication
 * (RFC 1929). Address types IPv4, domain name and IPv6.
 */
import * as net from 'node:net';
import type { ProxyContext } from './context.js';
import { hangUp } from './io.js';
import type { SocketReader } from './reader.js';
import { Meter, startTunnel } from './tunnel.js';
import type { MockProxyLogEntry } from './types.js';
import { connectUpstream } from './upstream.js';
import { rawText } from './raw-head.js';

const NO_AUTH = 0x00;
const USER_PASS = 0x02;
const NO_ACCEPTABLE = 0xff;

/** Reply codes, RFC 1928 §6. */
const SUCCEEDED = 0x00;
const GENERAL_FAILURE = 0x01;
const NOT_ALLOWED = 0x02;
const COMMAND_NOT_SUPPORTED = 0x07;
const ADDRESS_TYPE_NOT_SUPPORTED = 0x08;

type Settled = Exclude<MockProxyLogEntry['status'], 'open'>;

export async function serveSocks5(ctx: ProxyContext, client: net.Socket, reader: SocketReader): Promise<void> {
  const greeting = await reader.readExact(2);
  const methods = [...(await reader.readExact(greeting[1]!))];
  await ctx.delay();

  /** A failure before the request: no target is known yet, so the entry names none. */
  /** The CONNECT request's bytes as read so far, for the entry's rawHead. */
  const request: Buffer[] = [];
  const read = async (n: number): Promise<Buffer> => {
    const bytes = await reader.readExact(n);
    request.push(bytes);
    return bytes;
  };
  const failEarly = (status: Settled, why: string, bytes: number[], username?: string): void => {
    ctx.settle(ctx.openEntry({ protocol: 'socks5', targetHost: '', targetPort: 0, username, rawHead: rawText(...request) }), status, why);
    write(client, bytes);
    hangUp(client, reader);
  };

  const auth = ctx.options.auth;
  // A forced 407 is SOCKS5's "authentication failed": it has to happen at the auth step.
  const forced407 = ctx.faults.peekAnswer() === 407;
  if (forced407) ctx.faults.takeAnswer();
  let username: string | undefined;
  if (auth || forced407) {
    if (!methods.includes(USER_PASS)) {
      return failEarly(forced407 ? 'refused' : 'auth-failed', 'username/password authentication required', [5, NO_ACCEPTABLE]);
    }
    write(client, [5, USER_PASS]);
    const credentials = await readCredentials(reader);
    username = credentials.username;
    if (forced407) return failEarly('refused', 'forced 407 (fault)', [1, 1], username);
    if (credentials.username !== auth!.username || credentials.password !== auth!.password) {
      return failEarly('auth-failed', 'wrong proxy credentials', [1, 1], username);
    }
    write(client, [1, 0]);
  } else if (methods.includes(NO_AUTH)) {
    write(client, [5, NO_AUTH]);
  } else if (methods.includes(USER_PASS)) {
    // No auth configured but the client only offers user/pass: accept any, and log who it claimed to be.
    write(client, [5, USER_PASS]);
    username = (await readCredentials(reader)).username;
    write(client, [1, 0]);
  } else {
    return failEarly('refused', 'no acceptable authentication method', [5, NO_ACCEPTABLE]);
  }

  const fixed = await read(4);
  if (fixed[0] !== 5) throw new Error('bad SOCKS5 request version');
  const command = fixed[1];
  let targetHost: string;
  switch (fixed[3]) {
    case 0x01:
      targetHost = [...(await read(4))].join('.');
      break;
    case 0x03:
      targetHost = (await read((await read(1))[0]!)).toString('utf8');
      break;
    case 0x04:
      targetHost = formatIpv6(await read(16));
      break;
    default:
      // The address length is unknown, so the rest of the request cannot even be skipped.
      return failEarly('refused', `address type ${fixed[3]} not supported`, reply(ADDRESS_TYPE_NOT_SUPPORTED), username);
  }
  const port = (await read(2)).readUInt16BE(0);
  const entry = ctx.openEntry({ protocol: 'socks5', targetHost, targetPort: port, username, rawHead: rawText(...request) });
  const refuse = (status: Settled, code: number, why: string): void => {
    ctx.settle(entry, status, why);
    write(client, reply(code));
    hangUp(client, reader);
  };

  if (command !== 1) return refuse('refused', COMMAND_NOT_SUPPORTED, `SOCKS5 command ${command} not supported`);
  const forced = ctx.faults.takeAnswer();
  if (forced !== undefined) return refuse('refused', forced === 403 ? NOT_ALLOWED : GENERAL_FAILURE, `forced ${forced} (fault)`);

  let upstream: net.Socket;
  try {
    upstream = await connectUpstream(ctx, targetHost, port);
  } catch (error) {
    return refuse('error', GENERAL_FAILURE, (error as Error).message);
  }
  write(client, reply(SUCCEEDED, upstream.localAddress, upstream.localPort));
  startTunnel(ctx, entry, new Meter(entry, ctx.faults.resetAfterBytes), {
    client,
    clientRest: reader.detach(),
    upstream,
    upstreamRest: Buffer.alloc(0),
  });
}

function write(client: net.Socket, bytes: number[]): void {
  if (!client.destroyed && !client.writableEnded) client.write(Buffer.from(bytes));
}

async function readCredentials(reader: SocketReader): Promise<{ username: string; password: string }> {
  const version = (await reader.readExact(1))[0];
  if (version !== 1) throw new Error('bad username/password negotiation version');
  const username = (await reader.readExact((await reader.readExact(1))[0]!)).toString('utf8');
  const password = (await reader.readExact((await reader.readExact(1))[0]!)).toString('utf8');
  return { username, password };
}

/** A reply with the bound address; an IPv6 one is sent as unspecified (clients ignore it for CONNECT). */
function reply(code: number, address?: string, port = 0): number[] {
  const portBytes = [(port >> 8) & 0xff, port & 0xff];
  if (address !== undefined && net.isIPv4(address)) return [5, code, 0, 1, ...address.split('.').map(Number), ...portBytes];
  if (address !== undefined && net.isIPv6(address)) return [5, code, 0, 4, ...new Array<number>(16).fill(0), ...portBytes];
  return [5, code, 0, 1, 0, 0, 0, 0, ...portBytes];
}

/** 16 bytes → the canonical text form (RFC 5952: lower case, longest zero run as "::"). */
export function formatIpv6(bytes: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
