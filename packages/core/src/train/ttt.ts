/**
 * The EAGLE-3 Phase-I objective ("training-time test", TTT) on the GPU, following EAGLE's own
 * training code (`eagle/traineagle3/cnets.py` `Model.forward` + `main.py`'s loss combination):
 *
 * 1. Target pass over the batch (B sequences of S tokens): the hidden states entering the layers
 *    `draft.config.auxLayerIds` are captured into features g (B·S, n·Ht); the target logits are
 *    turned into soft targets over the draft vocabulary (`target_prep`, kernels/ttt.wgsl).
 * 2. Unrolled draft steps k = 0..steps−1 (EAGLE-3: 7). Position t of step k embeds x[t+k+1], has
 *    hidden input fc(g) at k = 0 and the previous step's pre-norm output otherwise, sits at RoPE
 *    position t + k, and attends to the step-0 keys at positions ≤ t plus its own position's key of
 *    each step 1..k (one softmax). Its target is softmax(target logits of t+k+1 restricted to the
 *    draft vocabulary), its position mask t2d[argmax target logits] × lm[t+k] (zero fill past the
 *    end: argmax 0, uniform target). plosses[k] = −mean over all B·S positions of mask·Σ p·log q;
 *    loss = Σ w_k plosses[k], w_k = 0.8^k by default.
 * 3. Explicit backward through all steps (the hidden state carried between steps is *not* detached,
 *    as in EAGLE: `hidden_states = hidden_states_out`; `detachHidden` switches that off) into the
 *    gradients of a {@link DraftOptimizer} (the draft layer's forward and backward are the shared
 *    ones of `model/draft_layer.ts`); the metrics (plosses, acces, loss, gradient norm) are reduced
 *    on the GPU and read only on request.
 *
 * This file is the objective only: the optimizer (gradients, AdamW moments, clipping, checkpoint
 * state) is `optimizer.ts`, so a second objective (GTO) adds into the same gradients:
 * {@link TttTrainer.recordObjective} records step 1–3 without zeroing, norming or updating;
 * {@link TttTrainer.step} is the whole Phase-I step. Seams for GTO: up to {@link TTT_MAX_STEPS} = 8
 * unrolled steps with per-step loss weights (`stepWeights`, a weight may be 0: the 8th step of a tree
 * path of depth 7), and a forward-only objective (`backward: false`: no optimizer, no gradient
 * buffers, one shared activation record) for a frozen reference draft.
 *
 * Layout: all B·S rows of a step are processed by each op at once. Keys/values of step j live in
 * rows [j·Mpad, j·Mpad + M) of one (steps·Mpad, nKV·hd) buffer (Mpad = M rounded up to 64, so every
 * per-step view is 256-byte aligned). The attention of step k (forward and backward) uses the
 * kernels' TTT mode (`TttMask`, ops/attention.ts): query b·S + t scans exactly its t + 1 causal keys
 * and its k diagonal keys, the visibility of the block-diagonal bitset {@link tttBatchMask} without
 * storing it or scanning the k·Mpad + M rows it spans (≈ (k+1)·S/2 times fewer keys per query). All
 * activations the backward needs are kept per step; lm_head and the final norm are differentiated
 * right after each step's loss, so only one (M, Vd) logits buffer exists. Every GPU buffer is
 * allocated in {@link TttTrainer.create} for the maximum (B, S); a step creates no GPU object.
 * @module
 */
import { TTT_WGSL } from "@gto/kernels";
import type { GpuDevice } from "../gpu/device.ts";
import { BufferArena, writeTensor } from "../gpu/arena.ts";
import type { Recorder } from "../gpu/recorder.ts";
import { type DType, Tensor } from "../gpu/tensor.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { KvCache } from "../model/kv_cache.ts";
import type { Eagle3Draft } from "../model/eagle3.ts";
import {
  DRAFT_WEIGHT_KEYS,
  draftHeadBackward,
  draftHeadForward,
  type DraftLayerActs,
  draftLayerBackward,
  draftLayerForward,
  type DraftLayerGradScratch,
  type Eagle3GpuWeights,
} from "../model/draft_layer.ts";
import { ShapeError } from "../errors.ts";
import { linear } from "../ops/linear.ts";
import { add, copyRows } from "../ops/elementwise.ts";
import { argmax } from "../ops/select.ts";
import { grid1d } from "../ops/dispatch.ts";
import { memoKernel, rowGrid } from "../ops/kernel_memo.ts";
import { linearBackward, softCrossEntropy } from "../grad/backward.ts";
import { DraftOptimizer, type DraftOptimizerState, type DraftUpdateOptions } from "./optimizer.ts";

