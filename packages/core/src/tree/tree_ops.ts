/**
 * EAGLE-3 draft-tree construction on the GPU (`kernels/tree.wgsl`), recorded without any CPU
 * readback: every index, score and length stays in GPU buffers owned by one {@link TreeBuffers},
 * allocated once per tree shape, so a speculative cycle only records dispatches.
 *
 * A cycle, with k = topK and D = depth:
 * ```
 * treeLevel(rec, tb, lpLast, 0)                  // lpLast (1, Vd): draft log-probs of the last prefix pair
 * for e in 0..D−1:
 *   gatherRows(rec, hidden, prevOut, tb.outIds)  // (k, H) = prevOut[outIds]; prevOut = last pair's row at e = 0
 *   draft forward on tokens tb.frontierTokens at position prefixLen + e, attention treeMask
 *     { mask: tb.draftMasks[e], treeLen: k·(e+1) } over prefix KV + the k·(e+1) expanded rows
 *   logSoftmax → lp (k, Vd); treeLevel(rec, tb, lp, e + 1)
 * treeFinalize(rec, tb, { meta: tokenRing, index: rootSlot })
 * ```
 * Each `treeLevel` is two dispatches (the per-row `topk` op, then `tree_level`); `treeFinalize` is one
 * dispatch. Semantics and tie rules (descending value, lower index first) are exactly those of
 * `tree_ref.ts` ({@link buildDraftTree}).
 *
 * **P trees at once** (GTO training grows one tree per prefix): `TreeBuffers` with `trees: P` holds P
 * independent trees, one workgroup each, every per-tree tensor with a leading tree dimension (tree p's
 * rows at p·rows-per-tree): `lp` is (P, Vd) at level 0 and (P·k, Vd) after, `outIds` holds global rows
 * of that (P·R, H) draft output (so `gatherRows` is unchanged), and the roots are meta[index + p].
 * P = 1 (the default) is exactly the single-tree layout the speculative decoder uses: decoding and
 * training share the kernels.
 * @module
 */
import { TREE_WGSL } from "@gto/kernels";
import type { GpuDevice } from "../gpu/device.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { BufferArena } from "../gpu/arena.ts";
import { ShapeError } from "../errors.ts";
import { topk } from "../ops/select.ts";
import { topkLogSoftmax } from "../ops/topk.ts";
import type { DynamicValue } from "../ops/attention.ts";
import { grid1d } from "../ops/dispatch.ts";
import { memoKernel } from "../ops/kernel_memo.ts";
import {
  type ResolvedTreeConfig,
  resolveTreeConfig,
  type TreeCandidates,
  type TreeConfig,
} from "./config.ts";

/** Shape options of {@link TreeBuffers}: the tree shape plus the draft vocabulary size. */
export interface TreeBuffersOptions extends TreeConfig {
  /** Vd: size of the draft vocabulary (columns of the log-prob rows, entries of d2t). */
  draftVocab: number;
  /** P: independent trees grown per dispatch (default 1, the decoder's case). */
  trees?: number;
}

/**
 * Element offsets (u32 words) of the sections of {@link TreeBuffers.state}; f32 and i32 values are
 * stored as bit patterns.
 */
export interface TreeStateLayout {
  /** (k) f32: cumulative score of each frontier node. */
  frontierScore: number;
  /** (k) u32: candidate index of each frontier node. */
  frontierCand: number;
  /** (C) f32: cumulative score of each candidate (level 0 at [0, k), level L ≥ 1 at k + (L−1)·k² + r·k + j). */
  candScore: number;
  /** (C) u32: target token of each candidate. */
  candToken: number;
  /** (C) i32: parent candidate index, −1 for the root's children. */
  candParent: number;
  /** (N) i32: candidate index of each tree node, −1 for the root (written by treeFinalize). */
  nodeCand: number;
  /** (N) f32: cumulative score of each tree node, 0 for the root (written by treeFinalize). */
  nodeScore: number;
  /** Total words. */
  size: number;
}

