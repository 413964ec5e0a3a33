/**
 * A multi-cycle losslessness check for T>0 tree acceptance, on the CPU: speculative decoding of a small
 * synthetic target with a deterministic draft tree, run with the decoder's real uniform stream
 * u(seed, cycle, d), scored on the joint distribution of the first H emitted tokens against the exact
 * joint Π p(x_t | x_<t). H ≥ tree depth + 1 makes every sample reach a leaf bonus or a cycle boundary,
 * so acceptance, residual and bonus draws at every depth and the hand-over between cycles are all in
 * the statistic. It takes the acceptance rule as a parameter so that deliberately broken copies of the
 * reference can be scored too (`accept_mutants.ts` shows which bugs it catches).
 *
 * The target: p(· | prefix) over V tokens is a hash of the prefix, with about a third of the tokens at
 * probability 0 in every row (as top-k / top-p filtering leaves rows), stored in f32 like the GPU's
 * `filteredProbs`. The draft: q = ½ p + ½ noise (another hash of the prefix); the tree takes the
 * `widths[0]` most likely tokens of q after the root, `widths[1]` after each of those, and so on,
 * nodes in breadth-first order (parents precede children).
 * @module
 */
import { pcgHash, sampleUniform } from "../ops/select.ts";
import type { acceptSampleRef } from "./accept_ref.ts";
import { type ChiSquareResult, chiSquareTest } from "../testing/stats.ts";

/** The shape of {@link acceptSampleRef}: one cycle's acceptance over a verified tree. */
export type AcceptRule = typeof acceptSampleRef;

/** Settings of {@link horizonCheck}. */
export interface HorizonOptions {
  /** Vocabulary size (default 5). */
  V?: number;
  /** Emitted tokens scored per sample (default 4). */
  horizon?: number;
  /** Children per node at each depth (default [3, 2]: depth 2). */
  widths?: number[];
  /** Samples (default 100 000); sample i uses RNG seed `seedBase + i`. */
  n?: number;
  /** First RNG seed (default 1). */
  seedBase?: number;
  /** Salt of the synthetic target and draft (default 1). */
  salt?: number;
  /** Significance level of the χ² test (default 1e-3). */
  alpha?: number;
}

/**
 * The configurations accept_sample_test.ts runs (and accept_mutants.ts scores the mutants with):
 * depth 2 with widths 3/2 over V = 5 (every sample crosses a cycle boundary), and depth 3 with
 * widths 4/1/1 over V = 6 (the root's children often cover the whole support).
 */
export const HORIZON_CONFIGS: readonly HorizonOptions[] = [
  { V: 5, horizon: 4, widths: [3, 2], salt: 1, n: 100_000 },
  { V: 6, horizon: 4, widths: [4, 1, 1], salt: 2, seedBase: 1 << 20, n: 100_000 },
];

/** Result of {@link horizonCheck}. */
export interface HorizonResult extends ChiSquareResult {
  /** Cells (H-token sequences) with positive probability. */
  cells: number;
  /** Mean drafts accepted per cycle. */
  meanAccepted: number;
  /** Fraction of samples whose first H tokens spanned more than one cycle. */
  crossedCycle: number;
}

function hashRow(prefix: readonly number[], V: number, salt: number): Float64Array {
  let h = pcgHash(salt * 0x9e3779b9 + prefix.length);
  for (const t of prefix) h = pcgHash((h ^ (t + 0x632be5ab)) >>> 0);
  const w = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    h = pcgHash(h + v);
    w[v] = (h >>> 8) / 16777216;
  }
  return w;
}

/** The synthetic target p(· | prefix) as the f32 row the GPU would hold (exact f64 values of it). */
export function syntheticTarget(prefix: readonly number[], V: number, salt = 1): Float32Array {
  const w = hashRow(prefix, V, salt);
  const z = hashRow(prefix, V, salt + 7919);
  // Zero about a third of the tokens, never the two largest z (so every row keeps ≥ 2 tokens).
  const order = Array.from(z.keys()).sort((a, b) => z[b] - z[a]);
  const row = new Float64Array(V);
  for (let j = 0; j < V; j++) {
    const v = order[j];
    row[v] = j < 2 || z[v] > 0.33 ? 0.05 + w[v] ** 2 : 0;
  }
  const s = row.reduce((a, b) => a + b, 0);
  return Float32Array.from(row, (x) => x / s);
}

