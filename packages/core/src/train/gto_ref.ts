/**
 * f64 CPU reference of the GTO Phase-II objective (Hu et al., "Bridging Draft Policy Misalignment:
 * Group Tree Optimization for Speculative Decoding", arXiv 2509.22134 §3), the single readable
 * statement of every quantity the GPU kernels (`kernels/gto.wgsl`, `gto_ops.ts`) compute, and the
 * oracle their tests compare against. Nothing here carries a gradient except through the one
 * coefficient {@link clippedSurrogate} returns: rewards, advantages, trees and Ŝ are constants.
 *
 * For one prefix x≤r (root token x_r) the draft M builds its decode-time tree T (tree_ref.ts):
 * - p_j = p_T(x̄_j | x≤r, ancestors of j) — the target's probability of drafted node j given the
 *   prefix and j's ancestors, full target vocabulary, softmax at temperature 1
 *   ({@link nodeTargetLogProbs});
 * - per root→leaf branch b = (root, x̄_1, …, x̄_n) of the pruned tree, the expected accepted length
 *   L_b = Σ_{j=1..n} Π_{k≤j} p_k (paper Eq. 3–4; {@link branchLengths});
 * - the tree reward r(T) = (1/η)·log Σ_b exp(η·L_b) over the N_b branches (Eq. 5), η > 0; η → ∞ gives
 *   max_b L_b; `max` and `mean` are the ablations ({@link treeReward});
 * - debiased reward R = r(T_M) − r(T_M₀) against the frozen reference draft M₀'s tree at the same
 *   prefix (`--no-debias`: R = r(T_M)) ({@link debiasRewards});
 * - advantage A = (R − mean_g R)/(std_g R + δ) over groups g of m adjacent prefixes; m = 1 → A = R
 *   ({@link groupAdvantages});
 * - Ŝ = the longest accepted sequence (root excluded), l = |Ŝ| ({@link acceptedPath},
 *   {@link greedyAcceptedPath});
 * - s = exp((log M(Ŝ) − log M₀(Ŝ))/max(l, 1)), the per-token geometric-mean probability ratio
 *   ({@link pathRatio});
 * - L_GTO = −(1/P)·Σ_i min(s_i·A_i, clip(s_i, 1−ε, 1+ε)·A_i) over the P prefixes of the batch
 *   ({@link clippedSurrogate}); the draft's gradient enters only through log M(Ŝ_i).
 * (Equation numbers 3–5 as cited in the project's design note; the later steps of §3 are named, not
 * numbered, here.)
 *
 * Choices the paper leaves open ({@link GTO_DEFAULTS}, each a trainer flag):
 * - ε = 0.2 (PPO/GRPO default; the ratio is against the frozen M₀, so the clip is a trust region on
 *   cumulative drift);
 * - δ = 1e-4 (R is in accepted tokens; f32 rounding of L is ~1e-6 and meaningful differences ≥ 1e-2,
 *   δ sits two decades from both, so rounding-level R at M ≈ M₀ is not blown up to unit advantages);
 * - sample (Bessel) standard deviation, torch `.std()`'s default; m = 1 → A = R (Table 4's m = 1 run
 *   beats EAGLE-3, which population std (A ≡ 0) would not give);
 * - Ŝ at training time = data-path acceptance: the longest root path of T whose tokens equal the
 *   data continuation x_{r+1}, x_{r+2}, … (truncated at the sequence end; the caller places roots of
 *   a sequence cut before its text ended so that the continuation is whole). On target-regenerated
 *   greedy data this is greedy verification up to argmax near-ties; on data sampled at T it has the
 *   distribution of T > 0 recursive-rejection acceptance. Greedy acceptance against the target's
 *   argmax is computed as well, for the τ monitor and the `tree` command; it stops where the text
 *   ended (the eos), as decoding does;
 * - reward from the full target vocabulary at T = 1 (the acceptance probability of a drafted token);
 * - roots only in the response (the caller picks them).
 * @module
 */
