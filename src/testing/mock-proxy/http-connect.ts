/** HTTP CONNECT: answer 200, then relay bytes both ways. */
import type * as net from 'node:net';
import type { ProxyContext } from './context.js';
import { admit, answer, basicCredentials, refuseMalformed, upstreamOr502 } from './http-answer.js';
import type { Head } from './http-message.js';
import type { SocketReader } from './reader.js';
import { Meter, startTunnel } from './tunnel.js';
import { splitAuthority } from './upstream.js';

export async function handleConnect(ctx: ProxyContext, client: net.Socket, reader: SocketReader, head: Head, rawHead: string): Promise<void> {
  let target: { host: string; port: number };
  try {
    // CONNECT has no default port: the authority must name one.
    target = splitAuthority(head.start[1]);
  } catch {
    refuseMalformed(ctx, client, reader, rawHead, 'CONNECT needs host:port');
    return;
  }
  const credentials = basicCredentials(head);
  const entry = ctx.openEntry({
    protocol: 'connect',
    targetHost: target.host,
    targetPort: target.port,
    username: credentials?.username,
    rawHead,
  });
  if (!ctx.options.protocols.has('connect')) {
    ctx.settle(entry, 'refused', 'CONNECT not enabled');
    answer(client, reader, 501, 'CONNECT not enabled on this mock proxy');
    return;
  }
  if (!(await admit(ctx, client, reader, entry, credentials))) return;

  const upstream = await upstreamOr502(ctx, client, reader, entry, target, head.start[1]!);
  if (!upstream) return;
  if (!client.destroyed) client.write('HTTP/1.1 200 Connection established\r\n\r\n');
  startTunnel(ctx, entry, new Meter(entry, ctx.faults.resetAfterBytes), {
    client,
    clientRest: reader.detach(),
    upstream,
    upstreamRest: Buffer.alloc(0),
  });
}
