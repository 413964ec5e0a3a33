/**
 * CPU reference of EAGLE-3 draft-tree growth (the EAGLE authors' `topK_genrate`, SafeAILab/EAGLE
 * @ cb7e084), used to check the GPU construction in `tree_ops.ts` bit for bit and to document the
 * exact semantics in one readable place.
 *
 * Growth with k = topK, D = depth, total = totalTokens (defaults 10, 7, 60):
 * - level 0: the top-k of the last prefix pair's draft log-probs are the root's children (candidates
 *   0..k−1, scores = their log-probs); they form the first frontier. Every frontier node is fed to
 *   the draft as (hidden row of its parent's expansion, its own target token).
 * - expansion e = 0..D−1 (one draft forward over the k frontier nodes, all at draft position
 *   prefixLen + e, each attending to the whole prefix and to its ancestors among the k·(e+1) expanded
 *   rows): per frontier row r the top-k children by draft log-prob, cumulative score = row score +
 *   child log-prob (f32), appended as k² candidates at flat index k + e·k² + r·k + j; the next frontier
 *   is the top-k of these k² scores, its `parentRows` = flat / k.
 * - re-rank: the top-(total−1) of all C = k + D·k² candidates, sorted by candidate index, root
 *   prepended → N = total nodes.
 * - parent of node i = searchsorted(selected, parentCandidate) + 1 (0 when the parent is the root),
 *   ancestor-or-self mask built in node order, depth = ancestors, leaves = nodes that are nobody's
 *   parent (increasing node index), retrieve row = root→leaf path padded with −1.
 *
 * Ties (every top-k here: per-row children, next frontier, final re-rank): descending value, equal
 * values ordered by lower index first. Because a child's score is its parent's plus a log-prob ≤ 0 and
 * a parent's candidate index is always lower than its children's, the selected set is closed under
 * parents, so every node's parent is itself a node and the tree is well formed. (For inputs that break
 * this — positive "log-probs" — the construction still follows EAGLE's searchsorted formula, and the
 * GPU kernels follow the same formula; see `buildDraftTreeFromCandidates`.)
 *
 * Target token ids: draft id d maps to d + d2t[d]. All scores are f32 (sums rounded with
 * `Math.fround`), matching the GPU.
 * @module
 */
import { ShapeError } from "../errors.ts";
import { resolveTreeConfig, type TreeCandidates, type TreeConfig } from "./config.ts";
// Re-exported for the tests and readers that know them from here; the definitions live in config.ts.
export {
  type ResolvedTreeConfig,
  resolveTreeConfig,
  TREE_MAX_TOKENS,
  TREE_MAX_TOPK,
  type TreeCandidates,
  type TreeConfig,
} from "./config.ts";

/** What one draft forward of the growth was given (expansion e). */
export interface DraftExpansion {
  /** Row of the previous expansion's draft output each frontier node continues from, (k); all 0 at e = 0 (the last prefix pair). */
  parentRows: Int32Array;
  /** Target token ids of the frontier nodes, (k). */
  tokens: Int32Array;
  /** Ancestor mask over the k·(e+1) expanded rows (row-major (k, k·(e+1)), 1 = visible); the prefix is always visible. */
  mask: Uint8Array;
  /** Draft position offset: every frontier node sits at prefixLen + position (= e). */
  position: number;
  /** Cumulative scores of the frontier nodes, (k). */
  scores: Float32Array;
  /** Candidate index of each frontier node, (k). */
  candidates: Int32Array;
}

/** A draft tree ready for verification (node 0 is the root). */
export interface DraftTree {
  /** Target token ids, root first, (N). */
  tokens: Int32Array;
  /** Node index of each node's parent, −1 for the root, (N). */
  parents: Int32Array;
  /** Depth (root 0) = position offset of each node, (N). */
  depth: Int32Array;
  /** Ancestor-or-self mask, row-major (N, N), 1 = node i may see node j. */
  mask: Uint8Array;
  /** Root→leaf node paths, one row per leaf in increasing leaf index, −1 padded: (numLeaves, maxDepth + 1). */
  retrieve: Int32Array;
  /** Number of leaves (rows of `retrieve`). */
  numLeaves: number;
  /** Largest depth (row width of `retrieve` is maxDepth + 1). */
  maxDepth: number;
  /** Candidate index of each node, −1 for the root, (N). */
  nodeCandidates: Int32Array;
  /** Cumulative score of each node, 0 for the root, (N). */
  nodeScores: Float32Array;
  /** The candidate arrays the tree was selected from. */
  candidates: TreeCandidates;
  /** The inputs of every draft forward, e = 0..depth−1. */
  expansions: DraftExpansion[];
}

/**
 * Callback that runs one draft forward: `level` = expansion e (0..depth−1); `parentRows` (k): which
 * row of the previous expansion's output each frontier node continues from (at e = 0, all 0: the last
 * prefix pair); `tokens` (k): the frontier's target ids. Returns the frontier's draft log-probs,
 * row-major (k, Vd).
 */