function draftRanking(prefix: readonly number[], p: Float32Array, salt: number): number[] {
  const noise = hashRow(prefix, p.length, salt + 104729);
  const q = Array.from(p, (x, v) => 0.5 * x + 0.5 * noise[v] / p.length);
  return Array.from(q.keys()).sort((a, b) => q[b] - q[a] || a - b);
}

interface Cycle {
  tokens: number[];
  parents: number[];
  probs: Float32Array;
}

/**
 * Run `n` speculative generations of `horizon` tokens with `accept` and χ²-test the joint of the
 * emitted tokens against the exact joint (support asserted: see {@link chiSquareTest}).
 */
export function horizonCheck(accept: AcceptRule, opts: HorizonOptions = {}): HorizonResult {
  const V = opts.V ?? 5, H = opts.horizon ?? 4, widths = opts.widths ?? [3, 2];
  const n = opts.n ?? 100_000, seedBase = opts.seedBase ?? 1, salt = opts.salt ?? 1;
  const dp = widths.length + 1;
  const prompt = [0];
  const rows = new Map<string, Float32Array>();
  const target = (prefix: number[]): Float32Array => {
    const key = prefix.join(",");
    let r = rows.get(key);
    if (!r) rows.set(key, r = syntheticTarget(prefix, V, salt));
    return r;
  };
  const trees = new Map<string, Cycle>();
  const tree = (prefix: number[]): Cycle => {
    const key = prefix.join(",");
    const hit = trees.get(key);
    if (hit) return hit;
    const tokens = [prefix[prefix.length - 1]], parents = [-1], ctx: number[][] = [prefix];
    let level = [0];
    for (const w of widths) {
      const next: number[] = [];
      for (const node of level) {
        const ranked = draftRanking(ctx[node], target(ctx[node]), salt).slice(0, w);
        for (const t of ranked) {
          next.push(tokens.length);
          tokens.push(t);
          parents.push(node);
          ctx.push([...ctx[node], t]);
        }
      }
      level = next;
    }
    const probs = new Float32Array(tokens.length * V);
    ctx.forEach((c, i) => probs.set(target(c), i * V));
    const cyc = { tokens, parents, probs };
    trees.set(key, cyc);
    return cyc;
  };

  const counts = new Map<string, number>();
  let accepted = 0, cycles = 0, crossed = 0;
  for (let i = 0; i < n; i++) {
    const seed = (seedBase + i) >>> 0;
    const out: number[] = [];
    let cycle = 0;
    while (out.length < H) {
      const t = tree([...prompt, ...out]);
      const res = accept(t.tokens, t.parents, t.probs, V, dp, (d) => sampleUniform(seed, cycle, d));
      accepted += res.nodes.length - 1;
      out.push(...res.tokens.slice(1), res.bonus);
      cycle++;
    }
    cycles += cycle;
    if (cycle > 1) crossed++;
    const key = out.slice(0, H).join(",");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }

  // Exact joint of the first H tokens by enumeration (f64 products of the f32 rows).
  const joint = new Map<string, number>();
  const walk = (prefix: number[], depth: number, pr: number) => {
    if (depth === H) {
      joint.set(prefix.slice(prompt.length).join(","), pr);
      return;
    }
    const p = target(prefix);
    let s = 0;
    for (let v = 0; v < V; v++) s += p[v];
    for (let v = 0; v < V; v++) if (p[v] > 0) walk([...prefix, v], depth + 1, pr * p[v] / s);
  };
  walk(prompt, 0, 1);
  const res = chiSquareTest(counts, joint, n, { alpha: opts.alpha });
  return { ...res, cells: joint.size, meanAccepted: accepted / cycles, crossedCycle: crossed / n };
}
