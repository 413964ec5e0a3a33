/**
 * Fused row log-softmax + top-k (`kernels/topk.wgsl`): the k largest log-probabilities of each row of
 * logits and their indices, in one dispatch that reads each row from storage once. Draft-tree
 * expansion needs exactly this per level (it never uses the full log-prob rows), and it used to pay
 * a `logSoftmax` dispatch plus a `topk` that sweeps the row k times. The result is bit for bit what
 * `logSoftmax` followed by `topk` produces (same reduction order, selection on the rounded
 * log-probs), so tree code can switch between the two without changing a single tree.
 * @module
 */
import { TOPK_WGSL } from "@gto/kernels";
import { specialize } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { memoKernel, rowGrid, rowsCols } from "./kernel_memo.ts";
import { grid1d } from "./dispatch.ts";
import { TOPK_MAX } from "./select.ts";

/** Options for {@link topkLogSoftmax}. */
export interface TopkLogSoftmaxOptions {
  /** Divide the logits by this temperature (> 0) first; default 1. */
  temperature?: number;
  /**
   * Keep the row in workgroup memory (`auto`, the default: when it fits the device's workgroup
   * storage next to the 3 KiB of reduction space) or always re-read it from storage (`never`;
   * rows too long for workgroup memory always do).
   */
  cache?: "auto" | "never";
  /**
   * Threads per row (a power of two ≤ 256). Default by adapter: 16 on software adapters (two
   * 256-bit llvmpipe fibers, so the k·(log2 WG + 2) barriers cost little; 8–32 measured alike, 64
   * 2–3× and 256 ~25× slower at 10 rows × 1024), 256 on hardware.
   */
  workgroupSize?: 8 | 16 | 32 | 64 | 128 | 256;
  /**
   * `workgroup`: WG threads per row (above); `lanes`: one invocation per row, no barriers (entry
   * `topk_log_softmax_sw`, the software-adapter default for M ≥ 8 rows unless `workgroupSize` is
   * given). Same bits either way.
   */
  kernel?: "workgroup" | "lanes";
}

/** The default threads per row of {@link topkLogSoftmax} on `rec`'s adapter. */
export function topkWorkgroupSize(rec: Recorder): 16 | 256 {
  return isSoftware(rec) ? 16 : 256;
}

function isSoftware(rec: Recorder): boolean {
  return rec.gpu.isFallback || /llvmpipe|lavapipe|swiftshader/i.test(rec.gpu.adapterName);
}

/**
 * Elements of the workgroup row cache for rows of `n` f32 with `wg` threads on `rec`'s device: n
 * rounded up to 256, or 0 when that does not fit the workgroup storage next to the reduction arrays.
 */
export function topkRowCache(rec: Recorder, n: number, wg: number = topkWorkgroupSize(rec)): number {
  const cache = Math.ceil(n / 256) * 256;
  const reduction = (2 * 256 + wg) * 4;
  return cache * 4 + reduction <= rec.gpu.limits.maxComputeWorkgroupStorageSize ? cache : 0;
}

/**
 * Per-row top-k (1 ≤ k ≤ min(64, N)) of log-softmax(x / T) for logits x (M, N) f32: ids (M, k) u32
 * and values (M, k) f32, sorted descending, equal log-probs ordered by lower index; equal bit for bit
 * to `logSoftmax` then `topk` (NaN rules included). One dispatch. Throws {@link ShapeError} naming
 * the tensor or option.
 */
export function topkLogSoftmax(
  rec: Recorder,
  ids: Tensor,
  values: Tensor,
  x: Tensor,
  k: number,
  opts: TopkLogSoftmaxOptions = {},
): void {
  const [M, N] = rowsCols(x, "topkLogSoftmax"); // x (M, N)
  x.expectShape(x.shape, "f32");
  if (!Number.isInteger(k) || k < 1 || k > TOPK_MAX || k > N) {
    throw new ShapeError(`topkLogSoftmax: k must be an integer in [1, min(${TOPK_MAX}, N = ${N})], got ${k}`);
  }
  const T = opts.temperature ?? 1;
  if (!(T > 0) || !Number.isFinite(T)) {
    throw new ShapeError(`topkLogSoftmax: temperature must be > 0, got ${T}`);
  }
  const lead = x.shape.slice(0, -1);
  ids.expectShape([...lead, k], "u32"); // (M, k)
  values.expectShape([...lead, k], "f32"); // (M, k)
  for (const t of [ids, values]) {
    if (t.buffer === x.buffer && t.offset < x.offset + x.byteLength && x.offset < t.offset + t.byteLength) {
      throw new ShapeError(`topkLogSoftmax: ${t.name} overlaps ${x.name}`);
    }
  }
  if (M === 0) return;
  const auto = opts.kernel === undefined && opts.workgroupSize === undefined && isSoftware(rec) && M >= 8;
  if (opts.kernel === "lanes" || auto) {
    // Software adapters, ≥ 8 rows (one full llvmpipe vector): one invocation per row, no barriers.
    // Loaded llvmpipe, N 2048: 10 rows k 10 0.46 → 0.29 ms; but 1 row 0.085 → 0.19 and 4 rows 0.15 →
    // 0.21 ms (a lone invocation walks the row serially), so fewer rows keep the 16-thread kernel.
    const kern = memoKernel(rec, "topk_log_softmax_sw", () => ({
      name: "topk_log_softmax_sw",
      code: specialize(TOPK_WGSL, { WG: 8, CACHED: "false", CACHE: 1, KMAX: TOPK_MAX }),
      entryPoint: "topk_log_softmax_sw",
      storage: ["rw", "rw", "rw"],
      params: "uuuf",
    }));
    rec.dispatch(
      kern,
      [x, ids, values],
      [N, M, k, T],
      grid1d(M, 8, rec.gpu.limits.maxComputeWorkgroupsPerDimension),
    );
    return;
  }
  const wg = opts.workgroupSize ?? topkWorkgroupSize(rec);
  if (![8, 16, 32, 64, 128, 256].includes(wg)) {
    throw new ShapeError(`topkLogSoftmax: workgroupSize must be a power of two in [8, 256], got ${wg}`);
  }
  const cache = opts.cache === "never" ? 0 : topkRowCache(rec, N, wg);
  const kern = memoKernel(rec, `topk_log_softmax:${wg}:${cache}`, () => ({
    name: "topk_log_softmax",
    code: specialize(TOPK_WGSL, {
      WG: wg,
      CACHED: cache > 0 ? "true" : "false",
      CACHE: Math.max(cache, 1),
      KMAX: TOPK_MAX,
    }),
    entryPoint: "topk_log_softmax",
    storage: ["rw", "rw", "rw"],
    params: "uuuf",
  }));
  rec.dispatch(kern, [x, ids, values], [N, M, k, T], rowGrid(rec, M));
}
