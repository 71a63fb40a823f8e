/** Small statistics over per-run values (one value per fresh child process). */

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export function range(values) {
  const v = values.filter((x) => Number.isFinite(x));
  return v.length ? [Math.min(...v), Math.max(...v)] : [NaN, NaN];
}

/** Reads `a.b.c` from an object. */
export function pick(obj, dotted) {
  return dotted.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

/**
 * Per-metric summary of a contender against its reference. `runs` and
 * `refRuns` are arrays indexed by round (undefined where a run failed).
 * ratio = median(contender) / median(reference); roundRatios pair the runs
 * of the same round (they ran back to back), so their spread shows drift.
 */
export function compare(runs, refRuns, metric) {
  const vals = runs.map((r) => (r ? pick(r, metric) : undefined));
  const refVals = refRuns.map((r) => (r ? pick(r, metric) : undefined));
  const med = median(vals);
  const refMed = median(refVals);
  const roundRatios = vals.map((v, i) => (Number.isFinite(v) && Number.isFinite(refVals[i]) && refVals[i] !== 0 ? v / refVals[i] : NaN)).filter(Number.isFinite);
  return {
    values: vals,
    n: vals.filter(Number.isFinite).length,
    median: med,
    min: range(vals)[0],
    max: range(vals)[1],
    ratio: Number.isFinite(med) && Number.isFinite(refMed) && refMed !== 0 ? med / refMed : NaN,
    roundRatioMin: range(roundRatios)[0],
    roundRatioMax: range(roundRatios)[1],
  };
}

export function fmt(x, digits = 0) {
  if (!Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  return x.toFixed(digits);
}

export function fmtRatio(x) {
  return Number.isFinite(x) ? x.toFixed(3) : '–';
}

export const MB = 1024 * 1024;
