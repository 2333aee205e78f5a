/** Small numeric helpers for the benchmark: percentiles, summaries of repeated runs, a seeded PRNG. */

/** The q-quantile (0..1) of `values` by nearest rank; NaN when empty. Sorts a copy. */
export function percentile (values: ArrayLike<number>, q: number): number {
  if (values.length === 0) return NaN
  const sorted = Float64Array.from(values).sort()
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank] as number
}

/** Median, min and max of repeated measurements (NaN ignored). */
export interface Summary {
  median: number
  min: number
  max: number
  runs: number
}

/** Summarises repeated runs of one figure. */
export function summarise (values: readonly number[]): Summary {
  // a failed run records no number (null or NaN): it is left out, never rendered
  const finite = values.filter(v => typeof v === 'number' && Number.isFinite(v))
  if (finite.length === 0) return { median: NaN, min: NaN, max: NaN, runs: 0 }
  const sorted = [...finite].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number, runs: finite.length }
}

/** mulberry32: a tiny seeded PRNG, so every run of the bench draws the same numbers. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
