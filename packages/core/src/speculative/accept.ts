/**
 * GPU ops of a speculative cycle's bookkeeping (kernels/accept.wgsl): T=0 acceptance, which also
 * writes the new tokens into the token ring and advances the state, and KV compaction, which moves
 * the accepted path's target KV rows into place. Both read everything from GPU buffers.
 * @module
 */
import { ACCEPT_WGSL } from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { STATE_WORDS } from "./state.ts";

/** Buffers {@link acceptGreedy} reads and writes. */
export interface AcceptBuffers {
  /** (N) u32 target argmax after each tree node. */
  argmax: Tensor;
  /** (N) u32 tree tokens, root first. */
  tokens: Tensor;
  /** (leavesMax, DP) i32 root→leaf paths, −1 padded. */
  paths: Tensor;
  /** (1) u32 number of valid paths. */
  leafCount: Tensor;
  /** (STATE_WORDS) u32 decoder state (see state.ts). */
  state: Tensor;
  /** u32 token ring. */
  ring: Tensor;
  /** (DP) u32 out: accepted node indices, padded with the last. */
  path: Tensor;
  /** (DP + 1) u32 out: root, accepted drafts, bonus; padded with the bonus. */
  seq: Tensor;
  /**
   * (2·DP + 1 + logCap) u32: accepted-length histogram (DP), accepted per depth (DP + 1), then the
   * accepted length of each of the first logCap cycles.
   */
  hist: Tensor;
  /** (≥ 1) u32 eos ids (first `numEos` used). */
  eos: Tensor;
}

function histLogCap(hist: Tensor, dp: number): number {
  hist.expectShape([-1], "u32");
  if (hist.size < 2 * dp + 1) {
    throw new ShapeError(`${hist.name}: needs ≥ ${2 * dp + 1} entries, has ${hist.size}`);
  }
  return hist.size - (2 * dp + 1);
}

/** Record T=0 acceptance of one verified tree (no-op on the GPU once `done` is set). */
export function acceptGreedy(rec: Recorder, b: AcceptBuffers, numEos: number): void {
  const N = b.tokens.size;
  if (N > 64) throw new ShapeError(`acceptGreedy: ${N} tree nodes; at most 64 supported`);
  b.argmax.expectShape([N], "u32");
  if (b.paths.shape.length !== 2) throw new ShapeError(`${b.paths.name}: expected (leaves, DP)`);
  const [leavesMax, dp] = b.paths.shape;
  b.paths.expectShape([leavesMax, dp], "i32");
  if (leavesMax > 64) throw new ShapeError(`acceptGreedy: ${leavesMax} paths; at most 64 supported`);
  b.leafCount.expectShape([1], "u32");
  b.state.expectShape([STATE_WORDS], "u32");
  b.path.expectShape([dp], "u32");
  b.seq.expectShape([dp + 1], "u32");
  const logCap = histLogCap(b.hist, dp);
  if (numEos > b.eos.size) {
    throw new ShapeError(`acceptGreedy: ${numEos} eos ids but ${b.eos.name} holds ${b.eos.size}`);
  }
  const k = rec.kernels.get({
    name: "accept_greedy",
    code: ACCEPT_WGSL,
    entryPoint: "accept_greedy",
    storage: ["rw", "rw", "rw", "rw", "rw", "rw", "rw", "rw", "rw", "rw"],
    params: "uuuuuuu",
  });
  rec.dispatch(
    k,
    [b.argmax, b.tokens, b.paths, b.leafCount, b.state, b.ring, b.path, b.seq, b.hist, b.eos],
    [N, dp, leavesMax, numEos, 0, 0, logCap],
    [1],
  );
}

/** Buffers {@link acceptSample} reads and writes (the outputs as in {@link AcceptBuffers}). */
export interface SampleAcceptBuffers extends Omit<AcceptBuffers, "argmax" | "paths" | "leafCount"> {
  /** (N, V) f32 filtered target distribution after each tree node (see `filteredProbs`). */
  probs: Tensor;
  /** (N) i32 parent of each node, −1 for the root; parents precede children. */
  parents: Tensor;
}

/**
 * Record T>0 acceptance (recursive rejection sampling over the tree, lossless) of one verified
 * tree; `dp` bounds the accepted path length + 1. One 256-thread workgroup: one thread walks the
 * tree, all draw the residual/bonus token by a chunked inverse CDF (cost ~V/256 per thread). The
 * rejected children's entries of `probs` are zeroed (it is per-cycle scratch). No-op on the GPU once
 * `done` is set.
 */
export function acceptSample(
  rec: Recorder,
  b: SampleAcceptBuffers,
  dp: number,
  numEos: number,
  seed: number,
): void {
  const N = b.tokens.size;
  if (N > 64) throw new ShapeError(`acceptSample: ${N} tree nodes; at most 64 supported`);
  if (b.probs.shape.length !== 2 || b.probs.shape[0] !== N) {
    throw new ShapeError(`${b.probs.name}: expected (${N}, V), got [${b.probs.shape}]`);
  }
  const V = b.probs.shape[1];
  b.probs.expectShape([N, V], "f32");
  b.parents.expectShape([N], "i32");
  b.state.expectShape([STATE_WORDS], "u32");
  b.path.expectShape([dp], "u32");
  b.seq.expectShape([dp + 1], "u32");
  const logCap = histLogCap(b.hist, dp);
  if (numEos > b.eos.size) {
    throw new ShapeError(`acceptSample: ${numEos} eos ids but ${b.eos.name} holds ${b.eos.size}`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new ShapeError(`acceptSample: seed must be a u32`);
  }
  const k = rec.kernels.get({
    name: "accept_sample",
    code: ACCEPT_WGSL,
    entryPoint: "accept_sample",
    storage: ["rw", "rw", "rw", "unused", "rw", "rw", "rw", "rw", "rw", "rw"],
    params: "uuuuuuu",
  });
  // Same slots as accept_greedy with `am`→probs and `paths`→parents; slot 3 (n_leaves) is not used
  // by this entry point and left out of its layout (a placeholder would alias a writable binding).
  rec.dispatch(
    k,
    [b.probs, b.tokens, b.parents, null, b.state, b.ring, b.path, b.seq, b.hist, b.eos],
    [N, dp, 0, numEos, V, seed, logCap],
    [1],
  );
}

/** Record the KV compaction of one layer after {@link acceptGreedy}. */
export function kvCompact(rec: Recorder, kCache: Tensor, vCache: Tensor, state: Tensor, path: Tensor): void {
  kCache.expectShape([-1, -1], "f32");
  vCache.expectShape(kCache.shape, "f32");
  state.expectShape([STATE_WORDS], "u32");
  const k = rec.kernels.get({
    name: "kv_compact",
    code: ACCEPT_WGSL,
    entryPoint: "kv_compact",
    storage: ["rw", "rw", "rw", "rw"],
    params: "uu",
  });
  rec.dispatch(k, [kCache, vCache, state, path], [kCache.shape[1], path.size], [1]);
}
