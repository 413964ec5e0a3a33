/**
 * Tree verification as one public function, {@link verifyTree}: one target forward over the N nodes
 * of a draft tree on top of a KV cache (node i's keys at row committed + i, position committed +
 * depth[i], tree attention = every cached row plus the node's ancestors), with the hidden states the
 * draft consumes tapped out and, for T=0 acceptance, the target's argmax after every node. The
 * speculative decoder calls it every cycle; GPU training calls it to score a tree at a prefix.
 *
 * Batch dimension: P trees per call is the design (P·N rows with per-tree prefixes, `tb.trees`);
 * this function verifies one tree (P = 1) today.
 * @module
 */
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { HiddenCapture, LlamaModel } from "../model/llama.ts";
import type { KvCache } from "../model/kv_cache.ts";
import type { DynamicValue } from "../ops/attention.ts";
import { argmax } from "../ops/select.ts";
import { ShapeError } from "../errors.ts";
import type { TreeBuffers } from "../tree/tree_ops.ts";

/**
 * Captures of the hidden states entering `layers` (the EAGLE-3 feature taps) for T rows into `dst`
 * (≥ rowOffset + T, layers.length·H) f32 at rows rowOffset.., column block j·H for layer j.
 */
export function featureTaps(
  layers: readonly number[],
  hiddenSize: number,
  dst: Tensor,
  rowOffset = 0,
): HiddenCapture[] {
  if (dst.shape.length !== 2 || dst.shape[1] !== layers.length * hiddenSize) {
    throw new ShapeError(
      `featureTaps: ${dst.name} [${dst.shape}] must be (rows, ${layers.length}·${hiddenSize})`,
    );
  }
  const F = dst.shape[1];
  return layers.map((layer, j) => ({ layer, dst, offset: rowOffset * F + j * hiddenSize, stride: F }));
}

/** Inputs and outputs of {@link verifyTree}. */
export interface VerifyTreeArgs {
  /** The target's KV cache; the N node rows are written at committed.. (the caller compacts later). */
  kv: KvCache;
  /** Rows already in the cache (the committed length), a GPU u32; committed + N ≤ kv.capacity. */
  committed: DynamicValue;
  /**
   * Hidden-state taps: the states entering each of `layers` go to `dst` (≥ N, layers.length·H) f32
   * (for EAGLE-3, the draft's `auxLayerIds`).
   */
  features?: { layers: readonly number[]; dst: Tensor };
  /** When given, (N) u32 out: the target's argmax after each node (input of `greedyPath`). */
  argmax?: Tensor;
}

/**
 * Record the verification forward of the tree in `tb` (see the module doc). Returns the target's
 * logits after each node, a (N, V) f32 view of the model's workspace (valid until its next forward).
 */
export function verifyTree(rec: Recorder, target: LlamaModel, tb: TreeBuffers, args: VerifyTreeArgs): Tensor {
  const N = tb.config.totalTokens;
  if (tb.trees !== 1) {
    throw new ShapeError(`verifyTree: ${tb.trees} trees; batched verification is not implemented (P = 1)`);
  }
  if (N > target.maxBatch) {
    throw new ShapeError(`verifyTree: tree of ${N} tokens exceeds the target's maxBatch ${target.maxBatch}`);
  }
  const f = args.features;
  const logits = target.forward(rec, args.kv, tb.tokens, 0, N, 0, {
    logits: "all",
    positions: tb.depths,
    treeMask: tb.treeMask,
    dynamic: args.committed,
    capture: f ? featureTaps(f.layers, target.config.hiddenSize, f.dst) : undefined,
  })!; // (N, V)
  if (args.argmax) {
    args.argmax.expectShape([N], "u32");
    argmax(rec, args.argmax, logits);
  }
  return logits;
}
