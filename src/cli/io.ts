/** What a command writes to and reads from, so tests and the entry point can differ. */
export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
  readonly stderrStream: NodeJS.WriteStream;
  readStdin(): Promise<string>;
}

/** Reads stdin to the end (bounded: proxy lists, not streams). */
export async function readAll(stream: NodeJS.ReadableStream, limit = 64 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > limit) throw new Error('stdin too large');
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}
