/**
 * Token selection on the GPU — greedy argmax, top-k and stochastic sampling — so that decode loops
 * keep logits and token ids on the device and write each step's token straight into a GPU token
 * ring (`outOffset`). Each op is one dispatch of an entry point of `kernels/select.wgsl`, one
 * 256-thread workgroup per row; the kernel header documents the algorithms (radix bisection for the
 * top-k / top-p thresholds, chunked prefix-sum inverse CDF) and the exact tie semantics.
 * @module
 */
import { SELECT_WGSL } from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { memoKernel, rowGrid, rowsCols } from "./kernel_memo.ts";

/** Largest k {@link topk} accepts (it makes k passes over each row). */
export const TOPK_MAX = 64;

function checkOut(op: string, out: Tensor, outOffset: number, M: number): void {
  out.expectShape(out.shape, "u32");
  if (!Number.isInteger(outOffset) || outOffset < 0) {
    throw new ShapeError(`${op}: outOffset must be an integer ≥ 0, got ${outOffset}`);
  }
  if (outOffset + M > out.size) {
    throw new ShapeError(
      `${op}: ${out.name} has ${out.size} elements, needs outOffset + M = ${outOffset + M}`,
    );
  }
}

/** Options for {@link argmax}. */
export interface ArgmaxOptions {
  /** Element of `out` that receives row 0's id (default 0). */
  outOffset?: number;
  /**
   * `workgroup`: 256 threads per row (hardware default); `lanes`: 8 threads per row reading vec4s
   * (software-adapter default when N % 4 == 0). Tests force either.
   */
  kernel?: "workgroup" | "lanes";
}

/**
 * Per-row argmax of x (M, N) f32 → ids u32 written at out[outOffset + m]; ties go to the lowest
 * index, NaNs are skipped (an all-NaN row writes 0xffffffff). `out` is a u32 tensor of any shape
 * with ≥ outOffset + M elements (e.g. a token ring). Throws {@link ShapeError} naming the tensor.
 */
export function argmax(rec: Recorder, out: Tensor, x: Tensor, opts: ArgmaxOptions = {}): void {
  const [M, N] = rowsCols(x, "argmax"); // x (M, N)
  x.expectShape(x.shape, "f32");
  const off = opts.outOffset ?? 0;
  checkOut("argmax", out, off, M);
  if (N === 0) throw new ShapeError(`argmax: ${x.name} has empty rows`);
  if (M === 0) return;
  // Software adapters: 8 threads per row instead of 256 (llvmpipe switches fibers per 8 threads at
  // every barrier; 60 × 8192: ~4 ms → ~0.3 ms, docs/engine.md §7). Needs N % 4 == 0 and a vec4-aligned
  // binding.
  const sw = opts.kernel === "lanes" ||
    (opts.kernel === undefined && rec.gpu.isFallback && N % 4 === 0 && x.offset % 16 === 0);
  if (sw && (N % 4 !== 0 || x.offset % 16 !== 0)) {
    throw new ShapeError(`argmax: the lanes kernel needs N % 4 == 0 and a 16-byte aligned ${x.name}`);
  }
  const k = memoKernel(rec, sw ? "argmax_sw" : "argmax", () => ({
    name: sw ? "argmax_sw" : "argmax",
    code: SELECT_WGSL,
    entryPoint: sw ? "argmax_sw" : "argmax",
    storage: ["rw", "rw"],
    params: "uuu",
  }));
  rec.dispatch(k, [x, out], [N, M, off], rowGrid(rec, M));
}

/**
 * Per-row top-k (1 ≤ k ≤ min(64, N)) of x (M, N) f32: ids (M, k) u32 and values (M, k) f32, sorted
 * descending, equal values ordered by lower index (as `topkRef`). NaNs are never selected; if a row
 * has fewer than k non-NaN values the remaining slots get id 0xffffffff and value NaN.
 * Throws {@link ShapeError} naming the tensor.
 */
export function topk(rec: Recorder, ids: Tensor, values: Tensor, x: Tensor, k: number): void {
  const [M, N] = rowsCols(x, "topk"); // x (M, N)
  x.expectShape(x.shape, "f32");
  if (!Number.isInteger(k) || k < 1 || k > TOPK_MAX || k > N) {
    throw new ShapeError(`topk: k must be an integer in [1, min(${TOPK_MAX}, N = ${N})], got ${k}`);
  }
  const lead = x.shape.slice(0, -1);
  ids.expectShape([...lead, k], "u32"); // (M, k)
  values.expectShape([...lead, k], "f32"); // (M, k)
  if (M === 0) return;
  const kern = memoKernel(rec, "topk", () => ({
    name: "topk",
    code: SELECT_WGSL,
    entryPoint: "topk",
    storage: ["rw", "rw", "rw"],
    params: "uuu",
  }));
  rec.dispatch(kern, [x, ids, values], [N, M, k], rowGrid(rec, M));
}

/** Options for {@link sample}. */
export interface SampleOptions {
  /** Temperature T > 0: the logits are divided by T. */
  temperature: number;
  /** Keep only the topK largest logits (all values tied with the topK-th are kept); 0 = off (default). */
  topK?: number;
  /** Nucleus: keep the smallest highest-probability set with mass ≥ topP (ties with its last member kept); 1 = off (default). */
  topP?: number;
  /** RNG seed (u32). */
  seed: number;
  /** Decode step (u32), incremented by the caller per step: the draw is a pure function of (seed, step, row). */
  step: number;
  /** Element of `out` that receives row 0's id (default 0). */
  outOffset?: number;
}