export type ExpandFn = (level: number, parentRows: Int32Array, tokens: Int32Array) => Float32Array;

/** Inputs of {@link buildDraftTree}. */
export interface BuildDraftTreeInput {
  /** Draft log-probs at the last prefix pair, (Vd). */
  initialLogProbs: Float32Array;
  /** Root token (target id). */
  root: number;
  /** Draft → target offsets (target = d + d2t[d]), (Vd). */
  d2t: Int32Array;
  /** The draft forward (see {@link ExpandFn}). */
  expand: ExpandFn;
  /** Tree shape. */
  config?: TreeConfig;
}

/**
 * Indices of the k largest of `x[off .. off+n)` (relative to `off`), descending, equal values by lower
 * index first. Throws on NaN (the growth is undefined for NaN log-probs).
 */
export function topkIndices(x: Float32Array, k: number, off = 0, n: number = x.length - off): Int32Array {
  const out = new Int32Array(k).fill(-1);
  const vals = new Float64Array(k).fill(-Infinity);
  let filled = 0;
  for (let i = 0; i < n; i++) {
    const v = x[off + i];
    if (v !== v) throw new ShapeError(`tree: NaN log-prob / score at index ${off + i}`);
    if (filled === k && !(v > vals[k - 1])) continue; // ties keep the earlier (lower) index
    let p = filled < k ? filled++ : k - 1;
    while (p > 0 && v > vals[p - 1]) { // strictly greater moves up: equal values stay in index order
      vals[p] = vals[p - 1];
      out[p] = out[p - 1];
      p--;
    }
    vals[p] = v;
    out[p] = i;
  }
  return out;
}

/**
 * Grow an EAGLE-3 draft tree on the CPU (see the module comment for the exact semantics).
 * Throws {@link ShapeError} on bad options or callback output.
 */
export function buildDraftTree(input: BuildDraftTreeInput): DraftTree {
  const { initialLogProbs: lp0, root, d2t, expand } = input;
  const Vd = lp0.length;
  const cfg = resolveTreeConfig(input.config, Vd);
  const { topK: k, depth: D, candidates: C } = cfg;
  if (d2t.length !== Vd) throw new ShapeError(`tree: d2t has ${d2t.length} entries, draft vocab is ${Vd}`);
  const scores = new Float32Array(C);
  const tokens = new Int32Array(C);
  const parents = new Int32Array(C);
  const toTarget = (d: number) => d + d2t[d];

  // Level 0: the root's children.
  const top0 = topkIndices(lp0, k);
  let frontScore = new Float32Array(k);
  let frontCand = new Int32Array(k);
  let frontTok = new Int32Array(k);
  let parentRows = new Int32Array(k);
  for (let j = 0; j < k; j++) {
    scores[j] = lp0[top0[j]];
    tokens[j] = toTarget(top0[j]);
    parents[j] = -1;
    frontScore[j] = scores[j];
    frontCand[j] = j;
    frontTok[j] = tokens[j];
  }
  let mask = new Uint8Array(k * k); // (k, k) = eye
  for (let r = 0; r < k; r++) mask[r * k + r] = 1;

  const expansions: DraftExpansion[] = [];
  for (let e = 0; e < D; e++) {
    expansions.push({
      parentRows: parentRows.slice(),
      tokens: frontTok.slice(),
      mask: mask.slice(),
      position: e,
      scores: frontScore.slice(),
      candidates: frontCand.slice(),
    });
    const lp = expand(e, parentRows.slice(), frontTok.slice()); // (k, Vd)
    if (!(lp instanceof Float32Array) || lp.length !== k * Vd) {
      throw new ShapeError(`tree: expand(${e}) must return a Float32Array (${k}, ${Vd}), got ${lp?.length}`);
    }
    const base = k + e * k * k;
    const cu = new Float32Array(k * k); // (k, k)
    for (let r = 0; r < k; r++) {
      const top = topkIndices(lp, k, r * Vd, Vd);
      for (let j = 0; j < k; j++) {
        const idx = r * k + j;
        cu[idx] = Math.fround(lp[r * Vd + top[j]] + frontScore[r]);
        scores[base + idx] = cu[idx];
        tokens[base + idx] = toTarget(top[j]);
        parents[base + idx] = frontCand[r];
      }
    }
    const sel = topkIndices(cu, k);
    const nextRows = new Int32Array(k);
    const nextScore = new Float32Array(k);
    const nextCand = new Int32Array(k);
    const nextTok = new Int32Array(k);
    const w = k * (e + 1); // columns of the current mask
    const nextMask = new Uint8Array(k * (w + k)); // (k, k·(e+2))
    for (let r = 0; r < k; r++) {
      nextRows[r] = Math.floor(sel[r] / k);
      nextScore[r] = cu[sel[r]];
      nextCand[r] = base + sel[r];
      nextTok[r] = tokens[base + sel[r]];
      nextMask.set(mask.subarray(nextRows[r] * w, nextRows[r] * w + w), r * (w + k));
      nextMask[r * (w + k) + w + r] = 1;
    }
    parentRows = nextRows;
    frontScore = nextScore;
    frontCand = nextCand;
    frontTok = nextTok;
    mask = nextMask;
  }
  const tree = buildDraftTreeFromCandidates({ scores, tokens, parents }, root, cfg.totalTokens);
  tree.expansions = expansions;
  return tree;
}