import { ShapeError } from "../errors.ts";

/** How the branch lengths of one tree are aggregated into its reward. */
export type RewardAggregate = "lse" | "max" | "mean";
/** Which standard deviation the group standardisation divides by. */
export type StdKind = "sample" | "population";

/** The GTO constants (see the module comment for why each value). */
export interface GtoConstants {
  /** η of the log-sum-exp reward (> 0). */
  eta: number;
  /** Branch aggregation. */
  aggregate: RewardAggregate;
  /** R = r(M) − r(M₀) when true, else R = r(M). */
  debias: boolean;
  /** m: prefixes per advantage group (adjacent prefixes). */
  groupSize: number;
  /** δ: added to the group std. */
  stdFloor: number;
  /** Standard deviation kind. */
  std: StdKind;
  /** ε: the PPO clip range [1 − ε, 1 + ε]. */
  clipEps: number;
}

/** Paper defaults plus this project's choices for what the paper leaves open. */
export const GTO_DEFAULTS: Readonly<GtoConstants> = Object.freeze({
  eta: 1,
  aggregate: "lse",
  debias: true,
  groupSize: 8,
  stdFloor: 1e-4,
  std: "sample",
  clipEps: 0.2,
});

/** The part of a draft tree the reward needs: node 0 is the root; parents precede children. */
export interface GtoTree {
  /** Target token ids, root first, (N). */
  tokens: ArrayLike<number>;
  /** Parent node of each node, −1 for the root, (N). */
  parents: ArrayLike<number>;
}

function checkTree(tree: GtoTree, op: string): number {
  const N = tree.tokens.length;
  if (N < 1 || tree.parents.length !== N) {
    throw new ShapeError(`${op}: tree has ${N} tokens and ${tree.parents.length} parents`);
  }
  if (tree.parents[0] !== -1) throw new ShapeError(`${op}: node 0 must be the root (parent −1)`);
  for (let i = 1; i < N; i++) {
    const p = tree.parents[i];
    if (!Number.isInteger(p) || p < 0 || p >= i) {
      throw new ShapeError(`${op}: node ${i} has parent ${p}; parents must precede their children`);
    }
  }
  return N;
}

/** Node target log-probabilities and greedy agreement of one tree. */
export interface NodeTargetLogProbs {
  /** log p_T(x̄_j | prefix, ancestors), 0 for the root, (N). */
  logProbs: Float64Array;
  /** 1 where node j's token is the target argmax at its parent (lowest id on ties), 0 else; root 0, (N). */
  greedyOk: Uint8Array;
  /** Target argmax after each node (what greedy verification would emit there), (N). */
  argmax: Int32Array;
}

/**
 * Per node j ≥ 1: log softmax(z_{parent(j)})[token_j] at temperature 1 over the full target vocabulary,
 * where row i of `logits` ((N, V) row-major) is the target's next-token logits after node i (the
 * verification forward's output row i: prefix plus node i's ancestors-or-self). Eq. 3's p_k.
 */
export function nodeTargetLogProbs(tree: GtoTree, logits: ArrayLike<number>, V: number): NodeTargetLogProbs {
  const N = checkTree(tree, "nodeTargetLogProbs");
  if (!Number.isInteger(V) || V < 1 || logits.length !== N * V) {
    throw new ShapeError(`nodeTargetLogProbs: logits have ${logits.length} entries, expected (${N}, ${V})`);
  }
  const lse = new Float64Array(N);
  const argmax = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    let mx = -Infinity, am = 0;
    for (let v = 0; v < V; v++) {
      const z = logits[i * V + v];
      if (z > mx) {
        mx = z;
        am = v;
      }
    }
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[i * V + v] - mx);
    lse[i] = mx + Math.log(s);
    argmax[i] = am;
  }
  const logProbs = new Float64Array(N);
  const greedyOk = new Uint8Array(N);
  for (let j = 1; j < N; j++) {
    const p = tree.parents[j], tok = tree.tokens[j];
    if (!Number.isInteger(tok) || tok < 0 || tok >= V) {
      throw new ShapeError(`nodeTargetLogProbs: node ${j} token ${tok} outside the vocabulary ${V}`);
    }
    logProbs[j] = logits[p * V + tok] - lse[p];
    greedyOk[j] = argmax[p] === tok ? 1 : 0;
  }
  return { logProbs, greedyOk, argmax };
}

