/**
 * Optimizer ops, entirely on the GPU (a training step never waits on a readback, docs/engine.md §2):
 * the global squared gradient norm ({@link globalNormSq}) and AdamW ({@link adamw}) with torch's
 * `clip_grad_norm_` coefficient min(1, maxNorm / (‖g‖ + 1e-6)) computed per thread from that norm.
 * The learning rate and bias corrections are CPU numbers in the uniform parameters (the step count
 * is known on the CPU without reading anything back). {@link zeroFill} zeroes gradients in recording
 * order. Kernels: `kernels/optim.wgsl`.
 * @module
 */
import { OPTIM_WGSL } from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { grid1d } from "../ops/dispatch.ts";
import { memoKernel } from "../ops/kernel_memo.ts";
import { scratchF32 } from "./scratch.ts";

/** Workgroups per tensor in the first pass of {@link globalNormSq}. */
const NORM_GROUPS = 64;

const P = "uuuffffffffu"; // optim.wgsl Params

function spec(entry: string) {
  return () => ({
    name: `optim_${entry}`,
    code: OPTIM_WGSL,
    entryPoint: entry,
    storage: ["rw", "rw", "rw", "rw", "rw"] as ("rw")[],
    params: P,
  });
}

function list(t: Tensor | readonly Tensor[]): readonly Tensor[] {
  return Array.isArray(t) ? t : [t as Tensor];
}

/**
 * out (1) = Σ over all `grads` of Σ g² (or += with `accumulate`), deterministic: one dispatch per
 * tensor (≤ 64 workgroups, each writing one partial sum) and one final single-workgroup sum.
 * Pass the flat gradient buffer as one tensor, or the parameter gradients as a list. f32.
 */
export function globalNormSq(
  rec: Recorder,
  out: Tensor,
  grads: Tensor | readonly Tensor[],
  opts: { accumulate?: boolean } = {},
): void {
  out.expectShape([1], "f32"); // (1)
  const gs = list(grads);
  for (const g of gs) {
    if (g.dtype !== "f32") throw new ShapeError(`globalNormSq: ${g.name} must be f32, got ${g.dtype}`);
    if (g.buffer === out.buffer && g.offset < out.offset + 4 && out.offset < g.offset + g.byteLength) {
      throw new ShapeError(`globalNormSq: ${out.name} overlaps ${g.name}`);
    }
  }
  const groups = gs.map((g) => Math.max(1, Math.min(NORM_GROUPS, Math.ceil(g.size / 256))));
  const total = groups.reduce((a, b) => a + b, 0);
  const partials = scratchF32(rec, "norm_partials", [Math.max(total, 1)]);
  const kp = memoKernel(rec, "optim_partial", spec("sumsq_partial"));
  let base = 0;
  gs.forEach((g, i) => {
    rec.dispatch(kp, [g, partials, g, g, g], [g.size, base, groups[i], 0, 0, 0, 0, 0, 0, 0, 0, 0], [
      groups[i],
    ]);
    base += groups[i];
  });
  rec.dispatch(
    memoKernel(rec, "optim_final", spec("sumsq_final")),
    [partials, out, partials, partials, partials],
    [total, opts.accumulate ? 1 : 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [1],
  );
}

/** Options of {@link adamw} (torch.optim.AdamW semantics). */
export interface AdamWOptions {
  /** Learning rate of this step (e.g. from `lrSchedule`). */
  lr: number;
  /** β1, default 0.9. */
  beta1?: number;
  /** β2, default 0.95. */
  beta2?: number;
  /** ε, default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, default 0. */
  weightDecay?: number;
  /** 1-based step number (torch's `state["step"]` after its increment), for the bias corrections. */
  step: number;
  /** (1) f32 tensor holding ‖g‖² (from {@link globalNormSq}); with `maxNorm`, clips the gradients. */
  clipScaleFrom?: Tensor;
  /** Maximum gradient norm for clipping (required with `clipScaleFrom`). */
  maxNorm?: number;
}

/**
 * One AdamW step in place on `params`, `m`, `v` (f32, matching shapes; single tensors or lists of
 * the same length), using `grads` scaled by the clip coefficient min(1, maxNorm / (‖g‖ + 1e-6))
 * computed on the GPU from `clipScaleFrom`. One dispatch per tensor.
 */
export function adamw(
  rec: Recorder,
  params: Tensor | readonly Tensor[],
  grads: Tensor | readonly Tensor[],
  m: Tensor | readonly Tensor[],
  v: Tensor | readonly Tensor[],
  opts: AdamWOptions,
): void {
  const ps = list(params), gs = list(grads), ms = list(m), vs = list(v);
  if (gs.length !== ps.length || ms.length !== ps.length || vs.length !== ps.length) {
    throw new ShapeError(
      `adamw: ${ps.length} params, ${gs.length} grads, ${ms.length} m, ${vs.length} v tensors`,
    );
  }
  const { lr, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weightDecay = 0, step, clipScaleFrom, maxNorm } = opts;
  if (!Number.isInteger(step) || step < 1) throw new ShapeError(`adamw: step ${step} must be an integer ≥ 1`);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) {
    throw new ShapeError(`adamw: betas (${beta1}, ${beta2}) must be in [0, 1)`);
  }
  if (!Number.isFinite(lr) || !Number.isFinite(weightDecay) || !(eps >= 0)) {
    throw new ShapeError(`adamw: lr ${lr}, weightDecay ${weightDecay}, eps ${eps} must be finite`);
  }
  if (clipScaleFrom) {
    clipScaleFrom.expectShape([1], "f32"); // (1)
    if (!(maxNorm !== undefined && maxNorm > 0)) {
      throw new ShapeError(`adamw: clipScaleFrom needs maxNorm > 0, got ${maxNorm}`);
    }
  }
  const bc1 = 1 - Math.pow(beta1, step), bc2 = 1 - Math.pow(beta2, step);
  const k = memoKernel(rec, "optim_adamw", spec("adamw"));
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i];
    p.expectShape(p.shape, "f32");
    gs[i].expectShape(p.shape, "f32");
    ms[i].expectShape(p.shape, "f32");
    vs[i].expectShape(p.shape, "f32");
    const n = p.size;
    if (n === 0) continue;
    rec.dispatch(
      k,
      [p, gs[i], ms[i], vs[i], clipScaleFrom ?? p],
      [n, 0, 0, lr, beta1, beta2, eps, weightDecay, bc1, Math.sqrt(bc2), maxNorm ?? 0, clipScaleFrom ? 1 : 0],
      grid1d(n, 256, rec.gpu.limits.maxComputeWorkgroupsPerDimension),
    );
  }
}

/** Record t = 0 for every f32 tensor of `tensors` (one dispatch each; ordered with the recorded work). */
export function zeroFill(rec: Recorder, tensors: Tensor | readonly Tensor[]): void {
  const k = memoKernel(rec, "optim_zero_fill", spec("zero_fill"));
  for (const t of list(tensors)) {
    if (t.dtype !== "f32") throw new ShapeError(`zeroFill: ${t.name} must be f32, got ${t.dtype}`);
    if (t.size === 0) continue;
    rec.dispatch(
      k,
      [t, t, t, t, t],
      [t.size, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      grid1d(t.size, 256, rec.gpu.limits.maxComputeWorkgroupsPerDimension),
    );
  }
}