/**
 * The re-rank and tree assembly of {@link buildDraftTree} from given candidate arrays: select the
 * top-(N−1) candidates (descending score, lower index first), sort them by index, prepend the root;
 * parent node = 1 + #{selected candidates < parent candidate} (EAGLE's searchsorted; 0 for the root's
 * children); mask row i = {0, i} ∪ row(parent) when parent < i (built in node order); depth = bits − 1;
 * leaves = nodes no node names as parent; retrieve row = the walk leaf → parent … for depth + 1 steps.
 * `expansions` of the result is empty.
 */
export function buildDraftTreeFromCandidates(
  cands: TreeCandidates,
  root: number,
  totalTokens: number,
): DraftTree {
  const C = cands.scores.length;
  const N = totalTokens;
  if (!Number.isInteger(N) || N < 2 || N - 1 > C) {
    throw new ShapeError(`tree: totalTokens ${N} must be in [2, candidates + 1 = ${C + 1}]`);
  }
  const sel = topkIndices(cands.scores, N - 1).sort(); // ascending candidate index
  const tokens = new Int32Array(N);
  const parents = new Int32Array(N);
  const nodeCandidates = new Int32Array(N);
  const nodeScores = new Float32Array(N);
  tokens[0] = root;
  parents[0] = -1;
  nodeCandidates[0] = -1;
  for (let i = 1; i < N; i++) {
    const c = sel[i - 1];
    tokens[i] = cands.tokens[c];
    nodeCandidates[i] = c;
    nodeScores[i] = cands.scores[c];
    const pc = cands.parents[c];
    let pi = 0;
    if (pc >= 0) {
      pi = 1;
      for (let s = 0; s < N - 1; s++) if (sel[s] < pc) pi++;
    }
    parents[i] = pi;
  }
  const mask = new Uint8Array(N * N); // (N, N)
  const depth = new Int32Array(N);
  mask[0] = 1;
  for (let i = 1; i < N; i++) {
    mask[i * N] = 1;
    mask[i * N + i] = 1;
    const p = parents[i];
    if (p < i) { for (let j = 0; j < N; j++) mask[i * N + j] |= mask[p * N + j]; }
  }
  let maxDepth = 0;
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let j = 0; j < N; j++) s += mask[i * N + j];
    depth[i] = s - 1;
    maxDepth = Math.max(maxDepth, depth[i]);
  }
  const isParent = new Uint8Array(N);
  for (let i = 1; i < N; i++) if (parents[i] >= 0 && parents[i] < N) isParent[parents[i]] = 1;
  const leaves: number[] = [];
  for (let i = 0; i < N; i++) if (!isParent[i]) leaves.push(i);
  const W = maxDepth + 1;
  const retrieve = new Int32Array(leaves.length * W).fill(-1); // (numLeaves, maxDepth + 1)
  leaves.forEach((leaf, row) => {
    let cid = leaf;
    for (let j = depth[leaf]; j >= 0; j--) {
      retrieve[row * W + j] = cid;
      cid = cid >= 0 ? parents[cid] : -1;
    }
  });
  return {
    tokens,
    parents,
    depth,
    mask,
    retrieve,
    numLeaves: leaves.length,
    maxDepth,
    nodeCandidates,
    nodeScores,
    candidates: cands,
    expansions: [],
  };
}

/**
 * The tree's ancestor mask as the bitset the attention op's `treeMask` expects: (N, ceil(N/32)) u32,
 * bit (j & 31) of word j >> 5 of row i ⇔ node i may see node j.
 */
export function packTreeMask(tree: Pick<DraftTree, "mask" | "tokens">): Uint32Array {
  const N = tree.tokens.length;
  const words = Math.ceil(N / 32);
  const bits = new Uint32Array(N * words); // (N, ceil(N/32))
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) if (tree.mask[i * N + j]) bits[i * words + (j >> 5)] |= 1 << (j & 31);
  }
  return bits;
}

/** The root→leaf node paths of `tree` (the rows of `retrieve` without the −1 padding). */
export function treePaths(tree: Pick<DraftTree, "retrieve" | "numLeaves" | "maxDepth">): number[][] {
  const W = tree.maxDepth + 1;
  const out: number[][] = [];
  for (let r = 0; r < tree.numLeaves; r++) {
    const row: number[] = [];
    for (let j = 0; j < W; j++) {
      const v = tree.retrieve[r * W + j];
      if (v >= 0) row.push(v);
    }
    out.push(row);
  }
  return out;
}
