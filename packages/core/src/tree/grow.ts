/**
 * Draft-tree growth as one public function, {@link growDraftTree}: from the draft's output at the last
 * prefix pair, D draft expansions of the k frontier nodes (prefix + tree attention over a draft KV
 * cache) and the final re-rank, all recorded with no CPU readback. The speculative decoder calls it
 * every cycle; GPU training calls it to build "the tree the decoder would build" at a prefix.
 *
 * ```
 * lp0 = logSoftmax(lastLogits);  treeLevel(tb, lp0, 0)
 * for e in 0..D−1:
 *   hidden = prevOut[tb.outIds]                        (prevOut = lastHidden at e = 0)
 *   draft forward on tb.frontierTokens: KV rows prefix + k·e .., position prefix + e,
 *     attention over the prefix + the k·(e+1) expanded rows (mask tb.draftMasks[e])
 *   lp = logSoftmax(logits);  treeLevel(tb, lp, e + 1)
 * treeFinalize(tb, root)
 * ```
 * Batch dimension: the inputs carry a leading P (trees per call, `tb.trees`). The tree kernels take
 * P trees; the draft forward over P·k frontier rows needs per-tree prefixes in the draft cache (GTO
 * Phase II's batched expansion), so P = 1 is what this function accepts today.
 * @module
 */
import type { Recorder } from "../gpu/recorder.ts";
import type { BufferArena } from "../gpu/arena.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { Eagle3Draft } from "../model/eagle3.ts";
import type { KvCache } from "../model/kv_cache.ts";
import type { DynamicValue } from "../ops/attention.ts";
import { logSoftmax } from "../ops/softmax.ts";
import { ShapeError } from "../errors.ts";
import type { ResolvedTreeConfig } from "./config.ts";
import { gatherRows, type TreeBuffers, treeFinalize, treeLevel } from "./tree_ops.ts";

/** Scratch of {@link growDraftTree} (P trees; see {@link allocGrowScratch}). */
export interface GrowScratch {
  /** (P, Vd) f32: log-probs of each tree's last prefix pair. */
  lp0: Tensor;
  /** (P·k, H) f32: hidden input of the frontier rows. */
  hidden: Tensor;
  /** (P·k, Vd) f32: log-probs of the frontier rows. */
  lp: Tensor;
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
export function growScratchBytes(draft: Eagle3Draft, tree: ResolvedTreeConfig, P = 1): number {
  const { hiddenSize: H, draftVocabSize: Vd } = draft.config;
  return 4 * P * (Vd + tree.topK * (H + Vd)) + 3 * 256;
}

/** Allocate {@link GrowScratch} for `P` trees from `arena` (once, at setup). */
export function allocGrowScratch(
  arena: BufferArena,
  draft: Eagle3Draft,
  tree: ResolvedTreeConfig,
  P = 1,
): GrowScratch {
  const { hiddenSize: H, draftVocabSize: Vd } = draft.config;
  const k = tree.topK;
  return {
    lp0: arena.alloc([P, Vd], "f32", "grow.lp0"),
    hidden: arena.alloc([P * k, H], "f32", "grow.hidden"),
    lp: arena.alloc([P * k, Vd], "f32", "grow.lp"),
  };
}

/**
 * Record the growth of the draft tree `tb` (1 + D levels, the draft forwards and the final
 * re-rank): afterwards `tb.tokens`, `tb.parents`, `tb.depths`, `tb.treeMask`, `tb.retrieve` and
 * `tb.info` hold the tree. Dispatches: 1 + 2 (level 0), D × (gather + draft forward + logSoftmax +
 * 2), + 1. Throws {@link ShapeError} on inconsistent shapes.
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
  s.lp0.expectShape([P, Vd], "f32");
  s.hidden.expectShape([P * k, H], "f32");
  s.lp.expectShape([P * k, Vd], "f32");
  if (k > draft.maxBatch) {
    throw new ShapeError(`growDraftTree: draft maxBatch ${draft.maxBatch} is below topK ${k}`);
  }
  logSoftmax(rec, s.lp0, args.lastLogits);
  treeLevel(rec, tb, s.lp0, 0);
  let prevOut = args.lastHidden; // (1, H) at e = 0 (outIds are all 0), then the last expansion's (k, H)
  for (let e = 0; e < D; e++) {
    gatherRows(rec, s.hidden, prevOut, tb.outIds);
    const r = draft.forward(rec, {
      kv: args.kv,
      hidden: s.hidden,
      ids: tb.frontierTokens,
      T: k,
      cacheRow: k * e,
      dynamicRow: args.prefix,
      pos0: e,
      dynamicPos: args.prefix,
      kvLen: k * (e + 1),
      dynamicLen: args.prefix,
      treeMask: { mask: tb.draftMasks[e], treeLen: k * (e + 1) },
      logits: "all",
    });
    logSoftmax(rec, s.lp, r.logits!);
    treeLevel(rec, tb, s.lp, e + 1);
    prevOut = r.out;
  }
  treeFinalize(rec, tb, args.root);
}
