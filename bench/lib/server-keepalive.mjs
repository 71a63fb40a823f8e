/**
 * The echo server is a Node http/https server, whose keep-alive timeout is
 * Node's default 5 s (undici then keeps idle connections ~3 s). With 1,000
 * accounts round-robin, one pass over the accounts can take longer than
 * that on a loaded 2-core machine, and then every request re-handshakes —
 * for the hand-wired reference as much as for the library — which measures
 * the test server's setting, not routing. Real API front ends keep idle
 * connections far longer (AWS ALB 60 s, nginx 75 s), so while the bench
 * starts the echo server, servers created get a 30 s keep-alive timeout.
 * This touches the bench's own server objects only, never the library.
 */
import http from 'node:http';
import https from 'node:https';

export function withServerKeepAlive(ms, start) {
  const protos = [http.Server.prototype, https.Server.prototype];
  const saved = protos.map((p) => Object.getOwnPropertyDescriptor(p, 'keepAliveTimeout'));
  for (const p of protos) {
    Object.defineProperty(p, 'keepAliveTimeout', {
      configurable: true,
      get() {
        return ms;
      },
      set() {
        // The constructor assigns Node's default: the instance gets an own
        // property with `ms` instead (it outlives the restore below).
        Object.defineProperty(this, 'keepAliveTimeout', { value: ms, writable: true, configurable: true, enumerable: true });
      },
    });
  }
  const restore = () =>
    protos.forEach((p, i) => {
      if (saved[i]) Object.defineProperty(p, 'keepAliveTimeout', saved[i]);
      else delete p.keepAliveTimeout;
    });
  return Promise.resolve()
    .then(start)
    .finally(restore);
}