/** The tree-state layout for a resolved config (see {@link TreeStateLayout}). */
export function treeStateLayout(cfg: ResolvedTreeConfig): TreeStateLayout {
  const k = cfg.topK, C = cfg.candidates, N = cfg.totalTokens;
  return {
    frontierScore: 0,
    frontierCand: k,
    candScore: 2 * k,
    candToken: 2 * k + C,
    candParent: 2 * k + 2 * C,
    nodeCand: 2 * k + 3 * C,
    nodeScore: 2 * k + 3 * C + N,
    size: 2 * k + 3 * C + 2 * N,
  };
}

/**
 * Every GPU buffer of draft-tree construction for P trees of one shape, allocated once from an arena
 * this object owns (call {@link TreeBuffers.destroy}). With k = topK, D = depth, N = totalTokens,
 * C = k + D·k², Vd = draftVocab, W = pathWidth = min(D + 1, N − 1) + 1, P = trees (tree p's rows at
 * p·rows-per-tree in each tensor; the shapes below are those of P = 1 with the first dimension × P):
 * - inputs of the next draft step: `frontierTokens` (P·k) u32, `outIds` (P·k) u32 (global rows of the
 *   (P·R, H) draft output), `draftMasks[e]` (P·k, ceil(k·(e+1)/32)) u32 for e = 0..D (entry D is
 *   written by the last level but not needed);
 * - scratch: `topIds` (P·k, k) u32, `topVals` (P·k, k) f32 (the per-row top-k of the current level);
 * - `state` (P·layout.size; tree p's block at p·layout.size, layout {@link TreeBuffers.layout}):
 *   frontier and candidate arrays, node → candidate;
 * - outputs of {@link treeFinalize}: `tokens` (P·N) u32 (root first), `parents` (P·N) i32 (−1 root,
 *   node indices local to the tree), `depths` (P·N) i32, `treeMask` (P·N, ceil(N/32)) u32
 *   (ancestor-or-self bitset, the attention op's `treeMask.mask` layout), `retrieve` (P·(N − 1), W)
 *   i32 (root→leaf paths in increasing leaf index, −1 padded; rows ≥ numLeaves all −1), `info`
 *   (P·4) u32 = [numLeaves, maxDepth, N, C] per tree.
 */
export class TreeBuffers {
  /** The validated shape. */
  readonly config: ResolvedTreeConfig;
  /** Vd. */
  readonly draftVocab: number;
  /** P: trees grown per dispatch. */
  readonly trees: number;
  /** Draft → target offsets, (Vd) i32 (target = d + d2t[d]); the caller's tensor, not owned. */
  readonly d2t: Tensor;
  /** Offsets of the sections of {@link state}. */
  readonly layout: TreeStateLayout;
  /** Packed construction state (u32 words; see {@link TreeStateLayout}). */
  readonly state: Tensor;
  /** (k, k) u32: per-row top-k draft ids of the current level. */
  readonly topIds: Tensor;
  /** (k, k) f32: per-row top-k draft log-probs of the current level. */
  readonly topVals: Tensor;
  /** (k) u32: target token ids of the current frontier (the next draft step's input ids). */
  readonly frontierTokens: Tensor;
  /** (k) u32: row of the last draft output each frontier node continues from (0 after level 0). */
  readonly outIds: Tensor;
  /** draftMasks[e]: (k, ceil(k·(e+1)/32)) u32 bitset over the expanded rows for draft expansion e. */
  readonly draftMasks: readonly Tensor[];
  /** (N) u32: target tokens, root first. */
  readonly tokens: Tensor;
  /** (N) i32: parent node, −1 for the root. */
  readonly parents: Tensor;
  /** (N) i32: depth (position offset) of each node. */
  readonly depths: Tensor;
  /** (N, ceil(N/32)) u32: ancestor-or-self bitset. */
  readonly treeMask: Tensor;
  /** (N − 1, pathWidth) i32: root→leaf paths, −1 padded. */
  readonly retrieve: Tensor;
  /** (4) u32: [numLeaves, maxDepth, N, C]. */
  readonly info: Tensor;
  readonly #arena: BufferArena;

