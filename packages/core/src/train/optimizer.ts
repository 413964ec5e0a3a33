/**
 * The draft's optimizer, separate from any objective: gradient buffers laid out like the draft's
 * weights (one flat f32 vector mirroring `draft.params` when the weights share one buffer, llm.c's
 * params / grads / m / v arenas), AdamW moments, the global gradient norm with torch-style clipping,
 * and the state a checkpoint needs. Objectives (the Phase-I TTT loss, `ttt.ts`; GTO's surrogate)
 * record gradients into {@link DraftOptimizer.grads} through the {@link DraftGradSink} protocol, so
 * several objectives add into one step's gradients before one update:
 *
 * ```ts
 * opt.zeroGrad();                    // host-side: the next write of each gradient overwrites it
 * tokenLoss.recordObjective(rec, …); // writes (first use) or adds into opt.grads
 * gtoLoss.recordObjective(rec, …);   // adds
 * opt.recordGradNorm(rec);           // ‖g‖² into opt.normSq (gradients never written are zeroed first)
 * opt.recordUpdate(rec, { lr });     // clip by that norm, AdamW
 * ```
 *
 * `zeroGrad` costs no dispatch: the first write after it overwrites (every backward op has an
 * overwrite and an accumulate mode), so a single objective runs exactly the dispatches it ran when
 * it owned the buffers. Everything is allocated at creation; a step creates no GPU object.
 * @module
 */
