/**
 * Backward ops of the EAGLE-3 draft layer, for Phase I/II training on the GPU: linear, RMSNorm,
 * RoPE, SwiGLU and the fused soft cross-entropy (attention is in `attention_bwd.ts`). Each op
 * validates shapes (throwing {@link ShapeError} naming the tensor), looks its kernel up by a short
 * key and records one or two dispatches; nothing reads back to the CPU.
 *
 * Gradient accumulation: parameters used more than once per step (the seven unrolled TTT steps
 * share every weight) accumulate with `accumulateDw`; activations reached by two paths (residual +
 * norm) accumulate with `accumulateDx`. Without the flags, outputs are overwritten.
 * @module
 */
import {
  ACTIVATION_BWD_WGSL,
  CROSS_ENTROPY_BWD_WGSL,
  LINEAR_BWD_WGSL,
  NORM_BWD_WGSL,
  ROPE_BWD_WGSL,
} from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { grid1d } from "../ops/dispatch.ts";
import { memoKernel, rowGrid } from "../ops/kernel_memo.ts";
import { scratchF32 } from "./scratch.ts";

function overlaps(a: Tensor, b: Tensor): boolean {
  return a.buffer === b.buffer && a.offset < b.offset + b.byteLength && b.offset < a.offset + a.byteLength;
}

function noOverlap(op: string, out: Tensor, ...ins: Tensor[]): void {
  for (const t of ins) {
    if (overlaps(out, t)) throw new ShapeError(`${op}: ${out.name} overlaps its input ${t.name}`);
  }
}

/** C (R, Cn) [+]= Σ_t A(r, t)·B(t, c) with strided A, B (kernels/linear_bwd.wgsl). */
function matmulStrided(
  rec: Recorder,
  c: Tensor,
  a: Tensor,
  b: Tensor,
  dims: { r: number; cn: number; t: number; aR: number; aT: number; bT: number; bC: number },
  accumulate: boolean,
): void {
  const k = memoKernel(rec, "linear_bwd", () => ({
    name: "matmul_strided",
    code: LINEAR_BWD_WGSL,
    entryPoint: "matmul_strided",
    storage: ["rw", "rw", "rw"],
    params: "uuuuuuuu",
  }));
  const { r, cn, t, aR, aT, bT, bC } = dims;
  rec.dispatch(k, [a, b, c], [r, cn, t, aR, aT, bT, bC, accumulate ? 1 : 0], [
    Math.ceil(cn / 64),
    Math.ceil(r / 64),
  ]);
}

/**
 * Backward of `linear` (y = x·wᵀ, HF layout): dx (M, K) = dy·w and dw (N, K) (+)= dyᵀ·x, each one
 * dispatch of a 64×64-tiled strided matmul. dy (M, N), x (M, K), w (N, K): f32. Pass `null` for a
 * gradient that is not needed. `accumulateDw` adds into dw (shared weights across unrolled steps),
 * `accumulateDx` adds into dx. Outputs must not overlap the inputs.
 */
export function linearBackward(
  rec: Recorder,
  dx: Tensor | null,
  dw: Tensor | null,
  dy: Tensor,
  x: Tensor,
  w: Tensor,
  opts: { accumulateDw?: boolean; accumulateDx?: boolean } = {},
): void {
  if (w.shape.length !== 2) throw new ShapeError(`${w.name}: expected (N, K), got [${w.shape}]`);
  const [N, K] = w.shape;
  if (x.shape.length !== 2) throw new ShapeError(`${x.name}: expected (M, ${K}), got [${x.shape}]`);
  const M = x.shape[0];
  w.expectShape([N, K], "f32"); // (N, K)
  x.expectShape([M, K], "f32"); // (M, K)
  dy.expectShape([M, N], "f32"); // (M, N)
  if (dx) {
    dx.expectShape([M, K], "f32"); // (M, K)
    noOverlap("linearBackward", dx, dy, x, w);
    if (dw) noOverlap("linearBackward", dx, dw);
    if (M > 0 && K > 0) {
      matmulStrided(rec, dx, dy, w, { r: M, cn: K, t: N, aR: N, aT: 1, bT: K, bC: 1 }, !!opts.accumulateDx);
    }
  }
  if (dw) {
    dw.expectShape([N, K], "f32"); // (N, K)
    noOverlap("linearBackward", dw, dy, x, w);
    if (N > 0 && K > 0) {
      matmulStrided(rec, dw, dy, x, { r: N, cn: K, t: M, aR: 1, aT: N, bT: K, bC: 1 }, !!opts.accumulateDw);
    }
  }
}

/**
 * Backward of `rmsNorm` (y = x·rsqrt(mean(x²) + eps)·w): dx (M, H) (written, or added with
 * `accumulateDx`) and, unless `dw` is null, dw (H) = Σ_rows dy·x·rstd (added with `accumulateDw`).
 * One dispatch per row for dx (it also stores rstd in a scratch) and one per column block for dw.
 * dy, x (M, H), w (H): f32. dx must not overlap dy or x.
 */