/**
 * Sample one token per row of logits (M, N) f32 on the GPU, exactly from softmax(x/T) restricted to
 * the top-k, then top-p, set (HF warper order; the top-p mass is measured on the top-k-renormalised
 * distribution), by inverse CDF in index order with u = {@link sampleUniform}(seed, step, row).
 * Writes ids u32 at out[outOffset + m]. Rows with equal logits draw independent u, so M copies of
 * one row give M independent samples. Throws {@link ShapeError} on bad shapes or options.
 */
export function sample(
  rec: Recorder,
  out: Tensor,
  logits: Tensor,
  opts: SampleOptions,
): void {
  const [M, N] = rowsCols(logits, "sample"); // logits (M, N)
  logits.expectShape(logits.shape, "f32");
  const off = opts.outOffset ?? 0;
  checkOut("sample", out, off, M);
  if (N === 0) throw new ShapeError(`sample: ${logits.name} has empty rows`);
  const T = opts.temperature;
  if (!(T > 0) || !Number.isFinite(T)) throw new ShapeError(`sample: temperature must be > 0, got ${T}`);
  const topK = opts.topK ?? 0;
  if (!Number.isInteger(topK) || topK < 0) {
    throw new ShapeError(`sample: topK must be an integer ≥ 0, got ${topK}`);
  }
  const topP = opts.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new ShapeError(`sample: topP must be in (0, 1], got ${topP}`);
  for (const [name, v] of [["seed", opts.seed], ["step", opts.step]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new ShapeError(`sample: ${name} must be a u32, got ${v}`);
    }
  }
  if (M === 0) return;
  const k = memoKernel(rec, "sample", () => ({
    name: "sample",
    code: SELECT_WGSL,
    entryPoint: "sample",
    storage: ["rw", "rw"],
    params: "uuuuffuu",
  }));
  rec.dispatch(
    k,
    [logits, out],
    [N, M, off, topK >= N ? 0 : topK, T, topP, opts.seed, opts.step],
    rowGrid(rec, M),
  );
}

/** Options of {@link filteredProbs}: the target-side sampling settings. */
export interface ProbsOptions {
  /** Temperature > 0. */
  temperature: number;
  /** Keep the k most likely (0 = off). */
  topK?: number;
  /** Nucleus mass (1 = off). */
  topP?: number;
  /**
   * `workgroup`: 256 threads per row (hardware default, and whenever a filter is on); `lanes`: 8
   * threads per row reading vec4s, no top-k / top-p (the software-adapter default then, N % 4 == 0).
   */
  kernel?: "workgroup" | "lanes";
}

/**
 * The distribution {@link sample} draws from, written out: out (M, N) f32 = softmax(x/T) restricted
 * to the top-k then top-p set and renormalised (zeros elsewhere). One dispatch.
 */
export function filteredProbs(rec: Recorder, out: Tensor, logits: Tensor, opts: ProbsOptions): void {
  const [M, N] = rowsCols(logits, "filteredProbs"); // logits (M, N)
  logits.expectShape(logits.shape, "f32");
  out.expectShape(logits.shape, "f32");
  const T = opts.temperature;
  if (!(T > 0) || !Number.isFinite(T)) {
    throw new ShapeError(`filteredProbs: temperature must be > 0, got ${T}`);
  }
  const topK = opts.topK ?? 0;
  if (!Number.isInteger(topK) || topK < 0) throw new ShapeError(`filteredProbs: topK must be an integer ≥ 0`);
  const topP = opts.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new ShapeError(`filteredProbs: topP must be in (0, 1], got ${topP}`);
  if (M === 0) return;
  // Software adapters, no filter: 8 threads per row, vec4 (the 256-thread kernel's barriers dominate on
  // llvmpipe: 60 × 8192 ≈ 22 ms per T > 0 cycle before; docs/engine.md §7).
  const unfiltered = (topK === 0 || topK >= N) && topP >= 1;
  const aligned = N % 4 === 0 && logits.offset % 16 === 0 && out.offset % 16 === 0;
  const sw = opts.kernel === "lanes" ||
    (opts.kernel === undefined && rec.gpu.isFallback && unfiltered && aligned);
  if (sw && !(unfiltered && aligned)) {
    throw new ShapeError(
      `filteredProbs: the lanes kernel needs no top-k / top-p, N % 4 == 0 and 16-byte aligned tensors`,
    );
  }
  const k = memoKernel(rec, sw ? "probs_sw" : "probs", () => ({
    name: sw ? "probs_sw" : "probs",
    code: SELECT_WGSL,
    entryPoint: sw ? "probs_sw" : "probs",
    storage: ["rw", "rw"],
    params: "uuuuffuu",
  }));
  rec.dispatch(k, [logits, out], [N, M, 0, topK >= N ? 0 : topK, T, topP, 0, 0], rowGrid(rec, M));
}

/** PCG-RXS-M-XS hash (Jarzynski & Olano 2020), u32 → u32; the kernel's `pcg`. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/**
 * The uniform in [0, 1) that {@link sample} draws for (seed, step, row):
 * h = pcg(row + pcg(step + pcg(seed))) (u32 wrap-around adds), u = (h >> 8) · 2⁻²⁴ — exact in f32,
 * so a CPU replay of the sampler sees the same u as the GPU.
 */
export function sampleUniform(seed: number, step: number, row: number): number {
  const h = pcgHash((row + pcgHash((step + pcgHash(seed)) >>> 0)) >>> 0);
  return (h >>> 8) / 16777216;
}