import type { GpuDevice } from "../gpu/device.ts";
import { BufferArena, writeTensor } from "../gpu/arena.ts";
import type { Recorder } from "../gpu/recorder.ts";
import { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import type { Eagle3Draft } from "../model/eagle3.ts";
import { DRAFT_WEIGHT_KEYS, type DraftGradSink, type Eagle3GpuWeights } from "../model/draft_layer.ts";
import { adamw, globalNormSq, zeroFill } from "../grad/optim.ts";
import type { TensorToWrite } from "../io/safetensors.ts";

/** Settings of one update (torch AdamW + clip_grad_norm_). */
export interface DraftUpdateOptions {
  /** Learning rate of this step. */
  lr: number;
  /** β1 (default 0.9). */
  beta1?: number;
  /** β2 (default 0.95). */
  beta2?: number;
  /** ε (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Gradient clipping norm (default 0.5). */
  maxGradNorm?: number;
}

/**
 * The AdamW state on the host, for checkpoints: the first and second moments of every weight
 * concatenated in {@link DRAFT_WEIGHT_KEYS} order (each tensor's elements row-major, no alignment
 * gaps, so the layout does not depend on how the weights are packed on the GPU) and the number of
 * optimizer steps taken (the bias-correction step).
 */
export interface DraftOptimizerState {
  /** AdamW steps taken ({@link DraftOptimizer.steps}). */
  step: number;
  /** First moments, Σ_k size(weight k) f32. */
  m: Float32Array;
  /** Second moments, same layout. */
  v: Float32Array;
}

/** Names of the moment tensors in a checkpoint's `trainer_state.safetensors`. */
export const OPTIMIZER_TENSOR_NAMES = { m: "adam_m", v: "adam_v" } as const;

/** Gradients, AdamW moments and clipping for one draft; all GPU memory is allocated at creation. */
export class DraftOptimizer implements DraftGradSink {
  /** The draft whose weights are updated. */
  readonly draft: Eagle3Draft;
  /** Gradients, one tensor per weight (views of {@link flatGrad} when it exists). */
  readonly grads: Readonly<Eagle3GpuWeights>;
  /** All gradients as one f32 vector aligned with `draft.params` (null when params is null). */
  readonly flatGrad: Tensor | null;
  /** (1) f32 squared global gradient norm of the last {@link recordGradNorm}. */
  readonly normSq: Tensor;
  /** AdamW steps taken (torch `state["step"]`). */
  steps = 0;

  readonly #gpu: GpuDevice;
  readonly #arena: BufferArena;
  readonly #m: Readonly<Eagle3GpuWeights>;
  readonly #v: Readonly<Eagle3GpuWeights>;
  readonly #flatM: Tensor | null;
  readonly #flatV: Tensor | null;
  readonly #written = new Set<keyof Eagle3GpuWeights>();

  private constructor(gpu: GpuDevice, draft: Eagle3Draft) {
    this.#gpu = gpu;
    this.draft = draft;
    const w = draft.weights;
    const bytes = 3 * DRAFT_WEIGHT_KEYS.reduce((s, k) => s + w[k].byteLength + 256, 0) + 4 * 256;
    this.#arena = new BufferArena(gpu, bytes, "draft-optimizer");
    const A = this.#arena;
    const params = draft.params;
    const mirror = (label: string): { flat: Tensor | null; views: Eagle3GpuWeights } => {
      const views = {} as Record<keyof Eagle3GpuWeights, Tensor>;
      if (params) {
        const flat = A.alloc([params.size], "f32", `${label}_flat`);
        for (const k of DRAFT_WEIGHT_KEYS) {
          const rel = w[k].offset - params.offset;
          if (rel % 256 !== 0) {
            throw new ShapeError(`DraftOptimizer: ${w[k].name} is not 256-byte aligned in params`);
          }
          views[k] = new Tensor(flat.buffer, flat.offset + rel, w[k].shape, "f32", `${label}.${k}`);
        }
        writeTensor(gpu, flat, new Float32Array(flat.size));
        return { flat, views };
      }
      for (const k of DRAFT_WEIGHT_KEYS) {
        views[k] = A.alloc(w[k].shape, "f32", `${label}.${k}`);
        writeTensor(gpu, views[k], new Float32Array(views[k].size));
      }
      return { flat: null, views };
    };
    const g = mirror("grad"), m = mirror("adam_m"), v = mirror("adam_v");
    this.grads = g.views;
    this.flatGrad = g.flat;
    this.#m = m.views;
    this.#v = v.views;
    this.#flatM = m.flat;
    this.#flatV = v.flat;
    this.normSq = A.alloc([1], "f32", "grad_norm_sq");
  }

  /** An optimizer for `draft` (zero gradients and moments, step 0). */
  static create(gpu: GpuDevice, draft: Eagle3Draft): DraftOptimizer {
    return new DraftOptimizer(gpu, draft);
  }

  /**
   * Start a new gradient accumulation (host-side, no dispatch): the next recorded write of each
   * gradient overwrites it; {@link recordGradNorm} zeroes those never written.
   */
  zeroGrad(): void {
    this.#written.clear();
  }

  /** {@link DraftGradSink.claim}: true when `k` was already written since {@link zeroGrad}. */
  claim(k: keyof Eagle3GpuWeights): boolean {
    const had = this.#written.has(k);
    this.#written.add(k);
    return had;
  }

  /**
   * Record ‖g‖² of the accumulated gradients into {@link normSq} (zeroing any gradient no objective
   * wrote since {@link zeroGrad} first, so the norm and the update see zeros there).
   */
  recordGradNorm(rec: Recorder): void {
    const unwritten = DRAFT_WEIGHT_KEYS.filter((k) => !this.#written.has(k));
    if (unwritten.length > 0) {
      zeroFill(rec, unwritten.map((k) => this.grads[k]));
      for (const k of unwritten) this.#written.add(k);
    }
    globalNormSq(rec, this.normSq, this.flatGrad ?? DRAFT_WEIGHT_KEYS.map((k) => this.grads[k]));
  }

  /** Record clipping (by the norm of the last {@link recordGradNorm}) and one AdamW step. */
  recordUpdate(rec: Recorder, opts: DraftUpdateOptions): void {
    this.steps++;
    const w = this.draft.weights;
    const o = {
      lr: opts.lr,
      beta1: opts.beta1 ?? 0.9,
      beta2: opts.beta2 ?? 0.95,
      eps: opts.eps ?? 1e-8,
      weightDecay: opts.weightDecay ?? 0,
      step: this.steps,
      clipScaleFrom: this.normSq,
      maxNorm: opts.maxGradNorm ?? 0.5,
    };
    if (this.draft.params && this.flatGrad && this.#flatM && this.#flatV) {
      adamw(rec, this.draft.params, this.flatGrad, this.#flatM, this.#flatV, o);
    } else {
      const ks = DRAFT_WEIGHT_KEYS;
      adamw(
        rec,
        ks.map((k) => w[k]),
        ks.map((k) => this.grads[k]),
        ks.map((k) => this.#m[k]),
        ks.map((k) => this.#v[k]),
        o,
      );
    }
  }

  /** Elements of each moment vector of {@link DraftOptimizerState} (Σ of the weight sizes). */
  get stateSize(): number {
    return DRAFT_WEIGHT_KEYS.reduce((s, k) => s + this.draft.weights[k].size, 0);
  }

  /**
   * Read the AdamW moments and step count back (submits `rec`, waits for the GPU). Together with the
   * draft's weights this is everything needed to continue training bit-for-bit.
   */
  async exportState(rec: Recorder): Promise<DraftOptimizerState> {
    const ks = DRAFT_WEIGHT_KEYS;
    const pm = ks.map((k) => rec.readback(this.#m[k]));
    const pv = ks.map((k) => rec.readback(this.#v[k]));
    rec.submit();
    const [bm, bv] = await Promise.all([Promise.all(pm), Promise.all(pv)]);
    rec.checkErrors();
    const n = this.stateSize;
    const m = new Float32Array(n), v = new Float32Array(n);
    let at = 0;
    ks.forEach((k, i) => {
      const size = this.draft.weights[k].size;
      m.set(new Float32Array(bm[i], 0, size), at);
      v.set(new Float32Array(bv[i], 0, size), at);
      at += size;
    });
    return { step: this.steps, m, v };
  }

  /**
   * Restore AdamW moments and the step count saved by {@link exportState} (queue-ordered uploads:
   * call it before recording the next step, never while a recorded step still needs the old moments).
   * Throws ShapeError when the vectors do not match this draft's weights.
   */
  importState(state: DraftOptimizerState): void {
    const n = this.stateSize;
    if (!Number.isSafeInteger(state.step) || state.step < 0) {
      throw new ShapeError(`DraftOptimizer.importState: step ${state.step} must be an integer ≥ 0`);
    }
    if (state.m.length !== n || state.v.length !== n) {
      throw new ShapeError(
        `DraftOptimizer.importState: moments hold ${state.m.length} / ${state.v.length} values; ` +
          `this draft has ${n} trainable weights`,
      );
    }
    let at = 0;
    for (const k of DRAFT_WEIGHT_KEYS) {
      const size = this.draft.weights[k].size;
      writeTensor(this.#gpu, this.#m[k], state.m.subarray(at, at + size));
      writeTensor(this.#gpu, this.#v[k], state.v.subarray(at, at + size));
      at += size;
    }
    this.steps = state.step;
  }

  /** Free the optimizer's GPU memory (not the draft's). */
  destroy(): void {
    this.#arena.destroy();
  }
}

/**
 * The checkpoint tensors of an exported state (`adam_m`, `adam_v`, f32 vectors) for
 * `writeSafetensors`; the step count goes to the checkpoint's JSON.
 */
export function optimizerStateTensors(state: DraftOptimizerState): TensorToWrite[] {
  return [
    { name: OPTIMIZER_TENSOR_NAMES.m, dtype: "F32", shape: [state.m.length], data: state.m },
    { name: OPTIMIZER_TENSOR_NAMES.v, dtype: "F32", shape: [state.v.length], data: state.v },
  ];
}