/**
 * The root→leaf branches of the tree: one per leaf (a node no other node names as parent), in
 * increasing leaf index, each the node list root first — the rows of tree_ref's `retrieve`.
 */
export function treeBranches(tree: GtoTree): number[][] {
  const N = checkTree(tree, "treeBranches");
  const isParent = new Uint8Array(N);
  for (let i = 1; i < N; i++) isParent[tree.parents[i]] = 1;
  const out: number[][] = [];
  for (let leaf = 0; leaf < N; leaf++) {
    if (isParent[leaf]) continue;
    const path: number[] = [];
    for (let c = leaf; c >= 0; c = tree.parents[c]) path.push(c);
    out.push(path.reverse());
  }
  return out;
}

/**
 * Eq. 3–4: per branch b = (root, n_1, …, n_len), L_b = Σ_{j=1..len} Π_{k≤j} p_{n_k} with
 * p = exp(logProbs) per node (the root's entry is not used). A root-only branch has L = 0.
 */
export function branchLengths(branches: number[][], logProbs: ArrayLike<number>): Float64Array {
  const L = new Float64Array(branches.length);
  branches.forEach((b, i) => {
    let prod = 1, sum = 0;
    for (let j = 1; j < b.length; j++) {
      prod *= Math.exp(logProbs[b[j]]);
      sum += prod;
    }
    L[i] = sum;
  });
  return L;
}

/** The three aggregations of one tree's branch lengths. */
export interface TreeRewards {
  /** (1/η)·log Σ_b exp(η·L_b) (Eq. 5). */
  lse: number;
  /** max_b L_b. */
  max: number;
  /** mean_b L_b. */
  mean: number;
}

/**
 * Eq. 5 and its ablations over the branch lengths `L` (≥ 1 branch): lse = (1/η)·log Σ exp(η·L)
 * (computed with max subtraction; η must be > 0), max, mean.
 */
export function treeRewards(L: ArrayLike<number>, eta = 1): TreeRewards {
  if (L.length < 1) throw new ShapeError("treeRewards: a tree has at least one branch");
  if (!(eta > 0) || !Number.isFinite(eta)) throw new ShapeError(`treeRewards: eta must be > 0, got ${eta}`);
  let mx = -Infinity, sum = 0;
  for (let i = 0; i < L.length; i++) {
    mx = Math.max(mx, L[i]);
    sum += L[i];
  }
  let s = 0;
  for (let i = 0; i < L.length; i++) s += Math.exp(eta * (L[i] - mx));
  return { lse: mx + Math.log(s) / eta, max: mx, mean: sum / L.length };
}

/** The reward `agg` of `L` (see {@link treeRewards}). */
export function treeReward(L: ArrayLike<number>, agg: RewardAggregate = "lse", eta = 1): number {
  return treeRewards(L, eta)[agg];
}

/** Debiasing: R_i = r_i − r0_i, or R_i = r_i when `r0` is null (`--no-debias`). */
export function debiasRewards(r: ArrayLike<number>, r0: ArrayLike<number> | null): Float64Array {
  if (r0 && r0.length !== r.length) {
    throw new ShapeError(`debiasRewards: ${r.length} rewards but ${r0.length} reference rewards`);
  }
  return Float64Array.from(r, (v, i) => r0 ? v - r0[i] : v);
}

