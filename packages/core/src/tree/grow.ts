/**
 * Draft-tree growth as one public function, {@link growDraftTree}: from the draft's output at the last
 * prefix pair, D draft expansions of the k frontier nodes (prefix + tree attention over a draft KV
 * cache) and the final re-rank, all recorded with no CPU readback. The speculative decoder calls it
 * every cycle; GPU training calls it to build "the tree the decoder would build" at a prefix.
 *
 * ```
 * treeLevel(tb, lastLogits, 0, fromLogits)          (fused log-softmax + top-k per row)
 * for e in 0..D−1:
 *   draft forward on tb.frontierTokens, hidden rows prevOut[tb.outIds] (prevOut = lastHidden at e = 0;
 *     the row pick is fused into the draft's input dispatch): KV rows prefix + k·e .., every frontier node at position
 *     prefix + e (EAGLE's `len_posi + position_ids`, position_ids = zeros(k)), attention over the
 *     prefix + the k·(e+1) expanded rows (mask tb.draftMasks[e])
 *   treeLevel(tb, logits, e + 1, fromLogits)
 * treeFinalize(tb, root)
 * ```
 * Batch dimension: the inputs carry a leading P (trees per call, `tb.trees`). The tree kernels take
 * P trees; the draft forward over P·k frontier rows needs per-tree prefixes in the draft cache (GTO
 * Phase II's batched expansion), so P = 1 is what this function accepts today.
 * @module
 */
import type { Recorder } from "../gpu/recorder.ts";
import { type BufferArena, writeTensor } from "../gpu/arena.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { Eagle3Draft } from "../model/eagle3.ts";
import type { KvCache } from "../model/kv_cache.ts";
import type { DynamicValue } from "../ops/attention.ts";
import { ShapeError } from "../errors.ts";
import type { ResolvedTreeConfig } from "./config.ts";
import { type TreeBuffers, treeFinalize, treeLevel } from "./tree_ops.ts";

/**
 * Scratch of {@link growDraftTree} (P trees; see {@link allocGrowScratch}). No log-prob rows: each
 * level selects straight from the draft logits (`treeLevel` with `fromLogits`), and no hidden rows:
 * the draft picks the frontier's rows itself (`hiddenRows`).
 */
export interface GrowScratch {
  /** positions[e]: (P·k) u32, all e: the frontier's position offsets at expansion e (e = 0..D−1). */
  positions: readonly Tensor[];
}

/** Inputs of {@link growDraftTree}. */
export interface GrowDraftTreeArgs {
  /** The draft KV cache: prefix rows are attended, the k·D expansion rows are written after them. */
  kv: KvCache;
  /** (P, H) f32: the draft's output hidden (pre-norm) at each tree's last prefix pair. */
  lastHidden: Tensor;
  /** (P, Vd) f32: the draft's logits at that row. */
  lastLogits: Tensor;
  /**
   * Prefix rows in the draft cache, a GPU u32 (e.g. the decoder's `draftLen` state word): expansion e
   * writes rows prefix + k·e .. prefix + k·(e+1) − 1 at position prefix + e. The caller keeps
   * prefix + k·D ≤ kv.capacity.
   */
  prefix: DynamicValue;
  /** Root token (the last committed token) of the tree, a GPU u32. */
  root: DynamicValue;
  /** Scratch buffers. */
  scratch: GrowScratch;
}

/** Bytes {@link allocGrowScratch} takes from an arena for `P` trees (alignment included). */
export function growScratchBytes(_draft: Eagle3Draft, tree: ResolvedTreeConfig, P = 1): number {
  return tree.depth * (4 * P * tree.topK + 256);
}

/** Allocate {@link GrowScratch} for `P` trees from `arena` (once, at setup; writes the positions). */
export function allocGrowScratch(
  arena: BufferArena,
  draft: Eagle3Draft,
  tree: ResolvedTreeConfig,
  P = 1,
): GrowScratch {
  const k = tree.topK;
  const positions = Array.from({ length: tree.depth }, (_, e) => {
    const t = arena.alloc([P * k], "u32", `grow.positions${e}`);
    writeTensor(draft.gpu, t, new Uint32Array(P * k).fill(e));
    return t;
  });
  return { positions };
}

/**
 * Record the growth of the draft tree `tb` (1 + D levels, the draft forwards and the final
 * re-rank): afterwards `tb.tokens`, `tb.parents`, `tb.depths`, `tb.treeMask`, `tb.retrieve` and
 * `tb.info` hold the tree. Dispatches: 2 (level 0), D × (draft forward + 2), + 1; each
 * level's selection is the fused `topkLogSoftmax` (one pass over each logit row, bit for bit the
 * trees of `logSoftmax` → `topk`). Throws {@link ShapeError} on inconsistent shapes.
 */
export function growDraftTree(
  rec: Recorder,
  draft: Eagle3Draft,
  tb: TreeBuffers,
  args: GrowDraftTreeArgs,
): void {
  const { topK: k, depth: D } = tb.config;
  const { hiddenSize: H, draftVocabSize: Vd } = draft.config;
  if (args.lastHidden.shape.length !== 2) {
    throw new ShapeError(
      `growDraftTree: ${args.lastHidden.name} must be (P, H), got [${args.lastHidden.shape}]`,
    );
  }
  const P = args.lastHidden.shape[0];
  if (P !== tb.trees) {
    throw new ShapeError(`growDraftTree: ${args.lastHidden.name} has ${P} rows for ${tb.trees} trees`);
  }
  if (P !== 1) throw new ShapeError(`growDraftTree: P=${P} trees; batched growth is not implemented (P = 1)`);
  args.lastHidden.expectShape([P, H], "f32"); // (P, H)
  args.lastLogits.expectShape([P, Vd], "f32"); // (P, Vd)
  if (tb.draftVocab !== Vd) {
    throw new ShapeError(`growDraftTree: tree buffers for Vd=${tb.draftVocab}, draft has ${Vd}`);
  }
  const s = args.scratch;
  if (s.positions.length !== D) {
    throw new ShapeError(`growDraftTree: ${s.positions.length} position rows for depth ${D}`);
  }
  for (const t of s.positions) t.expectShape([P * k], "u32");
  if (k > draft.maxBatch) {
    throw new ShapeError(`growDraftTree: draft maxBatch ${draft.maxBatch} is below topK ${k}`);
  }
  treeLevel(rec, tb, args.lastLogits, 0, { fromLogits: true });
  let prevOut = args.lastHidden; // (1, H) at e = 0 (outIds are all 0), then the last expansion's (k, H)
  for (let e = 0; e < D; e++) {
    const r = draft.forward(rec, {
      kv: args.kv,
      hidden: prevOut,
      hiddenRows: tb.outIds,
      ids: tb.frontierTokens,
      T: k,
      cacheRow: k * e,
      dynamicRow: args.prefix,
      positions: s.positions[e], // all e (+ prefix): every frontier node at position prefix + e
      dynamicPos: args.prefix,
      kvLen: k * (e + 1),
      dynamicLen: args.prefix,
      treeMask: { mask: tb.draftMasks[e], treeLen: k * (e + 1) },
      logits: "all",
    });
    treeLevel(rec, tb, r.logits!, e + 1, { fromLogits: true });
    prevOut = r.out;
  }
  treeFinalize(rec, tb, args.root);
}