/** Most unrolled steps: EAGLE-3 uses 7; a GTO tree path of depth 7 has 8 draft tokens. */
export const TTT_MAX_STEPS = 8;

/** Unrolled steps by default (EAGLE-3). */
export const TTT_DEFAULT_STEPS = 7;

/** f32 words of {@link TttTrainer.metrics}: plosses[8], acces[8], loss, gradNorm. */
const METRIC_WORDS = 2 * TTT_MAX_STEPS + 2;

/**
 * Names of the draft's GPU weights, in {@link Eagle3GpuWeights} order.
 * @deprecated use DRAFT_WEIGHT_KEYS (model/draft_layer.ts)
 */
export const TTT_WEIGHT_KEYS: readonly (keyof Eagle3GpuWeights)[] = DRAFT_WEIGHT_KEYS;

/** Sizes and semantics of a {@link TttTrainer}. */
export interface TttOptions {
  /** Most sequences per batch. */
  maxBatch: number;
  /** Most tokens per sequence. */
  maxSeqLen: number;
  /** Unrolled steps (1..8, default 7). */
  steps?: number;
  /** Weight of step k is stepDecay^k (default 0.8) unless `stepWeights` is given. */
  stepDecay?: number;
  /** Loss weight of each step (length `steps`, finite, ≥ 0); default stepDecay^k. */
  stepWeights?: readonly number[];
  /** Detach the hidden state carried between steps (default false, as EAGLE). */
  detachHidden?: boolean;
  /**
   * Record the backward into an optimizer (default true). false: forward and losses only (a frozen
   * reference draft); no optimizer and no gradient buffers exist.
   */
  backward?: boolean;
  /**
   * The optimizer to record gradients into (for several objectives over one draft); default a new
   * one owned (and destroyed) by the trainer. Must belong to the same draft.
   */
  optimizer?: DraftOptimizer;
  /**
   * Allocate {@link TttTrainer.hard}: per (step, row) hard labels with signed weights added to the
   * soft cross-entropy (the GTO surrogate's gradient along the accepted path; a frozen draft's path
   * log-probs). Default false.
   */
  hardLabels?: boolean;
}

/**
 * The hard-label rows of a {@link TttTrainer} (option `hardLabels`), laid out like the per-step
 * rows: step k's row r (r = b·S + t, the prediction of x[t+k+2]) at k·{@link TttTrainer.rowStride} + r.
 * The caller writes `labels` (u32 draft ids, ≥ Vd = none) and `weights` (f32, signed) before a step;
 * the step writes `loss` = −weight·log q(label) per row (0 without a label).
 */
export interface TttHardRows {
  /** (steps·stride) u32. */
  labels: Tensor;
  /** (steps·stride) f32. */
  weights: Tensor;
  /** (steps·stride) f32. */
  loss: Tensor;
}

/** One batch: B sequences of S tokens (pad shorter ones with loss mask 0). */
export interface TttBatch {
  /** Sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** (B·S) token ids, row-major. */
  ids: ArrayLike<number>;
  /** (B·S) assistant loss mask (1 on response tokens). */
  lossMask: ArrayLike<number>;
}

/** Optimizer settings of {@link TttTrainer.step} (torch AdamW + clip_grad_norm_). */
export type TttUpdateOptions = DraftUpdateOptions;

/** The AdamW state of a {@link TttTrainer} on the host, for checkpoints (see {@link DraftOptimizerState}). */
export type TttOptimizerState = DraftOptimizerState;

/** What {@link TttTrainer.readMetrics} returns (of the last recorded step). */
export interface TttMetrics {
  /** Per-step losses plosses[k] (length = steps; 0 for a step of weight 0). */
  plosses: number[];
  /** Per-step accuracies acces[k]. */
  acces: number[];
  /** Σ_k w_k · plosses[k]. */
  loss: number;
  /** Global gradient norm before clipping (0 without a backward). */
  gradNorm: number;
}

/**
 * The packed (M, ⌈(k·mpad + M)/32⌉) u32 bitset mask of TTT step k over B sequences of S tokens
 * (M = B·S; keys of step j at rows j·mpad..): query b·S + t sees step-0 keys b·S + t' for t' ≤ t and
 * the key j·mpad + b·S + t of each step j = 1..k. For B = 1 and mpad = S this is
 * `packMask(tttMask(S, k))`. The trainer does not store it (the kernels' `ttt` mode computes the
 * same visibility); it is the explicit reference of that mode.
 */