/**
 * Group standardisation over consecutive groups of m prefixes (R.length a multiple of m):
 * A = (R − mean)/(std + δ), std sample (÷ (m − 1)) or population (÷ m); m = 1 → A = R.
 */
export function groupAdvantages(
  R: ArrayLike<number>,
  m: number,
  stdFloor: number = GTO_DEFAULTS.stdFloor,
  std: StdKind = GTO_DEFAULTS.std,
): Float64Array {
  if (!Number.isInteger(m) || m < 1 || R.length % m !== 0) {
    throw new ShapeError(`groupAdvantages: group size ${m} must be a positive divisor of ${R.length}`);
  }
  if (!(stdFloor >= 0)) throw new ShapeError(`groupAdvantages: stdFloor must be ≥ 0, got ${stdFloor}`);
  const A = new Float64Array(R.length);
  if (m === 1) {
    A.set(Array.from(R));
    return A;
  }
  // Deviations from the group's first member (shift invariance): equal rewards give A = 0 exactly.
  for (let g = 0; g < R.length; g += m) {
    let mean = 0;
    for (let i = 0; i < m; i++) mean += R[g + i] - R[g];
    mean /= m;
    let ss = 0;
    for (let i = 0; i < m; i++) ss += (R[g + i] - R[g] - mean) ** 2;
    const sd = Math.sqrt(ss / (std === "sample" ? m - 1 : m));
    for (let i = 0; i < m; i++) A[g + i] = (R[g + i] - R[g] - mean) / (sd + stdFloor);
  }
  return A;
}

/**
 * Data-path acceptance: Ŝ = the longest root path whose tokens equal `continuation` (x_{r+1}, x_{r+2},
 * …; the caller truncates it at the sequence end). Returns Ŝ's node indices, root excluded (l = length).
 * Among siblings with the same token the lowest node index is taken.
 */
export function acceptedPath(tree: GtoTree, continuation: ArrayLike<number>): number[] {
  const N = checkTree(tree, "acceptedPath");
  const path: number[] = [];
  let cur = 0;
  while (path.length < continuation.length) {
    let next = -1;
    for (let j = cur + 1; j < N; j++) {
      if (tree.parents[j] === cur && tree.tokens[j] === continuation[path.length]) {
        next = j;
        break;
      }
    }
    if (next < 0) break;
    path.push(next);
    cur = next;
  }
  return path;
}

/**
 * Greedy (T = 0) verification: from the root, repeatedly step to the child whose token is the target
 * argmax after the current node (`argmax` (N), see {@link nodeTargetLogProbs}), at most `maxLength`
 * steps (where the text ended: decoding stops at the eos, so nothing after it is accepted). Node
 * indices, root excluded; its length is the accepted length (the bonus token not counted).
 */
export function greedyAcceptedPath(tree: GtoTree, argmax: ArrayLike<number>, maxLength = Infinity): number[] {
  const N = checkTree(tree, "greedyAcceptedPath");
  const path: number[] = [];
  let cur = 0;
  while (path.length < maxLength) {
    let next = -1;
    for (let j = cur + 1; j < N; j++) {
      if (tree.parents[j] === cur && tree.tokens[j] === argmax[cur]) {
        next = j;
        break;
      }
    }
    if (next < 0) break;
    path.push(next);
    cur = next;
  }
  return path;
}

/** s = exp((log M(Ŝ) − log M₀(Ŝ))/max(l, 1)); l = 0 (Ŝ empty, both log-probs 0) gives s = 1. */
export function pathRatio(logM: number, logM0: number, l: number): number {
  if (!Number.isInteger(l) || l < 0) {
    throw new ShapeError(`pathRatio: length must be an integer ≥ 0, got ${l}`);
  }
  return l === 0 ? 1 : Math.exp((logM - logM0) / l);
}

