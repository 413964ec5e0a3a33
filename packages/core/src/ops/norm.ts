/**
 * RMSNorm, the normalisation of every LLaMA layer (HF `LlamaRMSNorm`): each row of x is scaled by
 * rsqrt(mean(x²) + eps) and by the learned weight. One dispatch of `kernels/norm.wgsl`, one
 * 256-thread workgroup per row with a workgroup-memory reduction (on software adapters one
 * invocation per row, entry `main_sw`); f16 weights use the same source
 * specialised with `enable f16;` (arithmetic stays f32).
 * @module
 */
import { NORM_WGSL } from "@gto/kernels";
import { specialize } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { memoKernel, partialOverlap, rowGrid, rowsCols, weightDefs } from "./kernel_memo.ts";
import { grid1d } from "./dispatch.ts";

/** Options of {@link rmsNorm}. */
export interface RmsNormOptions {
  /**
   * `workgroup`: one 256-thread workgroup per row (hardware default); `lanes`: one invocation per row,
   * 8 per workgroup, no barriers (the software-adapter default). Tests force either.
   */
  kernel?: "workgroup" | "lanes";
}

/**
 * HF RMSNorm: out = x · rsqrt(mean(x²) + eps) · w, per row.
 * x, out: (M, H) f32 (leading dimensions are flattened into M); `out` may be the same tensor as `x`
 * (in place). w: (H) f32 or f16 (normally in the weight arena). Throws {@link ShapeError} naming the
 * tensor on a shape/dtype mismatch, on an out that partially overlaps x, and for f16 weights on a
 * device without shader-f16.
 */
export function rmsNorm(
  rec: Recorder,
  out: Tensor,
  x: Tensor,
  w: Tensor,
  eps: number,
  opts: RmsNormOptions = {},
): void {
  const [M, H] = rowsCols(x, "rmsNorm"); // x (M, H)
  x.expectShape(x.shape, "f32");
  out.expectShape(x.shape, "f32"); // (M, H)
  w.expectShape([H], ["f32", "f16"]); // (H)
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new ShapeError(`rmsNorm: eps must be ≥ 0, got ${eps}`);
  if (partialOverlap(out, x)) {
    throw new ShapeError(
      `rmsNorm: ${out.name} partially overlaps ${x.name} (only exact in-place is allowed)`,
    );
  }
  if (M === 0 || H === 0) return;
  const defs = weightDefs(rec, "rmsNorm", w, [x, out]);
  const sw = opts.kernel === "lanes" || (opts.kernel === undefined && rec.gpu.isFallback);
  const k = memoKernel(rec, `rmsnorm:${defs.WT}:${defs.WACCESS}:${sw}`, () => ({
    name: `rms_norm_${defs.WT}${sw ? "_sw" : ""}`,
    code: specialize(NORM_WGSL, defs),
    entryPoint: sw ? "main_sw" : "main",
    storage: ["rw", defs.WACCESS === "read" ? "read" : "rw", "rw"],
    params: "uuf",
  }));
  const grid = sw ? grid1d(M, 8, rec.gpu.limits.maxComputeWorkgroupsPerDimension) : rowGrid(rec, M);
  rec.dispatch(k, [x, w, out], [H, M, eps], grid);
}