export function tttBatchMask(B: number, S: number, k: number, mpad: number): Uint32Array {
  const M = B * S;
  if (mpad < M) throw new ShapeError(`tttBatchMask: mpad ${mpad} < B·S ${M}`);
  const words = Math.ceil((k * mpad + M) / 32);
  const bits = new Uint32Array(M * words); // (M, words)
  const set = (r: number, j: number) => bits[r * words + (j >> 5)] |= 1 << (j & 31);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < S; t++) {
      const r = b * S + t;
      for (let u = 0; u <= t; u++) set(r, b * S + u);
      for (let j = 1; j <= k; j++) set(r, j * mpad + r);
    }
  }
  return bits;
}

/** Per-step record: the draft layer's activations plus what the objective adds. */
interface StepActs extends DraftLayerActs {
  dOut: Tensor | null; // (M, H) gradient w.r.t. out_k (loss of step k, then + later steps)
}

/** Runs EAGLE-3 TTT steps for one (target, draft) pair; all GPU memory is allocated at creation. */
export class TttTrainer {
  /** The target model (frozen). */
  readonly target: LlamaModel;
  /** The draft being trained (or evaluated, without a backward). */
  readonly draft: Eagle3Draft;
  /** Unrolled steps. */
  readonly steps: number;
  /** Step weight base (0.8). */
  readonly stepDecay: number;
  /** Loss weight of each step. */
  readonly stepWeights: readonly number[];
  /** Whether the carried hidden state is detached. */
  readonly detachHidden: boolean;
  /** Most sequences per batch. */
  readonly maxBatch: number;
  /** Most tokens per sequence. */
  readonly maxSeqLen: number;
  /** The optimizer the backward records into (null with `backward: false`). */
  readonly optimizer: DraftOptimizer | null;
  /** (18) f32 metrics of the last step: plosses[8], acces[8], loss, gradNorm. */
  readonly metrics: Tensor;
  /** Hard-label rows (option `hardLabels`), else null. */
  readonly hard: TttHardRows | null;

  readonly #gpu: GpuDevice;
  readonly #arena: BufferArena;
  readonly #ownsOptimizer: boolean;
  readonly #zeroNorm: Tensor; // (1) f32 zero: the gradient norm of a forward-only objective
  // Inputs and per-batch state.
  readonly #ids: Tensor; // (Mmax) u32
  readonly #lm: Tensor; // (Mmax) f32
  readonly #t2d: Tensor; // (V) u32
  readonly #feats: Tensor; // (Mmax, n·Ht)
  readonly #tp: Tensor; // (B·(S+1), Vd) soft targets, per sequence S rows + 1 uniform row
  readonly #tpStep: Tensor; // (Mmax, Vd) soft targets of the current step
  readonly #inVocab: Tensor; // (Mmax) f32
  readonly #targ: Tensor; // (Mmax) u32
  readonly #idsAll: Tensor; // (steps·Mpad) u32
  readonly #posAll: Tensor; // (steps·Mpad) u32
  readonly #wAll: Tensor; // (steps·Mpad) f32
  readonly #lossAll: Tensor; // (steps·Mpad) f32
  readonly #dArg: Tensor; // (steps·Mpad) u32
  // Activations.
  readonly #hs: Tensor[]; // h_0..h_steps, (Mmax, H)
  readonly #acts: StepActs[];
  readonly #kAll: Tensor; // (steps·Mpad, nKV·hd)
  readonly #vAll: Tensor;
  readonly #fn: Tensor; // (Mmax, H) final norm output
  readonly #logits: Tensor; // (Mmax, Vd), dLogits in place
  // Backward only (null with backward: false).
  readonly #dK: Tensor | null; // (steps·Mpad, nKV·hd)
  readonly #dV: Tensor | null;
  readonly #scratch: DraftLayerGradScratch | null; // Mmax rows each
  readonly #targetKv: KvCache; // (maxSeqLen rows) the target pass's KV cache