  /**
   * Allocate the buffers for `opts` (validated by `resolveTreeConfig`); `d2t` is the draft's (Vd) i32
   * offset table. Throws {@link ShapeError} on bad options or a d2t of the wrong shape.
   */
  constructor(gpu: GpuDevice, opts: TreeBuffersOptions, d2t: Tensor) {
    const cfg = resolveTreeConfig(opts, opts.draftVocab);
    d2t.expectShape([opts.draftVocab], "i32"); // (Vd)
    const P = opts.trees ?? 1;
    const maxP = gpu.limits.maxComputeWorkgroupsPerDimension;
    if (!Number.isInteger(P) || P < 1 || P > maxP) {
      throw new ShapeError(`tree: trees must be an integer in [1, ${maxP}], got ${P}`);
    }
    this.config = cfg;
    this.draftVocab = opts.draftVocab;
    this.trees = P;
    this.d2t = d2t;
    this.layout = treeStateLayout(cfg);
    const { topK: k, depth: D, totalTokens: N, pathWidth: W } = cfg;
    const words = (cols: number) => Math.ceil(cols / 32);
    const maskSizes = Array.from({ length: D + 1 }, (_, e) => k * words(k * (e + 1)));
    const total = P * [
          this.layout.size,
          2 * k * k,
          2 * k,
          ...maskSizes,
          4 * N + N * words(N) + (N - 1) * W + 4,
        ].reduce((a, b) => a + b, 0) *
        4 + 256 * (D + 16);
    const arena = this.#arena = new BufferArena(gpu, total, "tree");
    this.state = arena.alloc([P * this.layout.size], "u32", "tree.state");
    this.topIds = arena.alloc([P * k, k], "u32", "tree.topIds");
    this.topVals = arena.alloc([P * k, k], "f32", "tree.topVals");
    this.frontierTokens = arena.alloc([P * k], "u32", "tree.frontierTokens");
    this.outIds = arena.alloc([P * k], "u32", "tree.outIds");
    this.draftMasks = maskSizes.map((_, e) =>
      arena.alloc([P * k, words(k * (e + 1))], "u32", `tree.draftMask${e}`)
    );
    this.tokens = arena.alloc([P * N], "u32", "tree.tokens");
    this.parents = arena.alloc([P * N], "i32", "tree.parents");
    this.depths = arena.alloc([P * N], "i32", "tree.depths");
    this.treeMask = arena.alloc([P * N, words(N)], "u32", "tree.treeMask");
    this.retrieve = arena.alloc([P * (N - 1), W], "i32", "tree.retrieve");
    this.info = arena.alloc([P * 4], "u32", "tree.info");
  }

  /** Release the buffers (no recorded work may still use them). */
  destroy(): void {
    this.#arena.destroy();
  }
}

/**
 * Record tree level `level` (0..depth) of all P trees: `lp` holds the draft log-probs (f32) of each
 * tree's last prefix pair at level 0, (P, Vd), else of the k frontier nodes of draft expansion
 * level − 1 of each tree, (P·k, Vd) (tree p's rows at p·k). Appends the level's candidates, selects
 * the next frontier and writes `tb.frontierTokens`, `tb.outIds` and `tb.draftMasks[level]`. Two
 * dispatches (per-row `topk`, then `tree_level` with one workgroup per tree). With
 * `opts.fromLogits`, `lp` holds the raw draft logits instead and the per-row top-k runs on their
 * log-softmax in the same single pass ({@link topkLogSoftmax}: bit for bit the trees a
 * `logSoftmax` dispatch followed by this call would build, one dispatch and k row passes fewer).
 * Throws {@link ShapeError} on a bad level or lp shape.
 */
