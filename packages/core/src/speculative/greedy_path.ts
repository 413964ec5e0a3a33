/**
 * T=0 tree acceptance as a pure GPU function (kernels/greedy_path.wgsl): given P verified trees —
 * tree tokens, the target's argmax after each node and the root→leaf paths — find each tree's longest
 * path the target agrees with, and its bonus token. It reads no decoder state and writes no token
 * ring, so the speculative decoder (followed by its `commitPath`) and GPU training ("the path the
 * decoder would accept at this prefix") share it. CPU reference: `acceptGreedyRef` (accept_ref.ts).
 * @module
 */
import { GREEDY_PATH_WGSL } from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { DynamicValue } from "../ops/attention.ts";
import { memoKernel } from "../ops/kernel_memo.ts";
import { ShapeError } from "../errors.ts";

/** Largest tree (nodes) and path count {@link greedyPath} supports: one 64-thread workgroup per tree. */
export const GREEDY_PATH_MAX_NODES = 64;

/** Inputs and outputs of {@link greedyPath} for P trees of N nodes (P = 1 today in the decoder). */
export interface GreedyPathBuffers {
  /** (P·N) u32: the target's argmax after each node. */
  argmax: Tensor;
  /** (P·N) u32: tree tokens, root first per tree. */
  tokens: Tensor;
  /** (P·leavesMax, DP) i32: root→leaf node indices per tree, −1 padded (`TreeBuffers.retrieve`). */
  paths: Tensor;
  /**
   * Leaf count of tree p at `meta[index + p·stride]` (u32); `stride` defaults to 0 (P = 1). For a
   * `TreeBuffers` of P trees: `{ meta: tb.info, index: 0, stride: 4 }`.
   */
  leafCount: DynamicValue & { stride?: number };
  /** (P, DP) u32 out: accepted node indices, root first, padded by repeating the last one. */
  path: Tensor;
  /** (P, 2) u32 out: [accepted drafts L (bonus excluded), bonus token]. */
  result: Tensor;
}

/**
 * Record T=0 acceptance of P verified trees (one dispatch, one workgroup per tree). Throws
 * {@link ShapeError} on inconsistent shapes or a tree larger than {@link GREEDY_PATH_MAX_NODES}.
 */
export function greedyPath(rec: Recorder, b: GreedyPathBuffers): void {
  if (b.path.shape.length !== 2) {
    throw new ShapeError(`${b.path.name}: expected (P, DP), got [${b.path.shape}]`);
  }
  const [P, dp] = b.path.shape;
  b.path.expectShape([P, dp], "u32"); // (P, DP)
  b.result.expectShape([P, 2], "u32"); // (P, 2)
  if (b.tokens.size % P !== 0) {
    throw new ShapeError(`greedyPath: ${b.tokens.name} has ${b.tokens.size} entries, not P=${P} trees`);
  }
  const N = b.tokens.size / P;
  b.tokens.expectShape(b.tokens.shape, "u32");
  if (b.argmax.size !== P * N) {
    throw new ShapeError(
      `greedyPath: ${b.argmax.name} has ${b.argmax.size} entries, expected P·N = ${P * N}`,
    );
  }
  b.argmax.expectShape(b.argmax.shape, "u32");
  if (b.paths.shape.length !== 2 || b.paths.shape[1] !== dp || b.paths.shape[0] % P !== 0) {
    throw new ShapeError(`greedyPath: ${b.paths.name} [${b.paths.shape}] must be (P·leaves, ${dp})`);
  }
  b.paths.expectShape(b.paths.shape, "i32");
  const leavesMax = b.paths.shape[0] / P;
  if (N > GREEDY_PATH_MAX_NODES || leavesMax > GREEDY_PATH_MAX_NODES) {
    throw new ShapeError(
      `greedyPath: ${N} nodes / ${leavesMax} paths per tree; at most ${GREEDY_PATH_MAX_NODES} supported`,
    );
  }
  const lc = b.leafCount, stride = lc.stride ?? 0;
  lc.meta.expectShape(lc.meta.shape, "u32");
  if (!Number.isInteger(lc.index) || lc.index < 0 || lc.index + (P - 1) * stride >= lc.meta.size) {
    throw new ShapeError(`greedyPath: leaf counts at ${lc.index} + p·${stride} outside ${lc.meta.name}`);
  }
  const k = memoKernel(rec, "greedy_path", () => ({
    name: "greedy_path",
    code: GREEDY_PATH_WGSL,
    entryPoint: "greedy_path",
    storage: ["rw", "rw", "rw", "rw", "rw", "rw"],
    params: "uuuuu",
  }));
  rec.dispatch(
    k,
    [b.argmax, b.tokens, b.paths, lc.meta, b.path, b.result],
    [N, dp, leavesMax, lc.index, stride],
    [P],
  );
}