export function rmsNormBackward(
  rec: Recorder,
  dx: Tensor,
  dw: Tensor | null,
  dy: Tensor,
  x: Tensor,
  w: Tensor,
  eps: number,
  opts: { accumulateDw?: boolean; accumulateDx?: boolean } = {},
): void {
  w.expectShape([-1], "f32");
  const H = w.shape[0];
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== H) {
    throw new ShapeError(`${x.name}: expected (M, ${H}), got [${x.shape}]`);
  }
  const M = H === 0 ? 0 : x.size / H;
  x.expectShape(x.shape, "f32"); // (M, H)
  dy.expectShape(x.shape, "f32"); // (M, H)
  dx.expectShape(x.shape, "f32"); // (M, H)
  if (!(eps >= 0) || !Number.isFinite(eps)) {
    throw new ShapeError(`rmsNormBackward: eps must be ≥ 0, got ${eps}`);
  }
  noOverlap("rmsNormBackward", dx, dy, x, w);
  if (dw) {
    dw.expectShape([H], "f32"); // (H)
    noOverlap("rmsNormBackward", dw, dy, x, dx);
  }
  if (M === 0 || H === 0) return;
  const rstd = scratchF32(rec, "rms_rstd", [M]); // (M)
  const spec = (entry: string) => () => ({
    name: `rms_norm_bwd_${entry}`,
    code: NORM_BWD_WGSL,
    entryPoint: entry,
    storage: ["rw", "rw", "rw", "rw", "rw"] as ("rw")[],
    params: "uufu",
  });
  rec.dispatch(
    memoKernel(rec, "rms_bwd_dx", spec("dx_main")),
    [dy, x, w, dx, rstd],
    [H, M, eps, opts.accumulateDx ? 1 : 0],
    rowGrid(rec, M),
  );
  if (dw) {
    rec.dispatch(
      memoKernel(rec, "rms_bwd_dw", spec("dw_main")),
      [dy, x, w, dw, rstd],
      [H, M, eps, opts.accumulateDw ? 1 : 0],
      grid1d(H, 256, rec.gpu.limits.maxComputeWorkgroupsPerDimension),
    );
  }
}

/**
 * Backward of `rope` in place: d (T, nH·hd) ← inverse rotation of d (the gradient w.r.t. the
 * pre-RoPE input). Positions as in the forward: `positions[t]` (u32 (T)) or `pos0 + t`. One dispatch.
 */
export function ropeBackward(
  rec: Recorder,
  d: Tensor,
  opts: { numHeads: number; headDim: number; theta: number; pos0?: number; positions?: Tensor },
): void {
  const { numHeads: nH, headDim: hd, theta, pos0 = 0, positions } = opts;
  if (!Number.isInteger(nH) || nH <= 0) throw new ShapeError(`ropeBackward: numHeads ${nH} must be ≥ 1`);
  if (!Number.isInteger(hd) || hd <= 0 || hd % 2 !== 0) {
    throw new ShapeError(`ropeBackward: headDim ${hd} must be a positive even integer`);
  }
  if (!(theta > 1)) throw new ShapeError(`ropeBackward: rope theta ${theta} must be > 1`);
  if (d.shape.length !== 2) throw new ShapeError(`${d.name}: expected 2-D (T, nH·hd), got [${d.shape}]`);
  const T = d.shape[0];
  d.expectShape([T, nH * hd], "f32"); // (T, nH·hd)
  if (positions) positions.expectShape([T], ["u32", "i32"]); // (T)
  else if (!Number.isInteger(pos0) || pos0 < 0 || pos0 + T > 2 ** 24) {
    throw new ShapeError(`ropeBackward: pos0 ${pos0} must be an integer in [0, 2^24 − T]`);
  }
  const n = T * nH * (hd / 2);
  if (n === 0) return;
  const k = memoKernel(rec, "rope_bwd", () => ({
    name: "rope_bwd",
    code: ROPE_BWD_WGSL,
    entryPoint: "rope_bwd",
    storage: ["rw", "rw"],
    params: "uuuuuf",
  }));
  rec.dispatch(
    k,
    [d, positions ?? d],
    [T, nH, hd, pos0, positions ? 1 : 0, Math.log2(theta)],
    grid1d(n, 256, rec.gpu.limits.maxComputeWorkgroupsPerDimension),
  );
}

/**
 * Backward of `swiglu`: dGateUp (M, 2I) = [dgate | dup] from dOut (M, I) and the forward input
 * gateUp (M, 2I). dGateUp may be gateUp itself (in place); it must not overlap dOut. One dispatch.
 */
