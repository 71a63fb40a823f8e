/**
 * Measurement loops shared by every contender. All loops are bounded twice:
 * by a time box and by a maximum count, so a slow or stuck contender cannot
 * run forever (the parent also kills a child that overruns its deadline).
 */
import fs from 'node:fs';

export const now = () => performance.now();

export function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function cpuUs(delta) {
  return delta.user + delta.system;
}

/**
 * Sequential requests: one at a time, for `ms` milliseconds or `max` requests.
 * Returns throughput (req/s), client CPU per request (µs) and latency quantiles (ms).
 */
export async function sequential(request, { ms, max, min = 1 }) {
  const lat = [];
  const c0 = process.cpuUsage();
  const t0 = now();
  const deadline = t0 + ms;
  let n = 0;
  while (n < max && (n < min || now() < deadline)) {
    const s = now();
    await request(n);
    lat.push(now() - s);
    n++;
  }
  const wall = now() - t0;
  const cpu = cpuUs(process.cpuUsage(c0));
  lat.sort((a, b) => a - b);
  return { n, wallMs: wall, rps: (n / wall) * 1000, cpuUsPerReq: cpu / n, p50Ms: quantile(lat, 0.5), p99Ms: quantile(lat, 0.99) };
}

/**
 * `concurrency` workers issue requests back to back until the time box ends
 * (or `max` requests were started); the clock stops when the last one is done.
 */
export async function concurrent(request, { ms, max, concurrency }) {
  const c0 = process.cpuUsage();
  const t0 = now();
  const deadline = t0 + ms;
  let started = 0;
  let done = 0;
  const worker = async () => {
    while (started < max && now() < deadline) {
      const i = started++;
      await request(i);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wall = now() - t0;
  const cpu = cpuUs(process.cpuUsage(c0));
  return { n: done, wallMs: wall, rps: (done / wall) * 1000, cpuUsPerReq: cpu / done };
}

/**
 * JIT warm-up: V8 needs on the order of a thousand requests before fetch (or
 * an https.Agent) runs optimized code, so the warm-up is count-based, with 8
 * requests in flight (faster wall-clock than sequential), bounded by `ms`.
 */
export async function warmup(request, { count, ms, concurrency = 8 }) {
  const deadline = now() + ms;
  let next = 0;
  const worker = async () => {
    while (next < count && now() < deadline) await request(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return next;
}

/** Runs exactly `count` requests with `concurrency` workers (no time box: count is the bound). */
export async function fixedCount(request, { count, concurrency }) {
  const t0 = now();
  let next = 0;
  const worker = async () => {
    while (next < count) await request(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const wall = now() - t0;
  return { n: count, wallMs: wall, rps: (count / wall) * 1000 };
}

/** Heap after a full GC (the child runs with --expose-gc). */
export async function heapAfterGc() {
  if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc');
  // Two collections with a macrotask between them: finalizers and weak
  // callbacks queued by the first run before the second one measures.
  globalThis.gc();
  await new Promise((r) => setImmediate(r));
  globalThis.gc();
  return process.memoryUsage().heapUsed;
}

export function openFds() {
  return fs.readdirSync('/proc/self/fd').length;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
