/**
 * GPU ops of a speculative cycle's bookkeeping (kernels/accept.wgsl): the commit of an accepted path
 * (`commitPath`, after the pure T=0 `greedyPath` of greedy_path.ts: new tokens into the token ring,
 * histograms, state advanced), T>0 acceptance with its commit (`acceptSample`), and KV compaction,
 * which moves the accepted path's target KV rows into place. All read everything from GPU buffers.
 * @module
 */
import { ACCEPT_WGSL } from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { STATE_WORDS } from "./state.ts";

/** The decode loop's buffers an acceptance commit reads and writes. */
export interface AcceptBuffers {
  /** (N) u32 tree tokens, root first. */
  tokens: Tensor;
  /** (STATE_WORDS) u32 decoder state (see state.ts). */
  state: Tensor;
  /** u32 token ring. */
  ring: Tensor;
  /** (DP) u32: accepted node indices, padded with the last (input of commitPath, output of acceptSample). */
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

/** Buffers of {@link commitPath}: the loop's, plus `greedyPath`'s result. */
export interface CommitBuffers extends AcceptBuffers {
  /** (1, 2) or (2) u32: [accepted drafts L, bonus token] (`greedyPath`'s `result` for one tree). */
  result: Tensor;
}

function histLogCap(hist: Tensor, dp: number): number {
  hist.expectShape([-1], "u32");
  if (hist.size < 2 * dp + 1) {
    throw new ShapeError(`${hist.name}: needs ≥ ${2 * dp + 1} entries, has ${hist.size}`);
  }
  return hist.size - (2 * dp + 1);
}

/**
 * Record the decode loop's commit of an accepted path (`b.path`, `b.result` from `greedyPath`): the
 * new tokens go into the ring (cut at eos / max tokens, which set `done`), `seq`, the histograms and
 * the state advance. One single-thread dispatch; a no-op on the GPU once `done` is set.
 */
export function commitPath(rec: Recorder, b: CommitBuffers, numEos: number): void {
  const N = b.tokens.size;
  b.tokens.expectShape(b.tokens.shape, "u32");
  if (b.path.shape.length !== 1) throw new ShapeError(`${b.path.name}: expected (DP), got [${b.path.shape}]`);
  const dp = b.path.shape[0];
  b.path.expectShape([dp], "u32");
  if (b.result.size !== 2) throw new ShapeError(`${b.result.name}: expected 2 entries [L, bonus]`);
  b.result.expectShape(b.result.shape, "u32");
  b.state.expectShape([STATE_WORDS], "u32");
  b.seq.expectShape([dp + 1], "u32");
  const logCap = histLogCap(b.hist, dp);
  if (numEos > b.eos.size) {
    throw new ShapeError(`commitPath: ${numEos} eos ids but ${b.eos.name} holds ${b.eos.size}`);
  }
  const k = rec.kernels.get({
    name: "commit_path",
    code: ACCEPT_WGSL,
    entryPoint: "commit_path",
    storage: ["rw", "rw", "unused", "unused", "rw", "rw", "rw", "rw", "rw", "rw"],
    params: "uuuuuuu",
  });
  // Slots 2 and 3 (accept_sample's parents / nothing) are not used by commit_path and left out of its
  // layout (binding `tokens` there again would alias a writable binding, which WebGPU/Dawn reject).
  rec.dispatch(
    k,
    [b.result, b.tokens, null, null, b.state, b.ring, b.path, b.seq, b.hist, b.eos],
    [N, dp, 0, numEos, 0, 0, logCap],
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
  // Same slots as commit_path with its result → probs and slot 2 → parents; slot 3 is not used by
  // this entry point and left out of its layout (a placeholder would alias a writable binding).
  rec.dispatch(
    k,
    [b.probs, b.tokens, b.parents, null, b.state, b.ring, b.path, b.seq, b.hist, b.eos],
    [N, dp, 0, numEos, V, seed, logCap],
    [1],
  );
}

/** Record the KV compaction of one layer after {@link commitPath} / {@link acceptSample}. */
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
