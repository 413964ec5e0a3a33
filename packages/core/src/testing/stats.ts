/**
 * Goodness-of-fit statistics for the sampling tests: exact χ² critical values (regularised incomplete
 * gamma, no table, any df), a χ² test against known probabilities that pools low-expectation cells in
 * index order and asserts the support (a draw outside it fails regardless of χ²), and binomial bounds.
 * Tests of samplers use these so their thresholds are exact at the stated α for every df.
 * @module
 */

function logGamma(x: number): number {
  // Lanczos approximation (g = 7, n = 9), |relative error| < 1e-13 for x > 0.
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularised upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lead = a * Math.log(x) - x - logGamma(a);
  if (x < a + 1) { // series for P
    let sum = 1 / a, term = sum;
    for (let n = 1; n < 10000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * Math.exp(lead);
  }
  // Continued fraction for Q (modified Lentz).
  let b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
  for (let i = 1; i < 10000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(lead) * h;
}

/** P(χ²_df ≥ x): the upper tail (p-value) of the χ² distribution. */
export function chi2Sf(x: number, df: number): number {
  return gammaQ(df / 2, x / 2);
}

/** The χ² critical value c with P(χ²_df ≥ c) = alpha (bisection on {@link chi2Sf}). */
export function chi2Critical(df: number, alpha = 1e-3): number {
  if (!(df >= 1)) throw new Error(`chi2Critical: df must be ≥ 1, got ${df}`);
  let lo = 0, hi = df + 20 * Math.sqrt(2 * df) + 40;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (chi2Sf(mid, df) > alpha) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Result of {@link chiSquareTest}. */
export interface ChiSquareResult {
  /** The statistic Σ (O − E)² / E over the (pooled) cells. */
  chi2: number;
  /** Degrees of freedom: cells − 1. */
  df: number;
  /** Critical value at the test's α. */
  critical: number;
  /** P(χ²_df ≥ chi2). */
  pValue: number;
  /** Total variation distance between the observed frequencies and the probabilities (unpooled). */
  tv: number;
  /** Draws of cells with probability 0 (cell key → count). */
  outOfSupport: Map<string | number, number>;
  /** True when χ² < critical and nothing was drawn outside the support. */
  pass: boolean;
  /** One line for assertion messages. */
  summary: string;
}

/**
 * χ² goodness of fit of `counts` (n draws) against `probs` (cell → probability, summing to ~1; they are
 * renormalised in f64). Cells with expected count < `minExpected` are pooled with their neighbours in
 * the iteration order of `probs` until the pool reaches it (a leftover pool joins the last cell), so a
 * long tail is tested as bins of consecutive cells. Cells with probability 0 are the complement of the
 * support: any draw there is reported in `outOfSupport` and fails the test.
 */
export function chiSquareTest(
  counts: Map<string | number, number>,
  probs: Map<string | number, number>,
  n: number,
  opts: { alpha?: number; minExpected?: number } = {},
): ChiSquareResult {
  const alpha = opts.alpha ?? 1e-3, minE = opts.minExpected ?? 5;
  let total = 0;
  for (const p of probs.values()) total += p;
  const outOfSupport = new Map<string | number, number>();
  for (const [k, c] of counts) {
    if (c > 0 && !((probs.get(k) ?? 0) > 0)) outOfSupport.set(k, c);
  }
  const cells: { e: number; o: number }[] = [];
  let poolE = 0, poolO = 0, tv = 0;
  for (const [k, p] of probs) {
    if (!(p > 0)) continue;
    const e = (p / total) * n, o = counts.get(k) ?? 0;
    tv += Math.abs(o / n - p / total) / 2;
    poolE += e;
    poolO += o;
    if (poolE >= minE) {
      cells.push({ e: poolE, o: poolO });
      poolE = poolO = 0;
    }
  }
  if (poolE > 0) {
    if (cells.length > 0) {
      cells[cells.length - 1].e += poolE;
      cells[cells.length - 1].o += poolO;
    } else cells.push({ e: poolE, o: poolO });
  }
  let chi2 = 0;
  for (const { e, o } of cells) chi2 += (o - e) ** 2 / e;
  const df = Math.max(cells.length - 1, 1);
  const critical = chi2Critical(df, alpha);
  const pValue = chi2Sf(chi2, df);
  const pass = chi2 < critical && outOfSupport.size === 0;
  const oos = outOfSupport.size > 0
    ? `; drawn outside the support: ${[...outOfSupport].slice(0, 5).map(([k, c]) => `${k}×${c}`).join(", ")}`
    : "";
  const summary = `χ² = ${chi2.toFixed(2)} (df ${df}, critical ${critical.toFixed(2)} at α = ${alpha}, ` +
    `p = ${pValue.toExponential(2)}), TV ${tv.toFixed(4)}, n ${n}${oos}`;
  return { chi2, df, critical, pValue, tv, outOfSupport, pass, summary };
}

/**
 * Two-sided bounds [lo, hi] on a Binomial(n, p) count with P(X < lo) ≤ alpha/2 and P(X > hi) ≤ alpha/2
 * (exact, by summing the pmf in log space).
 */
export function binomialBounds(n: number, p: number, alpha = 1e-3): [number, number] {
  const lnC = (k: number) => logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
  const pmf = (k: number) =>
    p === 0
      ? (k === 0 ? 1 : 0)
      : p === 1
      ? (k === n ? 1 : 0)
      : Math.exp(lnC(k) + k * Math.log(p) + (n - k) * Math.log1p(-p));
  let lo = 0, acc = 0;
  while (lo < n && acc + pmf(lo) <= alpha / 2) acc += pmf(lo++);
  let hi = n;
  acc = 0;
  while (hi > 0 && acc + pmf(hi) <= alpha / 2) acc += pmf(hi--);
  return [lo, hi];
}