export function treeLevel(
  rec: Recorder,
  tb: TreeBuffers,
  lp: Tensor,
  level: number,
  opts: { fromLogits?: boolean } = {},
): void {
  const { topK: k, depth: D, candidates: C } = tb.config;
  const P = tb.trees;
  if (!Number.isInteger(level) || level < 0 || level > D) {
    throw new ShapeError(`treeLevel: level must be an integer in [0, depth = ${D}], got ${level}`);
  }
  const R = level === 0 ? 1 : k;
  lp.expectShape([P * R, tb.draftVocab], "f32"); // (P·R, Vd)
  const ids = level === 0 ? tb.topIds.rows(P) : tb.topIds; // (P·R, k)
  const vals = level === 0 ? tb.topVals.rows(P) : tb.topVals; // (P·R, k)
  if (opts.fromLogits) topkLogSoftmax(rec, ids, vals, lp, k);
  else topk(rec, ids, vals, lp, k);
  const kern = memoKernel(rec, "tree_level", () => ({
    name: "tree_level",
    code: TREE_WGSL,
    entryPoint: "tree_level",
    storage: ["rw", "rw", "rw", "rw", "rw", "rw", "rw", "rw"],
    params: "uuuuu",
  }));
  const next = tb.draftMasks[level];
  const prev = level === 0 ? next : tb.draftMasks[level - 1];
  rec.dispatch(
    kern,
    [ids, vals, tb.d2t, tb.state, tb.frontierTokens, tb.outIds, prev, next],
    [k, level, tb.draftVocab, C, tb.layout.size],
    [P],
  );
}

/**
 * Record the final re-rank and assembly of all P trees: top-(N−1) candidates in candidate order, root
 * token `root.meta[root.index + p]` (u32) prepended for tree p; writes `tb.tokens`, `tb.parents`,
 * `tb.depths`, `tb.treeMask`, `tb.retrieve`, `tb.info` and the node sections of `tb.state`. One
 * dispatch (one workgroup per tree); call after `treeLevel` of levels 0..depth. Throws
 * {@link ShapeError} on a bad root tensor or index.
 */
export function treeFinalize(rec: Recorder, tb: TreeBuffers, root: DynamicValue): void {
  root.meta.expectShape([-1], "u32");
  const P = tb.trees;
  if (!Number.isInteger(root.index) || root.index < 0 || root.index + P > root.meta.size) {
    throw new ShapeError(
      `treeFinalize: root index ${root.index}` + (P > 1 ? ` + ${P} trees` : "") +
        ` outside ${root.meta.name} [${root.meta.shape}]`,
    );
  }
  const { topK: k, candidates: C, totalTokens: N, pathWidth: W } = tb.config;
  const kern = memoKernel(rec, "tree_finalize", () => ({
    name: "tree_finalize",
    code: TREE_WGSL,
    entryPoint: "tree_finalize",
    storage: ["rw", "rw", "rw", "rw", "rw", "rw", "rw", "rw"],
    params: "uuuuuu",
  }));
  rec.dispatch(
    kern,
    [tb.state, root.meta, tb.tokens, tb.parents, tb.depths, tb.treeMask, tb.retrieve, tb.info],
    [k, C, N, W, root.index, tb.layout.size],
    [P],
  );
}

/**
 * Row gather with GPU indices: dst[r, :] = src[idx[idxOffset + r], :] for r < rows (NaN rows where the
 * index ≥ src rows). `src` (S, H) f32, `idx` (≥ idxOffset + rows) u32, `dst` (rows, H) f32, not
 * overlapping `src`. `idxOffset` lets the index live inside a larger state tensor (bindings must be
 * 256-byte aligned, so a one-word view would not do). One dispatch. Used for the next draft step's
 * `input_hidden = out_hidden[outIds]` and the speculative decoder's last-pair row.
 */
export function gatherRows(rec: Recorder, dst: Tensor, src: Tensor, idx: Tensor, idxOffset = 0): void {
  if (src.shape.length !== 2) {
    throw new ShapeError(`gatherRows: ${src.name} must be 2-D (S, H), got [${src.shape}]`);
  }
  const [S, H] = src.shape;
  src.expectShape([S, H], "f32"); // (S, H)
  if (dst.shape.length !== 2) {
    throw new ShapeError(`gatherRows: ${dst.name} must be 2-D (rows, H), got [${dst.shape}]`);
  }
  const rows = dst.shape[0];
  dst.expectShape([rows, H], "f32"); // (rows, H)
  idx.expectShape(idx.shape, "u32");
  if (!Number.isInteger(idxOffset) || idxOffset < 0 || idx.size < idxOffset + rows) {
    throw new ShapeError(`gatherRows: ${idx.name} has ${idx.size} entries, needs ${idxOffset} + ${rows}`);
  }
  if (
    dst.buffer === src.buffer && dst.offset < src.offset + src.byteLength &&
    src.offset < dst.offset + dst.byteLength
  ) {
    throw new ShapeError(`gatherRows: ${dst.name} overlaps ${src.name}`);
  }
  if (rows === 0 || H === 0) return;
  const kern = memoKernel(rec, "gather_rows", () => ({
    name: "gather_rows",
    code: TREE_WGSL,
    entryPoint: "gather_rows",
    storage: ["rw", "rw", "rw"],
    params: "uuuu",
  }));
  rec.dispatch(kern, [src, idx, dst], [rows, H, S, idxOffset], grid1d(rows * H));
}

