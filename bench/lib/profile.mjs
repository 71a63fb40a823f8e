/**
 * Summarizes a V8 .cpuprofile (node --cpu-prof): self and inclusive time per
 * function, with frames of the library's bundle (dist/index.mjs) mapped back
 * to src/ file:line (function) through its source map, so a hot spot names
 * the source the core engineer edits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';

function loadMap(distFile) {
  try {
    const payload = JSON.parse(fs.readFileSync(`${distFile}.map`, 'utf8'));
    return { map: new SourceMap(payload), dir: path.dirname(distFile) };
  } catch {
    return undefined;
  }
}

function classify(url) {
  if (!url) return 'native/gc';
  if (url.startsWith('node:')) return 'node internals';
  if (url.includes('/node_modules/undici/')) return 'undici (npm)';
  if (url.includes('/node_modules/')) return 'other node_modules';
  if (url.includes('/dist/')) return 'session-proxy (dist)';
  if (url.includes('/bench/')) return 'bench harness';
  return 'other';
}

export function summarizeProfile(file, { distDir, top = 25 } = {}) {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
  const maps = new Map();
  const mapFor = (url) => {
    if (!url.includes('/dist/') || !url.endsWith('.mjs')) return undefined;
    if (!maps.has(url)) maps.set(url, loadMap(url.startsWith('file:') ? fileURLToPath(url) : url));
    return maps.get(url);
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const nameCache = new Map();
  const describe = (node) => {
    if (nameCache.has(node.id)) return nameCache.get(node.id);
    const cf = node.callFrame;
    let label = `${cf.functionName || '(anonymous)'} ${cf.url ? `${cf.url.replace(/^file:\/\//, '')}:${cf.lineNumber + 1}` : ''}`.trim();
    let group = classify(cf.url);
    let src;
    const m = mapFor(cf.url);
    if (m) {
      const entry = m.map.findEntry(cf.lineNumber, cf.columnNumber);
      if (entry && entry.originalSource) {
        // Named from the package root (…/src/x.ts → src/x.ts), wherever the build lives.
        const abs = path.resolve(m.dir, entry.originalSource.replace(/^file:\/\//, ''));
        const rel = path.relative(path.dirname(m.dir), abs);
        src = `${rel}:${entry.originalLine + 1}`;
        label = `${cf.functionName || '(anonymous)'} ${src}`;
        group = 'session-proxy (src)';
      }
    }
    const d = { key: label, group, src };
    if (group === 'session-proxy (src)') isLib.add(label);
    nameCache.set(node.id, d);
    return d;
  };

  const self = new Map();
  const incl = new Map();
  const isLib = new Set();
  const groups = new Map();
  let total = 0;
  let underLib = 0;
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i] ?? 0;
    if (dt <= 0) continue;
    total += dt;
    const leaf = byId.get(samples[i]);
    const d = describe(leaf);
    if (leaf.callFrame.functionName === '(idle)') {
      groups.set('(idle)', (groups.get('(idle)') ?? 0) + dt);
      continue;
    }
    self.set(d.key, (self.get(d.key) ?? 0) + dt);
    groups.set(d.group, (groups.get(d.group) ?? 0) + dt);
    const seen = new Set();
    let sawLib = false;
    for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
      const dd = describe(byId.get(id));
      if (dd.group === 'session-proxy (src)') sawLib = true;
      if (seen.has(dd.key)) continue;
      seen.add(dd.key);
      incl.set(dd.key, (incl.get(dd.key) ?? 0) + dt);
    }
    if (sawLib) underLib += dt;
  }
  const pct = (v) => (total ? (100 * v) / total : 0);
  const sortDesc = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return {
    file,
    totalMs: total / 1000,
    groups: sortDesc(groups).map(([k, v]) => ({ group: k, ms: v / 1000, pct: pct(v) })),
    underLibraryPct: pct(underLib),
    selfTop: sortDesc(self).slice(0, top).map(([k, v]) => ({ fn: k, ms: v / 1000, pct: pct(v) })),
    libSelf: sortDesc(self)
      .filter(([k]) => isLib.has(k))
      .slice(0, top)
      .map(([k, v]) => ({ fn: k, ms: v / 1000, pct: pct(v) })),
    libInclusive: sortDesc(incl)
      .filter(([k]) => isLib.has(k))
      .slice(0, top)
      .map(([k, v]) => ({ fn: k, ms: v / 1000, pct: pct(v) })),
  };
}

export function formatProfile(s) {
  const lines = [];
  const f = (x) => x.toFixed(1).padStart(7);
  lines.push(`profile ${s.file}: ${s.totalMs.toFixed(0)} ms sampled; ${s.underLibraryPct.toFixed(1)}% of samples have a session-proxy (src/) frame on the stack`);
  lines.push('  by origin (self time):');
  for (const g of s.groups) lines.push(`    ${f(g.pct)}%  ${g.group}`);
  lines.push('  top self time:');
  for (const r of s.selfTop) lines.push(`    ${f(r.pct)}%  ${r.fn}`);
  lines.push('  session-proxy functions, self time:');
  for (const r of s.libSelf) lines.push(`    ${f(r.pct)}%  ${r.fn}`);
  lines.push('  session-proxy functions, inclusive time (incl. callees):');
  for (const r of s.libInclusive) lines.push(`    ${f(r.pct)}%  ${r.fn}`);
  return lines.join('\n');
}
