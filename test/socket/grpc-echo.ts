/** A loopback gRPC server whose unary Echo answers with the peer address it saw. */
import * as grpc from '@grpc/grpc-js';

const json = {
  serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): unknown => JSON.parse(b.toString('utf8')),
};

export const echoService = {
  echo: {
    path: '/sessionproxy.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies grpc.ServiceDefinition;

/** `tls`: serve over TLS with this certificate (clients then use grpc.credentials.createSsl()). */
export async function startGrpcEcho(o: { tls?: { cert: string; key: string } } = {}): Promise<{ target: string; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(echoService, {
    echo: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { peer: call.getPeer() }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      '127.0.0.1:0',
      o.tls ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(o.tls.cert), private_key: Buffer.from(o.tls.key) }]) : grpc.ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  return {
    target: `127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

export const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo');

/** One unary call; a local subchannel pool per client (grpc-js shares subchannels process-wide by default). */
export function grpcEcho(target: string): Promise<{ peer: string }> {
  const client = new EchoClient(target, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  return new Promise((resolve, reject) => {
    (client as unknown as { echo: (req: unknown, cb: (e: Error | null, r: { peer: string }) => void) => void }).echo({}, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res);
    });
  });
}
