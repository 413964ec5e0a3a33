/**
 * The cost-aware draft tree (`tree: "auto"`): from a table of measured costs on this adapter and the
 * draft's acceptance profile, predict tokens/s for every candidate (total, depth, topK) tree and for
 * plain decoding, and pick the fastest. Pure CPU logic; the measurements are `calibrate.ts`'s, the
 * cache is `tree_cache.ts`'s.
 *
 * Why a model and not a search: a tree's buffers are allocated at load, and trying each of a few
 * hundred shapes on real prompts would take minutes on a software adapter. Costs and acceptance are
 * separable, so a handful of measurements predicts them all (docs/engine.md §6):
 *
 * - **Cost of a cycle**, ms: `cycle(N, D, k) = draft(D, k) + verify(N) + book`, where `verify(N)` is
 *   interpolated piecewise-linearly between measured tree sizes (plain decoding's step is the N = 1
 *   point), `draft(D, k) = base(k) + D·perLevel(k)` with base and perLevel linear in k between the
 *   measured k (held flat below the smallest), and `book` (acceptance + KV compaction) a constant.
 *   Each measured series is made non-decreasing first (more work never costs less; {@link monotone}).
 * - **Acceptance**: `p[d][r]` = probability that, the path to a node at depth d − 1 being accepted,
 *   the target's next token is that node's rank-r child (r = 1 is the draft's best). The expected
 *   accepted length of a tree is then the sum, over its non-root nodes, of the product of p along
 *   the node's path. The tree is simulated with those products standing in for the draft's scores,
 *   exactly as EAGLE-2/3 build it (level 0: the root's k best children; each expansion: the k
 *   best nodes of the last level get k children each, all k² are candidates; keep the best N − 1
 *   candidates), so `τ(N, D, k) = 1 + Σ_{selected} Π p` (the 1 is the bonus token).
 * - **Choice**: `tok/s = 1000·τ / cycle` for each tree, `1000 / plainStep` for plain decoding;
 *   the best tree wins only if it beats plain by `minGain` (default 5 %, a hedge against the model's
 *   error), else no speculation.
 *
 * The static expectation ignores that the real tree adapts to the context (confident prefixes grow
 * deeper), so it tends to under-predict τ a little; `bench:accept` prints predicted against
 * measured tokens/s so the error is visible.
 * @module
 */
import type { CycleTrace } from "../speculative/trace.ts";

/** A tree shape (as `EngineLoadOptions.tree`). */
export interface TreeShape {
  /** Nodes verified per cycle, root included. */
  totalTokens: number;
  /** Draft expansions per cycle. */
  depth: number;
  /** Children per node and frontier width. */
  topK: number;
}

/** Costs measured on one adapter for one (target, draft) pair; all times in ms. */
export interface TreeCostTable {
  /** One plain decode step (the readback loop included, amortised). */
  plainStepMs: number;
  /** Verification (the target's forward over a tree of n tokens), sorted by n. */
  verify: { n: number; ms: number }[];
  /** Drafting = baseMs + depth·perLevelMs at each measured k, sorted by k. */
  drafting: { k: number; baseMs: number; perLevelMs: number }[];
  /** Acceptance + KV compaction per cycle. */
  bookkeepingMs: number;
}

/**
 * The draft's acceptance profile: `p[d − 1][r − 1]` is the probability that the target's token at
 * tree depth d (1 = the root's children) is the draft's rank-r candidate, given the path above was
 * accepted. Rows may be ragged; missing entries count as 0, depths past the last row reuse it.
 */
export interface AcceptanceProfile {
  /** p[depth − 1][rank − 1]. */
  p: number[][];
}

/** Counts gathered from traced cycles ({@link countAcceptance}). */
export interface AcceptanceCounts {
  /** offered[d − 1][r − 1]: cycles whose accepted path reached depth d − 1 with a rank-r child in the tree. */
  offered: number[][];
  /** accepted[d − 1][r − 1]: of those, the cycles that accepted that child. */
  accepted: number[][];
}

/** A prediction for one tree (null = plain decoding). */
export interface TreePrediction {
  /** The tree, or null for plain decoding. */
  tree: TreeShape | null;
  /** Predicted new tokens per cycle (1 for plain decoding). */
  tau: number;
  /** Predicted ms per cycle (per step for plain decoding). */
  cycleMs: number;
  /** Predicted tokens per second. */
  tokPerSec: number;
}