  private constructor(gpu: GpuDevice, target: LlamaModel, draft: Eagle3Draft, opts: TttOptions) {
    this.#gpu = gpu;
    this.target = target;
    this.draft = draft;
    this.steps = opts.steps ?? TTT_DEFAULT_STEPS;
    this.stepDecay = opts.stepDecay ?? 0.8;
    this.detachHidden = opts.detachHidden ?? false;
    this.maxBatch = opts.maxBatch;
    this.maxSeqLen = opts.maxSeqLen;
    const backward = opts.backward ?? true;
    const cfg = draft.config;
    const tc = target.config;
    if (!Number.isInteger(this.steps) || this.steps < 1 || this.steps > TTT_MAX_STEPS) {
      throw new ShapeError(`TttTrainer: steps ${this.steps} must be in [1, ${TTT_MAX_STEPS}]`);
    }
    this.stepWeights = opts.stepWeights
      ? [...opts.stepWeights]
      : Array.from({ length: this.steps }, (_, k) => this.stepDecay ** k);
    if (this.stepWeights.length !== this.steps || this.stepWeights.some((w) => !(w >= 0 && w < Infinity))) {
      throw new ShapeError(
        `TttTrainer: stepWeights [${this.stepWeights}] must hold ${this.steps} finite weights ≥ 0`,
      );
    }
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) {
      throw new ShapeError(`TttTrainer: maxBatch ${this.maxBatch} must be ≥ 1`);
    }
    if (!Number.isInteger(this.maxSeqLen) || this.maxSeqLen < 2 || this.maxSeqLen > target.maxSeqLen) {
      throw new ShapeError(
        `TttTrainer: maxSeqLen ${this.maxSeqLen} must be in [2, ${target.maxSeqLen}] (the target's KV cache)`,
      );
    }
    if (cfg.vocabSize !== tc.vocabSize || cfg.targetHiddenSize !== tc.hiddenSize) {
      throw new ShapeError(
        `TttTrainer: draft (V ${cfg.vocabSize}, target hidden ${cfg.targetHiddenSize}) does not match the ` +
          `target (V ${tc.vocabSize}, hidden ${tc.hiddenSize})`,
      );
    }
    if (opts.optimizer && (!backward || opts.optimizer.draft !== draft)) {
      throw new ShapeError("TttTrainer: optimizer must belong to this draft (and needs backward: true)");
    }
    const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: hd } = cfg;
    const Vd = cfg.draftVocabSize, V = cfg.vocabSize;
    const N = (nH + 2 * nKV) * hd, kv = nKV * hd, F = cfg.auxLayerIds.length * cfg.targetHiddenSize;
    const Mmax = this.maxBatch * this.maxSeqLen, steps = this.steps;
    const mpad = Math.ceil(Mmax / 64) * 64;

    // Every buffer, listed once: the arena is sized from this list, then allocated in its order.
    const plan: [string, number[], DType][] = [];
    const want = (name: string, shape: number[], dtype: DType = "f32"): number => {
      plan.push([name, shape, dtype]);
      return plan.length - 1;
    };
    const iMetrics = want("ttt_metrics", [METRIC_WORDS]);
    const iZero = want("ttt_zero_norm", [1]);
    const iIds = want("ttt_ids", [Mmax], "u32");
    const iLm = want("ttt_loss_mask", [Mmax]);
    const iT2d = want("ttt_t2d", [V], "u32");
    const iFeats = want("ttt_features", [Mmax, F]);
    const iTp = want("ttt_target_probs", [this.maxBatch * (this.maxSeqLen + 1), Vd]);
    const iTpStep = want("ttt_step_probs", [Mmax, Vd]);
    const iInVocab = want("ttt_in_vocab", [Mmax]);
    const iTarg = want("ttt_target_argmax", [Mmax], "u32");
    const iIdsAll = want("ttt_step_ids", [steps * mpad], "u32");
    const iPosAll = want("ttt_step_pos", [steps * mpad], "u32");
    const iWAll = want("ttt_step_weight", [steps * mpad]);
    const iLossAll = want("ttt_step_loss", [steps * mpad]);
    const iHard = opts.hardLabels
      ? [
        want("ttt_hard_labels", [steps * mpad], "u32"),
        want("ttt_hard_weights", [steps * mpad]),
        want("ttt_hard_loss", [steps * mpad]),
      ]
      : null;
    const iDArg = want("ttt_step_argmax", [steps * mpad], "u32");
    const iHs = Array.from({ length: steps + 1 }, (_, k) => want(`ttt_h${k}`, [Mmax, H]));
    // Forward-only: one activation record serves every step (nothing reads it back).
    const recorded = backward ? steps : 1;
    const iActs = Array.from({ length: recorded }, (_, k) => ({
      emb: want(`ttt_emb${k}`, [Mmax, H]),
      en: want(`ttt_en${k}`, [Mmax, H]),
      hn: want(`ttt_hn${k}`, [Mmax, H]),
      q: want(`ttt_q${k}`, [Mmax, nH * hd]),
      att: want(`ttt_att${k}`, [Mmax, nH * hd]),
      y: want(`ttt_y${k}`, [Mmax, H]),
      xn: want(`ttt_xn${k}`, [Mmax, H]),
      gu: want(`ttt_gu${k}`, [Mmax, 2 * I]),
      act: want(`ttt_act${k}`, [Mmax, I]),
      dOut: backward ? want(`ttt_dout${k}`, [Mmax, H]) : -1,
    }));
    const iK = want("ttt_keys", [steps * mpad, kv]);
    const iV = want("ttt_values", [steps * mpad, kv]);
    const iQkv = want("ttt_qkv", [Mmax, N]);
    const iFn = want("ttt_final_norm", [Mmax, H]);
    const iLogits = want("ttt_logits", [Mmax, Vd]);
    const iBwd = backward
      ? {
        dK: want("ttt_dkeys", [steps * mpad, kv]),
        dV: want("ttt_dvalues", [steps * mpad, kv]),
        dAct: want("ttt_d_act", [Mmax, I]),
        dGateUp: want("ttt_d_gate_up", [Mmax, 2 * I]),
        dH: want("ttt_d_h", [Mmax, H]),
        dH2: want("ttt_d_h2", [Mmax, H]),
        dAtt: want("ttt_d_att", [Mmax, nH * hd]),
        dq: want("ttt_d_q", [Mmax, nH * hd]),
      }
      : null;
    const bytesOf = (shape: number[]) => Math.ceil((4 * shape.reduce((a, b) => a * b, 1)) / 256) * 256;
    this.#arena = new BufferArena(gpu, plan.reduce((s, [, shape]) => s + bytesOf(shape), 0), "ttt");
    const t = plan.map(([name, shape, dtype]) => this.#arena.alloc(shape, dtype, name));

    this.metrics = t[iMetrics];
    this.#zeroNorm = t[iZero];
    writeTensor(gpu, this.#zeroNorm, new Float32Array(1));
    this.#ids = t[iIds];
    this.#lm = t[iLm];
    this.#t2d = t[iT2d];
    writeTensor(gpu, this.#t2d, Uint32Array.from(draft.t2d));
    this.#feats = t[iFeats];
    this.#tp = t[iTp];
    this.#tpStep = t[iTpStep];
    this.#inVocab = t[iInVocab];
    this.#targ = t[iTarg];
    this.#idsAll = t[iIdsAll];
    this.#posAll = t[iPosAll];
    this.#wAll = t[iWAll];
    this.#lossAll = t[iLossAll];
    this.hard = iHard && { labels: t[iHard[0]], weights: t[iHard[1]], loss: t[iHard[2]] };
    this.#dArg = t[iDArg];
    this.#hs = iHs.map((i) => t[i]);
    this.#kAll = t[iK];
    this.#vAll = t[iV];
    const qkv = t[iQkv];
    this.#acts = Array.from({ length: steps }, (_, k) => {
      const a = iActs[backward ? k : 0];
      return {
        emb: t[a.emb],
        en: t[a.en],
        hn: t[a.hn],
        qkv,
        q: t[a.q],
        att: t[a.att],
        y: t[a.y],
        xn: t[a.xn],
        gu: t[a.gu],
        act: t[a.act],
        dOut: a.dOut >= 0 ? t[a.dOut] : null,
      };
    });
    this.#fn = t[iFn];
    this.#logits = t[iLogits];
    if (iBwd) {
      this.#dK = t[iBwd.dK];
      this.#dV = t[iBwd.dV];
      this.#scratch = {
        dqkv: qkv,
        dAct: t[iBwd.dAct],
        dGateUp: t[iBwd.dGateUp],
        dH: t[iBwd.dH],
        dH2: t[iBwd.dH2],
        dAtt: t[iBwd.dAtt],
        dq: t[iBwd.dq],
      };
    } else {
      this.#dK = this.#dV = this.#scratch = null;
    }
    this.#ownsOptimizer = backward && !opts.optimizer;
    this.optimizer = backward ? opts.optimizer ?? DraftOptimizer.create(gpu, draft) : null;
    this.#targetKv = target.createKvCache(this.maxSeqLen, "ttt_target_kv");
  }

  /**
   * A trainer for `draft` against `target` with workspace for batches of up to maxBatch × maxSeqLen
   * tokens. The draft's feature taps must exist in the target and its vocabulary must match.
   */
  static create(gpu: GpuDevice, target: LlamaModel, draft: Eagle3Draft, opts: TttOptions): TttTrainer {
    return new TttTrainer(gpu, target, draft, opts);
  }

  /** Gradients of the last recorded step, one tensor per weight (the optimizer's). */
  get grads(): Readonly<Eagle3GpuWeights> {
    return this.#opt("grads").grads;
  }

  /** All gradients as one f32 vector aligned with `draft.params` (null when params is null). */
  get flatGrad(): Tensor | null {
    return this.#opt("flatGrad").flatGrad;
  }

  /** (1) f32 squared global gradient norm of the last step (the optimizer's). */
  get normSq(): Tensor {
    return this.optimizer?.normSq ?? this.#zeroNorm;
  }

  /** AdamW steps taken (torch `state["step"]`; the optimizer's). */
  get optimizerSteps(): number {
    return this.optimizer?.steps ?? 0;
  }
  set optimizerSteps(n: number) {
    this.#opt("optimizerSteps").steps = n;
  }

  /** Record gradients, clipping + AdamW and the metrics for one batch (nothing is read back). */
  step(rec: Recorder, batch: TttBatch, opts: TttUpdateOptions): void {
    this.recordGradients(rec, batch);
    this.recordUpdate(rec, opts);
  }

  /**
   * Record a whole gradient computation: zero the optimizer's gradients, {@link recordObjective},
   * the squared gradient norm and the metrics (no parameter update). Without a backward: the
   * forward, the losses and the metrics.
   */
  recordGradients(rec: Recorder, batch: TttBatch): void {
    this.optimizer?.zeroGrad();
    this.recordObjective(rec, batch);
    this.optimizer?.recordGradNorm(rec);
    this.recordMetrics(rec, batch);
  }

  /**
   * Record the target pass, the unrolled forward and (with a backward) the backward, writing or
   * adding into the optimizer's gradients per its {@link DraftOptimizer.claim} protocol: no
   * zeroing, no norm, no metrics, no update (a second objective may add into the same gradients).
   */
  recordObjective(rec: Recorder, batch: TttBatch): void {
    const { B, S } = this.#checkBatch(batch);
    const M = B * S;
    const V = this.draft.config.vocabSize;
    const ids = new Uint32Array(M);
    for (let i = 0; i < M; i++) {
      const id = batch.ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new ShapeError(`TttTrainer: token id ${id} at ${i} is outside the vocabulary (${V})`);
      }
      ids[i] = id;
    }
    writeTensor(this.#gpu, this.#ids.rows(M), ids);
    writeTensor(this.#gpu, this.#lm.rows(M), Float32Array.from(batch.lossMask));
    this.#targetPass(rec, B, S);
    this.#stepPrep(rec, B, S);
    this.#forwardBackward(rec, B, S);
  }

  /** Record the metrics reduction of the last {@link recordObjective} (with the optimizer's norm). */
  recordMetrics(rec: Recorder, batch: Pick<TttBatch, "batch" | "seqLen">): void {
    const { B, S } = this.#checkBatch(batch);
    const M = B * S, mpad = this.#mpad(M);
    const inv = Array.from(
      { length: TTT_MAX_STEPS },
      (_, k) => k < this.steps && this.stepWeights[k] > 0 ? 1 / this.stepWeights[k] : 0,
    );
    rec.dispatch(
      this.#kernel(rec, "metrics", 7, "uuuu" + "f".repeat(TTT_MAX_STEPS)),
      [this.#lossAll, this.#wAll, this.#dArg, this.#targ, this.#lm, this.normSq, this.metrics],
      [M, S, mpad, this.steps, ...inv],
      [1],
    );
  }

  /** Record clipping (by the norm of the last {@link recordGradients}) and one AdamW step. */
  recordUpdate(rec: Recorder, opts: TttUpdateOptions): void {
    this.#opt("recordUpdate").recordUpdate(rec, opts);
  }

  /** Submit and read the metrics of the last recorded step. */
  async readMetrics(rec: Recorder): Promise<TttMetrics> {
    const m = await rec.readF32(this.metrics);
    const n = TTT_MAX_STEPS;
    return {
      plosses: Array.from(m.subarray(0, this.steps)),
      acces: Array.from(m.subarray(n, n + this.steps)),
      loss: m[2 * n],
      gradNorm: m[2 * n + 1],
    };
  }

  /** Elements of each moment vector of {@link TttOptimizerState} (Σ of the weight sizes). */
  get optimizerStateSize(): number {
    return this.#opt("optimizerStateSize").stateSize;
  }

  /** The optimizer's {@link DraftOptimizer.exportState}. */
  exportState(rec: Recorder): Promise<TttOptimizerState> {
    return this.#opt("exportState").exportState(rec);
  }

  /** The optimizer's {@link DraftOptimizer.importState}. */
  importState(state: TttOptimizerState): void {
    this.#opt("importState").importState(state);
  }

  /** Free the trainer's GPU memory and its own optimizer's (not the target's, the draft's or a shared optimizer's). */
  destroy(): void {
    this.#arena.destroy();
    this.#targetKv.destroy();
    if (this.#ownsOptimizer) this.optimizer?.destroy();
  }

  #opt(what: string): DraftOptimizer {
    if (!this.optimizer) {
      throw new ShapeError(`TttTrainer.${what}: this objective was created with backward: false`);
    }
    return this.optimizer;
  }

  #checkBatch(batch: Pick<TttBatch, "batch" | "seqLen">): { B: number; S: number } {
    const { batch: B, seqLen: S } = batch;
    if (!Number.isInteger(B) || B < 1 || B > this.maxBatch) {
      throw new ShapeError(`TttTrainer: batch ${B} must be in [1, ${this.maxBatch}]`);
    }
    if (!Number.isInteger(S) || S < 2 || S > this.maxSeqLen) {
      throw new ShapeError(`TttTrainer: seqLen ${S} must be in [2, ${this.maxSeqLen}]`);
    }
    const b = batch as Partial<TttBatch>;
    if (b.ids && b.lossMask && (b.ids.length !== B * S || b.lossMask.length !== B * S)) {
      throw new ShapeError(
        `TttTrainer: ids (${b.ids.length}) and lossMask (${b.lossMask.length}) must hold B·S = ${B * S}`,
      );
    }
    return { B, S };
  }

  /** Elements between consecutive steps' rows for a batch of B·S rows (see {@link TttHardRows}). */
  rowStride(batch: Pick<TttBatch, "batch" | "seqLen">): number {
    return this.#mpad(batch.batch * batch.seqLen);
  }

  #mpad(M: number): number {
    return Math.ceil(M / 64) * 64;
  }

  #kernel(rec: Recorder, entry: string, storage: number, params: string) {
    return memoKernel(rec, `ttt_${entry}`, () => ({
      name: `ttt_${entry}`,
      code: TTT_WGSL,
      entryPoint: entry,
      storage: new Array<"rw">(storage).fill("rw"),
      params,
    }));
  }

  #targetPass(rec: Recorder, B: number, S: number): void {
    const cfg = this.draft.config;
    const Ht = cfg.targetHiddenSize, F = cfg.auxLayerIds.length * Ht, Vd = cfg.draftVocabSize;
    const V = cfg.vocabSize;
    const prep = this.#kernel(rec, "target_prep", 6, "uuuuu");
    const chunk = this.target.maxBatch;
    for (let b = 0; b < B; b++) {
      for (let at = 0; at < S; at += chunk) {
        const T = Math.min(chunk, S - at);
        const row0 = b * S + at;
        const logits = this.target.forward(rec, this.#targetKv, this.#ids, row0, T, at, {
          logits: "all",
          capture: cfg.auxLayerIds.map((layer, i) => ({
            layer,
            dst: this.#feats,
            offset: row0 * F + i * Ht,
            stride: F,
          })),
        })!; // (T, V)
        rec.dispatch(
          prep,
          [logits, this.#t2d, this.draft.draftToTarget, this.#tp, this.#inVocab, this.#targ],
          [V, Vd, b * (S + 1) + at, T, row0],
          rowGrid(rec, T),
        );
      }
    }
    // The row after each sequence: a zero-filled logits row's softmax is uniform.
    rec.dispatch(
      this.#kernel(rec, "fill_rows", 1, "uuuuf"),
      [this.#tp],
      [B, S + 1, S, Vd, 1 / Vd],
      grid1d(B * Vd, 256, rec.gpu.limits.maxComputeWorkgroupsPerDimension),
    );
  }

  #stepPrep(rec: Recorder, B: number, S: number): void {
    const M = B * S, mpad = this.#mpad(M);
    const c = Array.from({ length: TTT_MAX_STEPS }, (_, k) => k < this.steps ? this.stepWeights[k] / M : 0);
    const t2d0 = this.draft.t2d[0] ? 1 : 0;
    rec.dispatch(
      this.#kernel(rec, "step_prep", 6, "uuuuf" + "f".repeat(TTT_MAX_STEPS)),
      [this.#ids, this.#lm, this.#inVocab, this.#idsAll, this.#posAll, this.#wAll],
      [M, S, mpad, this.steps, t2d0, ...c],
      grid1d(this.steps * mpad, 256, rec.gpu.limits.maxComputeWorkgroupsPerDimension),
    );
  }

  #forwardBackward(rec: Recorder, B: number, S: number): void {
    const draft = this.draft, cfg = draft.config, opt = this.optimizer;
    const Vd = cfg.draftVocabSize;
    const M = B * S, mpad = this.#mpad(M);
    const w = draft.weights;
    // Views at element offset `off` (per-step offsets are multiples of 64 rows: 256-byte aligned).
    const view = (t: Tensor, off: number, shape: number[], dtype: "f32" | "u32" = "f32") =>
      new Tensor(t.buffer, t.offset + 4 * off, shape, dtype, t.name);
    const posK = (k: number) => view(this.#posAll, k * mpad, [M], "u32");
    const kAll = this.#kAll, vAll = this.#vAll;
    const fn = this.#fn.rows(M), logits = this.#logits.rows(M), tpStep = this.#tpStep.rows(M);
    const rowsOf = (a: StepActs): DraftLayerActs => ({
      emb: a.emb.rows(M),
      en: a.en.rows(M),
      hn: a.hn.rows(M),
      qkv: a.qkv.rows(M),
      q: a.q.rows(M),
      att: a.att.rows(M),
      y: a.y.rows(M),
      xn: a.xn.rows(M),
      gu: a.gu.rows(M),
      act: a.act.rows(M),
    });
    const attn = (k: number) => ({ kvLen: k * mpad + M, ttt: { seqLen: S, steps: k, stepStride: mpad } });
    const rope = (k: number) => ({ cacheRow: k * mpad, positions: posK(k) });
    const sc = this.#scratch;
    const scratch: DraftLayerGradScratch | null = sc && {
      dqkv: sc.dqkv.rows(M),
      dAct: sc.dAct.rows(M),
      dGateUp: sc.dGateUp.rows(M),
      dH: sc.dH.rows(M),
      dH2: sc.dH2.rows(M),
      dAtt: sc.dAtt.rows(M),
      dq: sc.dq.rows(M),
    };

    // fc: h_0 = fc(g).
    linear(rec, this.#hs[0].rows(M), this.#feats.rows(M), w.fc);
    for (let k = 0; k < this.steps; k++) {
      const a = this.#acts[k];
      const out = this.#hs[k + 1].rows(M);
      draftLayerForward(rec, draft, rowsOf(a), {
        hidden: this.#hs[k].rows(M),
        ids: this.#idsAll,
        idsOffset: k * mpad,
        kCache: kAll,
        vCache: vAll,
        rope: rope(k),
        attention: attn(k),
        out,
      });
      draftHeadForward(rec, draft, logits, fn, out);
      argmax(rec, this.#dArg, logits, { outOffset: k * mpad });
      // Soft targets of step k: rows t+k+1 of each sequence (the last copied row is the uniform one).
      for (let b = 0; b < B; b++) {
        copyRows(
          rec,
          tpStep,
          { offset: b * S * Vd, stride: Vd },
          this.#tp,
          {
            offset: (b * (S + 1) + k + 1) * Vd,
            stride: Vd,
          },
          S - k,
          Vd,
        );
      }
      const loss = view(this.#lossAll, k * mpad, [M]);
      const wK = view(this.#wAll, k * mpad, [M]);
      const hr = this.hard;
      softCrossEntropy(
        rec,
        loss,
        logits,
        logits,
        tpStep,
        wK,
        hr
          ? {
            labels: view(hr.labels, k * mpad, [M], "u32"),
            weights: view(hr.weights, k * mpad, [M]),
            loss: view(hr.loss, k * mpad, [M]),
          }
          : undefined,
      );
      if (opt && scratch) {
        draftHeadBackward(rec, draft, opt, {
          dLogits: logits,
          normed: fn,
          x: out,
          dX: a.dOut!.rows(M),
          dNormed: scratch.dH,
        });
      }
    }
    if (!opt || !scratch || !this.#dK || !this.#dV) return;

    for (let k = this.steps - 1; k >= 0; k--) {
      const a = this.#acts[k];
      const h = this.#hs[k].rows(M);
      const dOut = a.dOut!.rows(M); // complete: this step's loss + later steps (added below)
      draftLayerBackward(rec, draft, rowsOf(a), opt, {
        dOut,
        hidden: h,
        kCache: kAll,
        vCache: vAll,
        dK: this.#dK,
        dV: this.#dV,
        accumulateKv: k < this.steps - 1,
        rope: rope(k),
        attention: attn(k),
        scratch,
      });
      if (k > 0) {
        if (!this.detachHidden) {
          const prev = this.#acts[k - 1].dOut!.rows(M);
          add(rec, prev, prev, dOut);
        }
      } else {
        linearBackward(rec, null, opt.grads.fc, dOut, this.#feats.rows(M), w.fc, {
          accumulateDw: opt.claim("fc"),
        });
      }
    }
  }
}
