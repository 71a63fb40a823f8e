/**
 * `session-proxy/testing`: a mock proxy, a mock rotating gateway and an echo server for unit-testing a
 * process's egress on loopback, without a real proxy or network.
 */
export { startMockProxy } from './mock-proxy.js';
export type { MockProxy, MockProxyFaults, MockProxyLogEntry, MockProxyOptions, MockProxyProtocol } from './mock-proxy.js';
export { startMockGateway } from './mock-gateway.js';
export type { MockGateway, MockGatewayLogEntry, MockGatewayOptions, MockGatewaySession } from './mock-gateway.js';
export { startEchoServer } from './echo-server.js';
export type { EchoPeer, EchoReply, EchoServer, EchoServerOptions, EchoTimelineEntry } from './echo-server.js';
export { testCa } from './certs.js';