/** What {@link chooseTree} decided. */
export interface AutoTreeChoice {
  /** The winner (tree null: plain decoding). */
  choice: TreePrediction;
  /** The best tree, also when plain decoding won. */
  bestTree: TreePrediction;
  /** Plain decoding. */
  plain: TreePrediction;
  /** Candidate trees evaluated. */
  candidates: number;
}

/** Bounds of the candidate grid ({@link candidateTrees}). */
export interface CandidateGrid {
  /** Top-k values (default 1, 2, 3, 4, 6, 8). */
  topK?: readonly number[];
  /** Largest depth (default 6). */
  maxDepth?: number;
  /** Tree sizes (default 2 … 64). */
  totalTokens?: readonly number[];
}

const DEFAULT_K = [1, 2, 3, 4, 6, 8];
const DEFAULT_N = [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];

/** Every (N, D, k) of the grid the tree construction accepts (N − 1 ≤ k + D·k²). */
export function candidateTrees(grid: CandidateGrid = {}): TreeShape[] {
  const out: TreeShape[] = [];
  for (const topK of grid.topK ?? DEFAULT_K) {
    for (let depth = 0; depth <= (grid.maxDepth ?? 6); depth++) {
      for (const totalTokens of grid.totalTokens ?? DEFAULT_N) {
        if (totalTokens - 1 <= topK + depth * topK * topK) out.push({ totalTokens, depth, topK });
      }
    }
  }
  return out;
}

/**
 * Piecewise-linear interpolation through `pts` (sorted by x), extended linearly past the last point
 * and held flat below the first (a cost below the measured range is not extrapolated toward 0:
 * measured k = 2 and 4 once predicted free k = 1 levels); ≥ 0.
 */
export function interpolate(pts: readonly { x: number; y: number }[], x: number): number {
  if (pts.length === 0) throw new Error("interpolate: no points");
  if (pts.length === 1 || x <= pts[0].x) return Math.max(0, pts[0].y);
  let i = 1;
  while (i < pts.length - 1 && x > pts[i].x) i++;
  const a = pts[i - 1], b = pts[i];
  const y = b.x === a.x ? b.y : a.y + (b.y - a.y) * (x - a.x) / (b.x - a.x);
  return Math.max(0, y);
}

/**
 * Make measured points non-decreasing in x (a running maximum) — more tokens or a wider frontier
 * never costs less; noise on a loaded adapter that says otherwise (seen: 16-token verification
 * slower than 32-token, k = 4 drafting cheaper than k = 2) would otherwise extrapolate to costs
 * near zero.
 */
export function monotone(pts: readonly { x: number; y: number }[]): { x: number; y: number }[] {
  const out = [...pts].sort((a, b) => a.x - b.x);
  for (let i = 1; i < out.length; i++) out[i] = { x: out[i].x, y: Math.max(out[i].y, out[i - 1].y) };
  return out;
}

/** Predicted ms of one cycle of `tree` (see the module comment); costs are made {@link monotone}. */
export function predictCycleMs(costs: TreeCostTable, tree: TreeShape): number {
  const verify = interpolate(
    monotone([{ x: 1, y: costs.plainStepMs }, ...costs.verify.map((p) => ({ x: p.n, y: p.ms }))]),
    tree.totalTokens,
  );
  const base = interpolate(monotone(costs.drafting.map((d) => ({ x: d.k, y: d.baseMs }))), tree.topK);
  const level = interpolate(monotone(costs.drafting.map((d) => ({ x: d.k, y: d.perLevelMs }))), tree.topK);
  return base + tree.depth * level + verify + costs.bookkeepingMs;
}

/** Predicted τ (new tokens per cycle, bonus included) of `tree` under `acc` (see the module comment). */
export function predictTau(acc: AcceptanceProfile, tree: TreeShape): number {
  const { totalTokens: N, depth: D, topK: k } = tree;
  const rows = acc.p;
  const p = (d: number, r: number): number => {
    if (rows.length === 0) return 0;
    const row = rows[Math.min(d, rows.length) - 1];
    return Math.min(1, Math.max(0, row[r - 1] ?? 0));
  };
  const cands: number[] = [];
  // Level 0: the root's k best children (depth 1).
  let frontier = Array.from({ length: k }, (_, j) => p(1, j + 1));
  cands.push(...frontier);
  for (let e = 0; e < D; e++) {
    // Expansion e: each frontier node's k children (depth e + 2); the next frontier is their best k.
    const children: number[] = [];
    for (const v of frontier) for (let j = 0; j < k; j++) children.push(v * p(e + 2, j + 1));
    cands.push(...children);
    frontier = children.sort((a, b) => b - a).slice(0, k);
  }
  cands.sort((a, b) => b - a);
  let tau = 1;
  for (let i = 0; i < Math.min(N - 1, cands.length); i++) tau += cands[i];
  return tau;
}