/** A tree read back from {@link TreeBuffers} (tests and diagnostics), in {@link DraftTree}'s layout. */
export interface GpuDraftTree {
  /** (N) target ids, root first. */
  tokens: Int32Array;
  /** (N) parent node, −1 root. */
  parents: Int32Array;
  /** (N) depths. */
  depth: Int32Array;
  /** (N, ceil(N/32)) bitset as stored. */
  maskBits: Uint32Array;
  /** (numLeaves, maxDepth + 1) paths (trimmed from the GPU's (N − 1, pathWidth)). */
  retrieve: Int32Array;
  /** The full GPU retrieve tensor (N − 1, pathWidth). */
  retrieveFull: Int32Array;
  /** Leaves. */
  numLeaves: number;
  /** Largest depth. */
  maxDepth: number;
  /** (N) candidate of each node, −1 root. */
  nodeCandidates: Int32Array;
  /** (N) node scores. */
  nodeScores: Float32Array;
  /** The candidate arrays. */
  candidates: TreeCandidates;
}

/**
 * Read tree `tree` (default 0) back (submits; waits ≥10 ms in Deno — tests and diagnostics only, never
 * in a decode loop).
 */
export async function readTree(rec: Recorder, tb: TreeBuffers, tree = 0): Promise<GpuDraftTree> {
  if (!Number.isInteger(tree) || tree < 0 || tree >= tb.trees) {
    throw new ShapeError(`readTree: tree ${tree} outside [0, ${tb.trees})`);
  }
  const L = tb.layout, C = tb.config.candidates, N = tb.config.totalTokens, W = tb.config.pathWidth;
  const per = [L.size, N, N, N, N * Math.ceil(N / 32), (N - 1) * W, 4];
  const reads = [tb.state, tb.tokens, tb.parents, tb.depths, tb.treeMask, tb.retrieve, tb.info].map((t) =>
    rec.readback(t)
  );
  rec.submit();
  const [st, tokens, parents, depth, maskBits, retrieveFull, info] = (await Promise.all(reads)).map((b, j) =>
    b.slice(tree * per[j] * 4, (tree + 1) * per[j] * 4)
  );
  rec.checkErrors();
  const f = new Float32Array(st), i = new Int32Array(st);
  const inf = new Uint32Array(info);
  const numLeaves = inf[0], maxDepth = inf[1];
  const full = new Int32Array(retrieveFull);
  const retrieve = new Int32Array(numLeaves * (maxDepth + 1));
  for (let r = 0; r < numLeaves; r++) {
    for (let j = 0; j <= maxDepth; j++) retrieve[r * (maxDepth + 1) + j] = j < W ? full[r * W + j] : -1;
  }
  return {
    tokens: new Int32Array(tokens),
    parents: new Int32Array(parents),
    depth: new Int32Array(depth),
    maskBits: new Uint32Array(maskBits),
    retrieve,
    retrieveFull: full,
    numLeaves,
    maxDepth,
    nodeCandidates: i.slice(L.nodeCand, L.nodeCand + N),
    nodeScores: f.slice(L.nodeScore, L.nodeScore + N),
    candidates: {
      scores: f.slice(L.candScore, L.candScore + C),
      tokens: i.slice(L.candToken, L.candToken + C),
      parents: i.slice(L.candParent, L.candParent + C),
    },
  };
}
