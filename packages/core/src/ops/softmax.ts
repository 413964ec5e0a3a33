/**
 * Row softmax and log-softmax with temperature, for output probabilities, distillation losses and
 * speculative acceptance. One dispatch of `kernels/softmax.wgsl`: one 256-thread workgroup per row,
 * an online max/sum pass with a workgroup-memory reduction, then a write pass.
 * @module
 */
import { SOFTMAX_WGSL } from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { memoKernel, partialOverlap, rowGrid, rowsCols } from "./kernel_memo.ts";

/** Options for {@link softmax} and {@link logSoftmax}. */
export interface SoftmaxOptions {
  /** Divide the logits by this temperature (> 0) first; default 1. */
  temperature?: number;
}

function rowSoftmax(rec: Recorder, out: Tensor, x: Tensor, opts: SoftmaxOptions, log: boolean): void {
  const op = log ? "logSoftmax" : "softmax";
  const [M, N] = rowsCols(x, op); // x (M, N)
  x.expectShape(x.shape, "f32");
  out.expectShape(x.shape, "f32"); // (M, N)
  const T = opts.temperature ?? 1;
  if (!(T > 0) || !Number.isFinite(T)) throw new ShapeError(`${op}: temperature must be > 0, got ${T}`);
  if (partialOverlap(out, x)) throw new ShapeError(`${op}: ${out.name} partially overlaps ${x.name}`);
  if (M === 0 || N === 0) return;
  const entry = log ? "log_softmax" : "softmax";
  const k = memoKernel(rec, entry, () => ({
    name: entry,
    code: SOFTMAX_WGSL,
    entryPoint: entry,
    storage: ["rw", "rw"],
    params: "uuf",
  }));
  rec.dispatch(k, [x, out], [N, M, T], rowGrid(rec, M));
}

/**
 * Row softmax of x / temperature. x, out: (M, N) f32 (leading dimensions flattened into M); `out`
 * may be the same tensor as `x`. Throws {@link ShapeError} on a mismatch or a temperature ≤ 0.
 */
export function softmax(rec: Recorder, out: Tensor, x: Tensor, opts: SoftmaxOptions = {}): void {
  rowSoftmax(rec, out, x, opts, false);
}

/**
 * Row log-softmax of x / temperature: x/T − logsumexp(x/T). x, out: (M, N) f32; `out` may be `x`.
 * Throws {@link ShapeError} on a mismatch or a temperature ≤ 0.
 */
export function logSoftmax(rec: Recorder, out: Tensor, x: Tensor, opts: SoftmaxOptions = {}): void {
  rowSoftmax(rec, out, x, opts, true);
}