/** The clipped surrogate over a batch and its gradient coefficients. */
export interface SurrogateResult {
  /** L_GTO = −(1/P)·Σ_i min(s_i·A_i, clip(s_i, 1−ε, 1+ε)·A_i). */
  loss: number;
  /** Per-prefix min(s·A, clip(s)·A), (P). */
  terms: Float64Array;
  /**
   * ∂L_GTO/∂log M(Ŝ_i), (P): −A_i·s_i/(P·max(l_i, 1)) where the unclipped branch is the minimum
   * (A ≥ 0: s ≤ 1 + ε; A < 0: s ≥ 1 − ε), else 0; 0 when l_i = 0 (log M(∅) is the constant 0).
   * Each drafted token of Ŝ_i receives this coefficient times ∂log M(ŝ_k | ·).
   */
  coeffs: Float64Array;
  /** 1 where the clipped branch is active (zero gradient), (P). */
  clipped: Uint8Array;
}

/**
 * PPO-clip surrogate (`−mean min(s·A, clip(s, 1 ± ε)·A)` over the P prefixes) with the coefficients of
 * its gradient w.r.t. each log M(Ŝ_i) (see {@link SurrogateResult.coeffs}); ds/dlog M = s/max(l, 1).
 * At the boundary s = 1 ± ε both branches are equal and the unclipped one is taken.
 */
export function clippedSurrogate(
  s: ArrayLike<number>,
  A: ArrayLike<number>,
  l: ArrayLike<number>,
  clipEps: number = GTO_DEFAULTS.clipEps,
): SurrogateResult {
  const P = s.length;
  if (A.length !== P || l.length !== P) {
    throw new ShapeError(`clippedSurrogate: ${P} ratios, ${A.length} advantages, ${l.length} lengths`);
  }
  if (!(clipEps >= 0)) throw new ShapeError(`clippedSurrogate: clipEps must be ≥ 0, got ${clipEps}`);
  const terms = new Float64Array(P);
  const coeffs = new Float64Array(P);
  const clipped = new Uint8Array(P);
  let sum = 0;
  for (let i = 0; i < P; i++) {
    const si = s[i], a = A[i];
    const c = Math.min(Math.max(si, 1 - clipEps), 1 + clipEps);
    const active = a >= 0 ? si <= 1 + clipEps : si >= 1 - clipEps;
    terms[i] = active ? si * a : c * a;
    clipped[i] = active ? 0 : 1;
    coeffs[i] = active && l[i] > 0 ? -a * si / (P * l[i]) : 0;
    sum += terms[i];
  }
  return { loss: P ? -sum / P : 0, terms, coeffs, clipped };
}

/** Everything of one prefix's tree the GTO step uses. */
export interface TreeEvaluation {
  /** Node log p_T, (N) (root 0). */
  logProbs: Float64Array;
  /** Greedy agreement per node, (N). */
  greedyOk: Uint8Array;
  /** Branches root→leaf, in increasing leaf index. */
  branches: number[][];
  /** L per branch. */
  L: Float64Array;
  /** The three rewards. */
  rewards: TreeRewards;
  /** Greedy accepted length (T = 0 verification, bonus not counted). */
  greedyLength: number;
}

/**
 * Reward pipeline of one tree from its verification logits ((N, V), row i = logits after node i);
 * `greedyCap` = where the text ended after the root (see {@link greedyAcceptedPath}; default none).
 */
export function evaluateTree(
  tree: GtoTree,
  logits: ArrayLike<number>,
  V: number,
  eta = 1,
  greedyCap = Infinity,
): TreeEvaluation {
  const { logProbs, greedyOk, argmax } = nodeTargetLogProbs(tree, logits, V);
  const branches = treeBranches(tree);
  const L = branchLengths(branches, logProbs);
  return {
    logProbs,
    greedyOk,
    branches,
    L,
    rewards: treeRewards(L, eta),
    greedyLength: greedyAcceptedPath(tree, argmax, greedyCap).length,
  };
}