export function swigluBackward(rec: Recorder, dGateUp: Tensor, dOut: Tensor, gateUp: Tensor): void {
  if (gateUp.shape.length !== 2 || gateUp.shape[1] % 2 !== 0) {
    throw new ShapeError(`${gateUp.name}: expected (M, 2I), got [${gateUp.shape}]`);
  }
  const [M, I2] = gateUp.shape;
  const I = I2 / 2;
  gateUp.expectShape([M, I2], "f32"); // (M, 2I)
  dGateUp.expectShape([M, I2], "f32"); // (M, 2I)
  dOut.expectShape([M, I], "f32"); // (M, I)
  noOverlap("swigluBackward", dGateUp, dOut);
  const same = dGateUp.buffer === gateUp.buffer && dGateUp.offset === gateUp.offset;
  if (!same) noOverlap("swigluBackward", dGateUp, gateUp);
  const n = M * I;
  if (n === 0) return;
  const k = memoKernel(rec, "swiglu_bwd", () => ({
    name: "swiglu_bwd",
    code: ACTIVATION_BWD_WGSL,
    entryPoint: "swiglu_bwd",
    storage: ["rw", "rw", "rw"],
    params: "uu",
  }));
  rec.dispatch(
    k,
    [gateUp, dOut, dGateUp],
    [I, n],
    grid1d(n, 256, rec.gpu.limits.maxComputeWorkgroupsPerDimension),
  );
}

/**
 * Optional hard-label term of {@link softCrossEntropy}: per row a label y_m (u32, ≥ Vd = none) and a
 * signed weight h_m (f32): hard loss_m = −h_m·log_softmax(logits)[y_m] (written to `loss`, apart
 * from the soft loss), dLogits += h_m·(softmax − e_y). GTO adds its surrogate's gradient along the
 * accepted path this way, and reads a frozen draft's path log-probs from `loss` with h = 1.
 */
export interface HardLabels {
  /** (M) u32 label per row (≥ Vd: no hard term on that row). */
  labels: Tensor;
  /** (M) f32 signed weight per row. */
  weights: Tensor;
  /** (M) f32 out: the hard term's loss per row (0 on rows without a label). */
  loss: Tensor;
}

/**
 * Soft cross-entropy, forward and backward fused, one 256-thread workgroup per row:
 * loss (M) = −w_m·Σ_v p·log_softmax(logits) and dLogits (M, Vd) = w_m·(softmax(logits)·Σp − p),
 * plus the optional {@link HardLabels} term. logits, targetProbs (M, Vd), rowWeight (M) (mask × step
 * weight × 1/count): f32. dLogits may be logits itself (in place); loss must not overlap the inputs.
 * One dispatch.
 */
export function softCrossEntropy(
  rec: Recorder,
  loss: Tensor,
  dLogits: Tensor,
  logits: Tensor,
  targetProbs: Tensor,
  rowWeight: Tensor,
  hard?: HardLabels,
): void {
  if (logits.shape.length !== 2) {
    throw new ShapeError(`${logits.name}: expected (M, Vd), got [${logits.shape}]`);
  }
  const [M, V] = logits.shape;
  logits.expectShape([M, V], "f32"); // (M, Vd)
  targetProbs.expectShape([M, V], "f32"); // (M, Vd)
  dLogits.expectShape([M, V], "f32"); // (M, Vd)
  rowWeight.expectShape([M], "f32"); // (M)
  loss.expectShape([M], "f32"); // (M)
  noOverlap("softCrossEntropy", loss, logits, targetProbs, rowWeight, dLogits);
  noOverlap("softCrossEntropy", dLogits, targetProbs, rowWeight);
  const same = dLogits.buffer === logits.buffer && dLogits.offset === logits.offset;
  if (!same) noOverlap("softCrossEntropy", dLogits, logits);
  if (hard) {
    hard.labels.expectShape([M], "u32"); // (M)
    hard.weights.expectShape([M], "f32"); // (M)
    hard.loss.expectShape([M], "f32"); // (M)
    noOverlap("softCrossEntropy", dLogits, hard.labels, hard.weights, hard.loss);
    noOverlap("softCrossEntropy", loss, hard.labels, hard.weights, hard.loss);
    noOverlap("softCrossEntropy", hard.loss, logits, targetProbs, rowWeight, hard.labels, hard.weights);
  }
  if (M === 0) return;
  if (V === 0) throw new ShapeError(`softCrossEntropy: ${logits.name} has an empty vocabulary`);
  const k = memoKernel(rec, "soft_xent", () => ({
    name: "soft_xent",
    code: CROSS_ENTROPY_BWD_WGSL,
    entryPoint: "soft_xent",
    storage: ["rw", "rw", "rw", "rw", "rw", "rw", "rw", "rw"],
    params: "uuu",
  }));
  rec.dispatch(
    k,
    [
      logits,
      targetProbs,
      rowWeight,
      loss,
      dLogits,
      hard?.labels ?? rowWeight,
      hard?.weights ?? rowWeight,
      hard?.loss ?? rowWeight,
    ],
    [V, M, hard ? 1 : 0],
    rowGrid(rec, M),
  );
}
