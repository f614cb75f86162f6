// Small statistics for benchmarks: percentiles of a sample, medians across rounds, ratios.

/** A latency sample reduced to the figures a report shows (all in the sample's unit). */
export interface Summary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/**
 * The q-quantile (0..1) of an ascending-sorted sample, by the nearest-rank method: the
 * smallest value with at least q of the sample at or below it.
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/** Summarises a sample; sorts it in place (pass a copy to keep the order). */
export function summarize(sample: Float64Array): Summary {
  sample.sort();
  let sum = 0;
  for (const v of sample) sum += v;
  return {
    count: sample.length,
    mean: sample.length === 0 ? Number.NaN : sum / sample.length,
    p50: quantileSorted(sample, 0.5),
    p90: quantileSorted(sample, 0.9),
    p99: quantileSorted(sample, 0.99),
    p999: quantileSorted(sample, 0.999),
    max: sample.length === 0 ? Number.NaN : (sample[sample.length - 1] as number),
  };
}

/** The median of a few values (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The median of each field of a list of summaries. */
export function medianSummary(summaries: readonly Summary[]): Summary {
  const pick = (k: keyof Summary) => median(summaries.map((s) => s[k]));
  return { count: pick('count'), mean: pick('mean'), p50: pick('p50'), p90: pick('p90'), p99: pick('p99'), p999: pick('p999'), max: pick('max') };
}

/** The median of each of `fields` over some records, the fields in the order given. */
export function medians<K extends string, T extends Record<K, number>>(records: readonly T[], fields: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const f of fields) out[f] = median(records.map((r) => r[f]));
  return out;
}

/** a / b, or NaN when b is zero or not a number. */
export function ratio(a: number, b: number): number {
  return b === 0 || !Number.isFinite(b) ? Number.NaN : a / b;
}