/**
 * Pick the tree (or plain decoding) with the most predicted tokens/s. A tree wins only when it beats
 * plain decoding by the factor `minGain` (default 1.05).
 */
export function chooseTree(
  costs: TreeCostTable,
  acc: AcceptanceProfile,
  opts: { grid?: CandidateGrid; minGain?: number } = {},
): AutoTreeChoice {
  const plain: TreePrediction = {
    tree: null,
    tau: 1,
    cycleMs: costs.plainStepMs,
    tokPerSec: 1000 / costs.plainStepMs,
  };
  const trees = candidateTrees(opts.grid);
  let best: TreePrediction | null = null;
  for (const tree of trees) {
    const tau = predictTau(acc, tree), cycleMs = predictCycleMs(costs, tree);
    const tokPerSec = 1000 * tau / cycleMs;
    // Ties go to the smaller (cheaper to allocate, less sensitive to the model's error) tree.
    if (!best || tokPerSec > best.tokPerSec * (1 + 1e-9)) best = { tree, tau, cycleMs, tokPerSec };
  }
  if (!best) throw new Error("chooseTree: the candidate grid is empty");
  const minGain = opts.minGain ?? 1.05;
  return {
    choice: best.tokPerSec > plain.tokPerSec * minGain ? best : plain,
    bestTree: best,
    plain,
    candidates: trees.length,
  };
}

/** Empty counts for `depths` depths and `ranks` ranks. */
export function emptyCounts(depths: number, ranks: number): AcceptanceCounts {
  const z = () => Array.from({ length: depths }, () => new Array<number>(ranks).fill(0));
  return { offered: z(), accepted: z() };
}

/**
 * Add one traced T = 0 cycle to `counts`. Nodes are stored in candidate order, so a node's children
 * appear in the draft's rank order (level 0 by rank; an expansion's children by rank within their
 * parent) and the r-th child in the node list is the rank-r candidate. Along the accepted path, each
 * step from a node at depth d − 1 offers its children in the tree (ranks 1..m) and accepts one of them
 * or none (the cycle ends there).
 */
export function countAcceptance(counts: AcceptanceCounts, c: CycleTrace): void {
  const children = new Map<number, number[]>();
  for (let i = 1; i < c.parents.length; i++) {
    const list = children.get(c.parents[i]);
    if (list) list.push(i);
    else children.set(c.parents[i], [i]);
  }
  const depths = counts.offered.length, ranks = counts.offered[0]?.length ?? 0;
  for (let d = 1; d <= depths; d++) {
    const parent = c.accepted[d - 1];
    if (parent === undefined) break;
    const kids = children.get(parent) ?? [];
    const next = c.accepted[d];
    for (let r = 1; r <= Math.min(kids.length, ranks); r++) {
      counts.offered[d - 1][r - 1]++;
      if (kids[r - 1] === next) counts.accepted[d - 1][r - 1]++;
    }
    if (next === undefined) break;
  }
}

/**
 * The profile from counts: `p = (accepted + s·prior) / (offered + s)` with `s` = 4 pseudo-cycles and
 * the prior the same rank one depth up (0 at depth 1), so sparsely observed deep levels lean on the
 * level above instead of on a handful of cycles, and unobserved entries inherit it.
 */
export function estimateAcceptance(counts: AcceptanceCounts, pseudo = 4): AcceptanceProfile {
  const p: number[][] = [];
  counts.offered.forEach((row, d) => {
    p.push(row.map((off, r) => {
      const prior = d === 0 ? 0 : p[d - 1][r];
      return (counts.accepted[d][r] + pseudo * prior) / (off + pseudo);
    }));
  });
  return { p };
}

/**
 * The best case: the draft's top candidate always accepted (τ = min(N, depth + 2)). A tree that loses
 * to plain decoding under it loses under any draft.
 */
export function perfectAcceptance(): AcceptanceProfile {
  return { p: [[1]] };
}

/** `T/D/K` or `plain`. */
export function describeTree(tree: TreeShape | null): string {
  return tree ? `${tree.totalTokens}/${tree.depth}/${tree.topK}` : "plain";
}
