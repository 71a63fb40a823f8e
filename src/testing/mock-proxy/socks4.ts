/**
 * SOCKS4 and SOCKS4a (CONNECT only). 4a is recognised by the 0.0.0.x
 * destination address (x ≠ 0) followed by a hostname.
 */
import type * as net from 'node:net';
import type { ProxyContext } from './context.js';
import { hangUp } from './io.js';
import type { SocketReader } from './reader.js';
import { Meter, startTunnel } from './tunnel.js';
import { connectUpstream } from './upstream.js';
import { rawText } from './raw-head.js';

const GRANTED = 0x5a;
const REJECTED = 0x5b;
/** "identd reports a different user-id": the nearest SOCKS4 has to "wrong credentials". */
const USERID_MISMATCH = 0x5d;
const NUL = Buffer.from([0]);
const MAX_FIELD = 255;

function reply(client: net.Socket, code: number): void {
  // VN is 0 in replies; port and address are ignored for CONNECT.
  if (!client.destroyed && !client.writableEnded) client.write(Buffer.from([0, code, 0, 0, 0, 0, 0, 0]));
}

export async function serveSocks4(ctx: ProxyContext, client: net.Socket, reader: SocketReader): Promise<void> {
  const fixed = await reader.readExact(8);
  const command = fixed[1];
  const port = fixed.readUInt16BE(2);
  const ip = [...fixed.subarray(4, 8)];
  const useridBytes = await reader.readUntil(NUL, MAX_FIELD);
  const userid = useridBytes.toString('utf8');
  const is4a = ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0;
  const hostBytes = is4a ? await reader.readUntil(NUL, MAX_FIELD) : undefined;
  const targetHost = hostBytes ? hostBytes.toString('utf8') : ip.join('.');
  const entry = ctx.openEntry({
    protocol: is4a ? 'socks4a' : 'socks4',
    targetHost,
    targetPort: port,
    username: userid === '' ? undefined : userid,
    rawHead: rawText(fixed, useridBytes, NUL, ...(hostBytes ? [hostBytes, NUL] : [])),
  });
  const refuse = (status: 'refused' | 'auth-failed' | 'error', code: number, why: string): void => {
    ctx.settle(entry, status, why);
    reply(client, code);
    hangUp(client, reader);
  };

  await ctx.delay();
  if (command !== 1) return refuse('refused', REJECTED, `SOCKS4 command ${command} not supported`);
  const forced = ctx.faults.takeAnswer();
  if (forced !== undefined) return refuse('refused', forced === 407 ? USERID_MISMATCH : REJECTED, `forced ${forced} (fault)`);
  const auth = ctx.options.auth;
  if (auth && userid !== auth.username) return refuse('auth-failed', USERID_MISMATCH, 'wrong SOCKS4 userid');

  let upstream: net.Socket;
  try {
    upstream = await connectUpstream(ctx, targetHost, port);
  } catch (error) {
    return refuse('error', REJECTED, (error as Error).message);
  }
  reply(client, GRANTED);
  startTunnel(ctx, entry, new Meter(entry, ctx.faults.resetAfterBytes), {
    client,
    clientRest: reader.detach(),
    upstream,
    upstreamRest: Buffer.alloc(0),
  });
}
