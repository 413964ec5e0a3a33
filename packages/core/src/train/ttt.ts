/**
 * The EAGLE-3 Phase-I training step ("training-time test", TTT) on the GPU, following EAGLE's own
 * training code (`eagle/traineagle3/cnets.py` `Model.forward` + `main.py`'s loss combination):
 *
 * 1. Target pass over the batch (B sequences of S tokens): the hidden states entering the layers
 *    `draft.config.auxLayerIds` are captured into features g (B·S, n·Ht); the target logits are
 *    turned into soft targets over the draft vocabulary (`target_prep`, kernels/ttt.wgsl).
 * 2. Seven unrolled draft steps k = 0..6. Position t of step k embeds x[t+k+1], has hidden input
 *    fc(g) at k = 0 and the previous step's pre-norm output otherwise, sits at RoPE position t + k,
 *    and attends to the step-0 keys at positions ≤ t plus its own position's key of each step
 *    1..k (one softmax). Its target is softmax(target logits of t+k+1 restricted to the draft
 *    vocabulary), its position mask t2d[argmax target logits] × lm[t+k] (zero fill past the end:
 *    argmax 0, uniform target). plosses[k] = −mean over all B·S positions of mask·Σ p·log q;
 *    loss = Σ 0.8^k plosses[k].
 * 3. Explicit backward through all steps (the hidden state carried between steps is *not* detached,
 *    as in EAGLE: `hidden_states = hidden_states_out`; `detachHidden` switches that off), into one
 *    flat gradient buffer laid out like `draft.params`; global norm, clipping to 0.5 and AdamW
 *    (β 0.9/0.95) on the GPU; the metrics (16 f32) are reduced on the GPU and read only on request.
 *
 * Layout: all B·S rows of a step are processed by each op at once. Keys/values of step j live in
 * rows [j·Mpad, j·Mpad + M) of one (7·Mpad, nKV·hd) buffer (Mpad = M rounded up to 64, so every
 * per-step view is 256-byte aligned); the attention of step k runs over keys [0, k·Mpad + M) with a
 * bitset mask that is block-diagonal over the sequences ({@link tttBatchMask}). All activations the
 * backward needs are kept per step; lm_head and the final norm are differentiated right after each
 * step's loss, so only one (M, Vd) logits buffer exists. Every GPU buffer is allocated in
 * {@link TttTrainer.create} for the maximum (B, S); a step creates no GPU object (masks are
 * re-uploaded only when (B, S) changes).
 * @module
 */
import { TTT_WGSL } from "@gto/kernels";
import type { GpuDevice } from "../gpu/device.ts";
import { BufferArena, writeTensor } from "../gpu/arena.ts";
import type { Recorder } from "../gpu/recorder.ts";
import { Tensor } from "../gpu/tensor.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { KvCache } from "../model/kv_cache.ts";
import type { Eagle3Draft, Eagle3GpuWeights } from "../model/eagle3.ts";
import { ShapeError } from "../errors.ts";
import { linear } from "../ops/linear.ts";
import { rmsNorm } from "../ops/norm.ts";
import { swiglu } from "../ops/activation.ts";
import { embedding } from "../ops/embedding.ts";
import { attention } from "../ops/attention.ts";
import { ropeQkv } from "../ops/rope.ts";
import { add, copyRows } from "../ops/elementwise.ts";
import { argmax } from "../ops/select.ts";
import { grid1d } from "../ops/dispatch.ts";
import { memoKernel, rowGrid } from "../ops/kernel_memo.ts";
import {
  linearBackward,
  rmsNormBackward,
  ropeBackward,
  softCrossEntropy,
  swigluBackward,
} from "./backward.ts";
import { attentionBackward } from "./attention_bwd.ts";
import { adamw, globalNormSq } from "./optim.ts";

/** Most unrolled steps (EAGLE-3 uses 7). */
export const TTT_MAX_STEPS = 7;

/** Names of the draft's GPU weights, in {@link Eagle3GpuWeights} order. */
export const TTT_WEIGHT_KEYS: readonly (keyof Eagle3GpuWeights)[] = [
  "fc",
  "inputNorm",
  "hiddenNorm",
  "qkvEmb",
  "qkvHidden",
  "o",
  "postNorm",
  "gateUp",
  "down",
  "norm",
  "lmHead",
];

/** Sizes and semantics of a {@link TttTrainer}. */
export interface TttOptions {
  /** Most sequences per batch. */
  maxBatch: number;
  /** Most tokens per sequence. */
  maxSeqLen: number;
  /** Unrolled steps (1..7, default 7). */
  steps?: number;
  /** Weight of step k is stepDecay^k (default 0.8). */
  stepDecay?: number;
  /** Detach the hidden state carried between steps (default false, as EAGLE). */
  detachHidden?: boolean;
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
export interface TttUpdateOptions {
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

/** What {@link TttTrainer.readMetrics} returns (of the last recorded step). */
export interface TttMetrics {
  /** Per-step losses plosses[k] (length = steps). */
  plosses: number[];
  /** Per-step accuracies acces[k]. */
  acces: number[];
  /** Σ_k stepDecay^k · plosses[k]. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
}

/**
 * The packed (M, ⌈(k·mpad + M)/32⌉) u32 bitset mask of TTT step k over B sequences of S tokens
 * (M = B·S; keys of step j at rows j·mpad..): query b·S + t sees step-0 keys b·S + t' for t' ≤ t and
 * the key j·mpad + b·S + t of each step j = 1..k. For B = 1 and mpad = S this is
 * `packMask(tttMask(S, k))`.
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

interface StepActs {
  embRaw: Tensor; // (M, H) embedding rows
  en: Tensor; // (M, H) input_layernorm(embedding)
  hn: Tensor; // (M, H) hidden_norm(h_k)
  q: Tensor; // (M, nH·hd) after RoPE
  att: Tensor; // (M, nH·hd) attention output
  y: Tensor; // (M, H) h_k + o_proj(att)
  xn: Tensor; // (M, H) post_attention_layernorm(y)
  gu: Tensor; // (M, 2I) [gate | up]
  act: Tensor; // (M, I) silu(gate)·up
  dOut: Tensor; // (M, H) gradient w.r.t. out_k (loss of step k, then + later steps)
  mask: Tensor; // (M, words_k) u32
}

/**
 * The AdamW state of a {@link TttTrainer} on the host, for checkpoints: the first and second moments
 * of every weight concatenated in {@link TTT_WEIGHT_KEYS} order (each tensor's elements row-major,
 * no alignment gaps, so the layout does not depend on how the weights are packed on the GPU) and
 * the number of optimizer steps taken (the bias-correction step).
 */
export interface TttOptimizerState {
  /** AdamW steps taken ({@link TttTrainer.optimizerSteps}). */
  step: number;
  /** First moments, Σ_k size(weight k) f32. */
  m: Float32Array;
  /** Second moments, same layout. */
  v: Float32Array;
}

/** Runs EAGLE-3 TTT steps for one (target, draft) pair; all GPU memory is allocated at creation. */
export class TttTrainer {
  /** The target model (frozen). */
  readonly target: LlamaModel;
  /** The draft being trained. */
  readonly draft: Eagle3Draft;
  /** Unrolled steps. */
  readonly steps: number;
  /** Step weight base (0.8). */
  readonly stepDecay: number;
  /** Whether the carried hidden state is detached. */
  readonly detachHidden: boolean;
  /** Most sequences per batch. */
  readonly maxBatch: number;
  /** Most tokens per sequence. */
  readonly maxSeqLen: number;
  /** Gradients of the last recorded step, one tensor per weight (views of {@link flatGrad} if any). */
  readonly grads: Readonly<Eagle3GpuWeights>;
  /** All gradients as one f32 vector aligned with `draft.params` (null when params is null). */
  readonly flatGrad: Tensor | null;
  /** (16) f32 metrics of the last step: plosses[7], acces[7], loss, gradNorm. */
  readonly metrics: Tensor;
  /** (1) f32 squared global gradient norm of the last step. */
  readonly normSq: Tensor;
  /** AdamW steps taken (torch `state["step"]`). */
  optimizerSteps = 0;

  readonly #gpu: GpuDevice;
  readonly #arena: BufferArena;
  readonly #mpadMax: number;
  readonly #m: Readonly<Eagle3GpuWeights>;
  readonly #v: Readonly<Eagle3GpuWeights>;
  readonly #flatM: Tensor | null;
  readonly #flatV: Tensor | null;
  // Inputs and per-batch state.
  readonly #ids: Tensor; // (Mmax) u32
  readonly #lm: Tensor; // (Mmax) f32
  readonly #t2d: Tensor; // (V) u32
  readonly #feats: Tensor; // (Mmax, n·Ht)
  readonly #tp: Tensor; // (B·(S+1), Vd) soft targets, per sequence S rows + 1 uniform row
  readonly #tpStep: Tensor; // (Mmax, Vd) soft targets of the current step
  readonly #inVocab: Tensor; // (Mmax) f32
  readonly #targ: Tensor; // (Mmax) u32
  readonly #idsAll: Tensor; // (7·Mpad) u32
  readonly #posAll: Tensor; // (7·Mpad) u32
  readonly #wAll: Tensor; // (7·Mpad) f32
  readonly #lossAll: Tensor; // (7·Mpad) f32
  readonly #dArg: Tensor; // (7·Mpad) u32
  // Activations.
  readonly #hs: Tensor[]; // h_0..h_7, (Mmax, H)
  readonly #acts: StepActs[];
  readonly #kAll: Tensor; // (7·Mpad, nKV·hd)
  readonly #vAll: Tensor;
  readonly #dK: Tensor;
  readonly #dV: Tensor;
  readonly #qkv: Tensor; // (Mmax, N) forward scratch / dQkv in backward
  readonly #fn: Tensor; // (Mmax, H) final norm output
  readonly #logits: Tensor; // (Mmax, Vd), dLogits in place
  readonly #dA: Tensor; // (Mmax, I)
  readonly #dGU: Tensor; // (Mmax, 2I)
  readonly #dH: Tensor; // (Mmax, H) scratch gradient (dFn, dXn, dEn, dHn)
  readonly #dH2: Tensor; // (Mmax, H) second scratch (dx of input_layernorm, unused)
  readonly #dQ: Tensor; // (Mmax, nH·hd) dAtt then dq
  readonly #dQ2: Tensor; // (Mmax, nH·hd)
  #maskShape = "";
  readonly #targetKv: KvCache; // (maxSeqLen rows) the target pass's KV cache

  private constructor(gpu: GpuDevice, target: LlamaModel, draft: Eagle3Draft, opts: TttOptions) {
    this.#gpu = gpu;
    this.target = target;
    this.draft = draft;
    this.steps = opts.steps ?? TTT_MAX_STEPS;
    this.stepDecay = opts.stepDecay ?? 0.8;
    this.detachHidden = opts.detachHidden ?? false;
    this.maxBatch = opts.maxBatch;
    this.maxSeqLen = opts.maxSeqLen;
    const cfg = draft.config;
    const tc = target.config;
    if (!Number.isInteger(this.steps) || this.steps < 1 || this.steps > TTT_MAX_STEPS) {
      throw new ShapeError(`TttTrainer: steps ${this.steps} must be in [1, ${TTT_MAX_STEPS}]`);
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
    const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: hd } = cfg;
    const Vd = cfg.draftVocabSize, V = cfg.vocabSize;
    const N = (nH + 2 * nKV) * hd, kv = nKV * hd, F = cfg.auxLayerIds.length * cfg.targetHiddenSize;
    const Mmax = this.maxBatch * this.maxSeqLen;
    const mpad = Math.ceil(Mmax / 64) * 64;
    this.#mpadMax = mpad;
    const w = draft.weights;
    const fl = 4 *
      (Mmax * (H * (8 + 7 * 8) + 2 * I * 7 + I * 7 + 2 * nH * hd * 7 + N + 2 * Vd + F + 4 * nH * hd) +
        4 * 7 * mpad * kv + 6 * 7 * mpad + Vd * (this.maxBatch + Mmax) + V);
    const wbytes = 3 * TTT_WEIGHT_KEYS.reduce((s, k) => s + w[k].byteLength + 256, 0);
    this.#arena = new BufferArena(gpu, fl + wbytes + 200 * 256, "ttt");
    const A = this.#arena;
    // Gradient / moment buffers aligned with draft.params when it exists.
    const params = draft.params;
    const mirror = (label: string): { flat: Tensor | null; views: Eagle3GpuWeights } => {
      if (params) {
        const flat = A.alloc([params.size], "f32", `${label}_flat`);
        const views = {} as Record<keyof Eagle3GpuWeights, Tensor>;
        for (const k of TTT_WEIGHT_KEYS) {
          const rel = w[k].offset - params.offset;
          if (rel % 256 !== 0) {
            throw new ShapeError(`TttTrainer: ${w[k].name} is not 256-byte aligned in params`);
          }
          views[k] = new Tensor(flat.buffer, flat.offset + rel, w[k].shape, "f32", `${label}.${k}`);
        }
        return { flat, views };
      }
      const views = {} as Record<keyof Eagle3GpuWeights, Tensor>;
      for (const k of TTT_WEIGHT_KEYS) views[k] = A.alloc(w[k].shape, "f32", `${label}.${k}`);
      return { flat: null, views };
    };
    const g = mirror("grad"), m = mirror("adam_m"), v = mirror("adam_v");
    this.grads = g.views;
    this.flatGrad = g.flat;
    this.#m = m.views;
    this.#v = v.views;
    this.#flatM = m.flat;
    this.#flatV = v.flat;
    for (const t of [g, m, v]) {
      for (const k of TTT_WEIGHT_KEYS) {
        if (t.flat === null) writeTensor(gpu, t.views[k], new Float32Array(t.views[k].size));
      }
      if (t.flat) writeTensor(gpu, t.flat, new Float32Array(t.flat.size));
    }
    this.metrics = A.alloc([16], "f32", "ttt_metrics");
    this.normSq = A.alloc([1], "f32", "ttt_norm_sq");
    this.#ids = A.alloc([Mmax], "u32", "ttt_ids");
    this.#lm = A.alloc([Mmax], "f32", "ttt_loss_mask");
    this.#t2d = A.upload(Uint32Array.from(draft.t2d), [V], "u32", "ttt_t2d");
    this.#feats = A.alloc([Mmax, F], "f32", "ttt_features");
    this.#tp = A.alloc([this.maxBatch * (this.maxSeqLen + 1), Vd], "f32", "ttt_target_probs");
    this.#tpStep = A.alloc([Mmax, Vd], "f32", "ttt_step_probs");
    this.#inVocab = A.alloc([Mmax], "f32", "ttt_in_vocab");
    this.#targ = A.alloc([Mmax], "u32", "ttt_target_argmax");
    this.#idsAll = A.alloc([7 * mpad], "u32", "ttt_step_ids");
    this.#posAll = A.alloc([7 * mpad], "u32", "ttt_step_pos");
    this.#wAll = A.alloc([7 * mpad], "f32", "ttt_step_weight");
    this.#lossAll = A.alloc([7 * mpad], "f32", "ttt_step_loss");
    this.#dArg = A.alloc([7 * mpad], "u32", "ttt_step_argmax");
    this.#hs = [];
    for (let k = 0; k <= TTT_MAX_STEPS; k++) this.#hs.push(A.alloc([Mmax, H], "f32", `ttt_h${k}`));
    this.#acts = [];
    for (let k = 0; k < this.steps; k++) {
      this.#acts.push({
        embRaw: A.alloc([Mmax, H], "f32", `ttt_emb${k}`),
        en: A.alloc([Mmax, H], "f32", `ttt_en${k}`),
        hn: A.alloc([Mmax, H], "f32", `ttt_hn${k}`),
        q: A.alloc([Mmax, nH * hd], "f32", `ttt_q${k}`),
        att: A.alloc([Mmax, nH * hd], "f32", `ttt_att${k}`),
        y: A.alloc([Mmax, H], "f32", `ttt_y${k}`),
        xn: A.alloc([Mmax, H], "f32", `ttt_xn${k}`),
        gu: A.alloc([Mmax, 2 * I], "f32", `ttt_gu${k}`),
        act: A.alloc([Mmax, I], "f32", `ttt_act${k}`),
        dOut: A.alloc([Mmax, H], "f32", `ttt_dout${k}`),
        mask: A.alloc([Mmax * Math.ceil((k * mpad + Mmax) / 32)], "u32", `ttt_mask${k}`),
      });
    }
    this.#kAll = A.alloc([7 * mpad, kv], "f32", "ttt_keys");
    this.#vAll = A.alloc([7 * mpad, kv], "f32", "ttt_values");
    this.#dK = A.alloc([7 * mpad, kv], "f32", "ttt_dkeys");
    this.#dV = A.alloc([7 * mpad, kv], "f32", "ttt_dvalues");
    this.#qkv = A.alloc([Mmax, N], "f32", "ttt_qkv");
    this.#fn = A.alloc([Mmax, H], "f32", "ttt_final_norm");
    this.#logits = A.alloc([Mmax, Vd], "f32", "ttt_logits");
    this.#dA = A.alloc([Mmax, I], "f32", "ttt_d_act");
    this.#dGU = A.alloc([Mmax, 2 * I], "f32", "ttt_d_gate_up");
    this.#dH = A.alloc([Mmax, H], "f32", "ttt_d_h");
    this.#dH2 = A.alloc([Mmax, H], "f32", "ttt_d_h2");
    this.#dQ = A.alloc([Mmax, nH * hd], "f32", "ttt_d_att");
    this.#dQ2 = A.alloc([Mmax, nH * hd], "f32", "ttt_d_q");
    this.#targetKv = target.createKvCache(this.maxSeqLen, "ttt_target_kv");
  }

  /**
   * A trainer for `draft` against `target` with workspace for batches of up to maxBatch × maxSeqLen
   * tokens. The draft's feature taps must exist in the target and its vocabulary must match.
   */
  static create(gpu: GpuDevice, target: LlamaModel, draft: Eagle3Draft, opts: TttOptions): TttTrainer {
    return new TttTrainer(gpu, target, draft, opts);
  }

  /** Record gradients, clipping + AdamW and the metrics for one batch (nothing is read back). */
  step(rec: Recorder, batch: TttBatch, opts: TttUpdateOptions): void {
    this.recordGradients(rec, batch);
    this.recordUpdate(rec, opts);
  }

  /**
   * Record the target pass, the unrolled forward, the backward into {@link grads}, the squared
   * gradient norm and the metrics buffer (no parameter update).
   */
  recordGradients(rec: Recorder, batch: TttBatch): void {
    const { batch: B, seqLen: S } = batch;
    if (!Number.isInteger(B) || B < 1 || B > this.maxBatch) {
      throw new ShapeError(`TttTrainer: batch ${B} must be in [1, ${this.maxBatch}]`);
    }
    if (!Number.isInteger(S) || S < 2 || S > this.maxSeqLen) {
      throw new ShapeError(`TttTrainer: seqLen ${S} must be in [2, ${this.maxSeqLen}]`);
    }
    const M = B * S;
    if (batch.ids.length !== M || batch.lossMask.length !== M) {
      throw new ShapeError(
        `TttTrainer: ids (${batch.ids.length}) and lossMask (${batch.lossMask.length}) must hold B·S = ${M}`,
      );
    }
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
    this.#uploadMasks(B, S);
    this.#targetPass(rec, B, S);
    this.#stepPrep(rec, B, S);
    this.#forwardBackward(rec, B, S);
    const gradList = this.flatGrad ?? TTT_WEIGHT_KEYS.map((k) => this.grads[k]);
    globalNormSq(rec, this.normSq, gradList);
    this.#recordMetrics(rec, B, S);
  }

  /** Record clipping (by the norm of the last {@link recordGradients}) and one AdamW step. */
  recordUpdate(rec: Recorder, opts: TttUpdateOptions): void {
    this.optimizerSteps++;
    const w = this.draft.weights;
    const o = {
      lr: opts.lr,
      beta1: opts.beta1 ?? 0.9,
      beta2: opts.beta2 ?? 0.95,
      eps: opts.eps ?? 1e-8,
      weightDecay: opts.weightDecay ?? 0,
      step: this.optimizerSteps,
      clipScaleFrom: this.normSq,
      maxNorm: opts.maxGradNorm ?? 0.5,
    };
    if (this.draft.params && this.flatGrad && this.#flatM && this.#flatV) {
      adamw(rec, this.draft.params, this.flatGrad, this.#flatM, this.#flatV, o);
    } else {
      const ks = TTT_WEIGHT_KEYS;
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

  /** Submit and read the metrics of the last recorded step. */
  async readMetrics(rec: Recorder): Promise<TttMetrics> {
    const m = await rec.readF32(this.metrics);
    return {
      plosses: Array.from(m.subarray(0, this.steps)),
      acces: Array.from(m.subarray(7, 7 + this.steps)),
      loss: m[14],
      gradNorm: m[15],
    };
  }

  /** Elements of each moment vector of {@link TttOptimizerState} (Σ of the weight sizes). */
  get optimizerStateSize(): number {
    return TTT_WEIGHT_KEYS.reduce((s, k) => s + this.draft.weights[k].size, 0);
  }

  /**
   * Read the AdamW moments and step count back (submits `rec`, waits for the GPU). Together with the
   * draft's weights this is everything needed to continue training bit-for-bit.
   */
  async exportState(rec: Recorder): Promise<TttOptimizerState> {
    const ks = TTT_WEIGHT_KEYS;
    const pm = ks.map((k) => rec.readback(this.#m[k]));
    const pv = ks.map((k) => rec.readback(this.#v[k]));
    rec.submit();
    const [bm, bv] = await Promise.all([Promise.all(pm), Promise.all(pv)]);
    rec.checkErrors();
    const n = this.optimizerStateSize;
    const m = new Float32Array(n), v = new Float32Array(n);
    let at = 0;
    ks.forEach((k, i) => {
      const size = this.draft.weights[k].size;
      m.set(new Float32Array(bm[i], 0, size), at);
      v.set(new Float32Array(bv[i], 0, size), at);
      at += size;
    });
    return { step: this.optimizerSteps, m, v };
  }

  /**
   * Restore AdamW moments and the step count saved by {@link exportState} (queue-ordered uploads:
   * call it before recording the next step, never while a recorded step still needs the old moments).
   * Throws ShapeError when the vectors do not match this draft's weights.
   */
  importState(state: TttOptimizerState): void {
    const n = this.optimizerStateSize;
    if (!Number.isSafeInteger(state.step) || state.step < 0) {
      throw new ShapeError(`TttTrainer.importState: step ${state.step} must be an integer ≥ 0`);
    }
    if (state.m.length !== n || state.v.length !== n) {
      throw new ShapeError(
        `TttTrainer.importState: moments hold ${state.m.length} / ${state.v.length} values; ` +
          `this draft has ${n} trainable weights`,
      );
    }
    let at = 0;
    for (const k of TTT_WEIGHT_KEYS) {
      const size = this.draft.weights[k].size;
      writeTensor(this.#gpu, this.#m[k], state.m.subarray(at, at + size));
      writeTensor(this.#gpu, this.#v[k], state.v.subarray(at, at + size));
      at += size;
    }
    this.optimizerSteps = state.step;
  }

  /** Free the trainer's GPU memory (not the target's or the draft's). */
  destroy(): void {
    this.#arena.destroy();
    this.#targetKv.destroy();
  }

  #mpad(M: number): number {
    return Math.ceil(M / 64) * 64;
  }

  #uploadMasks(B: number, S: number): void {
    const key = `${B}x${S}`;
    if (this.#maskShape === key) return;
    const M = B * S, mpad = this.#mpad(M);
    for (let k = 0; k < this.steps; k++) {
      const bits = tttBatchMask(B, S, k, mpad);
      const t = this.#acts[k].mask;
      writeTensor(this.#gpu, new Tensor(t.buffer, t.offset, [bits.length], "u32", t.name), bits);
    }
    this.#maskShape = key;
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
    const c = Array.from({ length: 7 }, (_, k) => k < this.steps ? this.stepDecay ** k / M : 0);
    const t2d0 = this.draft.t2d[0] ? 1 : 0;
    rec.dispatch(
      this.#kernel(rec, "step_prep", 6, "uuuuffffffff"),
      [this.#ids, this.#lm, this.#inVocab, this.#idsAll, this.#posAll, this.#wAll],
      [M, S, mpad, this.steps, t2d0, ...c],
      grid1d(this.steps * mpad, 256, rec.gpu.limits.maxComputeWorkgroupsPerDimension),
    );
  }

  #recordMetrics(rec: Recorder, B: number, S: number): void {
    const M = B * S, mpad = this.#mpad(M);
    const inv = Array.from({ length: 7 }, (_, k) => k < this.steps ? 1 / this.stepDecay ** k : 0);
    rec.dispatch(
      this.#kernel(rec, "metrics", 7, "uuuufffffff"),
      [this.#lossAll, this.#wAll, this.#dArg, this.#targ, this.#lm, this.normSq, this.metrics],
      [M, S, mpad, this.steps, ...inv],
      [1],
    );
  }

  #forwardBackward(rec: Recorder, B: number, S: number): void {
    const cfg = this.draft.config;
    const { numHeads: nH, numKvHeads: nKV, headDim: hd, rmsNormEps: eps } = cfg;
    const Vd = cfg.draftVocabSize;
    const M = B * S, mpad = this.#mpad(M), kv = nKV * hd, N = (nH + 2 * nKV) * hd;
    const w = this.draft.weights, gr = this.grads;
    const dims = { numHeads: nH, numKvHeads: nKV, headDim: hd };
    const seen = new Set<keyof Eagle3GpuWeights>();
    const acc = (k: keyof Eagle3GpuWeights): boolean => {
      const had = seen.has(k);
      seen.add(k);
      return had;
    };
    // Views at element offset `off` (per-step offsets are multiples of 64 rows: 256-byte aligned).
    const view = (t: Tensor, off: number, shape: number[], dtype: "f32" | "u32" = "f32") =>
      new Tensor(t.buffer, t.offset + 4 * off, shape, dtype, t.name);
    const posK = (k: number) => view(this.#posAll, k * mpad, [M], "u32");
    const keysOf = (t: Tensor, k: number) => view(t, k * mpad * kv, [M, kv]);
    const kAll = this.#kAll, vAll = this.#vAll;
    const qkv = this.#qkv.rows(M), fn = this.#fn.rows(M), logits = this.#logits.rows(M);
    const tpStep = this.#tpStep.rows(M), dH = this.#dH.rows(M), dH2 = this.#dH2.rows(M);

    // fc: h_0 = fc(g).
    linear(rec, this.#hs[0].rows(M), this.#feats.rows(M), w.fc);
    for (let k = 0; k < this.steps; k++) {
      const a = this.#acts[k];
      const h = this.#hs[k].rows(M), out = this.#hs[k + 1].rows(M);
      const embRaw = a.embRaw.rows(M), en = a.en.rows(M), hn = a.hn.rows(M), q = a.q.rows(M);
      const att = a.att.rows(M), y = a.y.rows(M), xn = a.xn.rows(M), gu = a.gu.rows(M), act = a.act.rows(M);
      const words = Math.ceil((k * mpad + M) / 32);
      const mask = new Tensor(a.mask.buffer, a.mask.offset, [M, words], "u32", a.mask.name);
      embedding(rec, embRaw, this.draft.embed, this.#idsAll, { idsOffset: k * mpad });
      rmsNorm(rec, en, embRaw, w.inputNorm, eps);
      rmsNorm(rec, hn, h, w.hiddenNorm, eps);
      linear(rec, qkv, en, w.qkvEmb);
      linear(rec, qkv, hn, w.qkvHidden, { residual: qkv });
      ropeQkv(rec, q, kAll, vAll, qkv, {
        ...dims,
        theta: cfg.ropeTheta,
        cacheRow: k * mpad,
        positions: posK(k),
      });
      attention(rec, att, q, kAll, vAll, { ...dims, kvLen: k * mpad + M, mask });
      linear(rec, y, att, w.o, { residual: h });
      rmsNorm(rec, xn, y, w.postNorm, eps);
      linear(rec, gu, xn, w.gateUp);
      swiglu(rec, act, gu);
      linear(rec, out, act, w.down, { residual: y });
      rmsNorm(rec, fn, out, w.norm, eps);
      linear(rec, logits, fn, w.lmHead);
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
      softCrossEntropy(rec, loss, logits, logits, tpStep, wK);
      linearBackward(rec, dH, gr.lmHead, logits, fn, w.lmHead, { accumulateDw: acc("lmHead") });
      rmsNormBackward(rec, a.dOut.rows(M), gr.norm, dH, out, w.norm, eps, { accumulateDw: acc("norm") });
    }

    for (let k = this.steps - 1; k >= 0; k--) {
      const a = this.#acts[k];
      const h = this.#hs[k].rows(M);
      const en = a.en.rows(M), hn = a.hn.rows(M), q = a.q.rows(M), att = a.att.rows(M);
      const y = a.y.rows(M), xn = a.xn.rows(M), gu = a.gu.rows(M), act = a.act.rows(M);
      const dOut = a.dOut.rows(M); // complete: this step's loss + later steps (added below)
      const dA = this.#dA.rows(M), dGU = this.#dGU.rows(M), dAtt = this.#dQ.rows(M), dq = this.#dQ2.rows(M);
      const words = Math.ceil((k * mpad + M) / 32);
      const mask = new Tensor(a.mask.buffer, a.mask.offset, [M, words], "u32", a.mask.name);
      // out = y + down(act)
      linearBackward(rec, dA, gr.down, dOut, act, w.down, { accumulateDw: acc("down") });
      swigluBackward(rec, dGU, dA, gu);
      linearBackward(rec, dH, gr.gateUp, dGU, xn, w.gateUp, { accumulateDw: acc("gateUp") });
      // dY = dOut + post_attention_layernorm backward (kept in dOut)
      rmsNormBackward(rec, dOut, gr.postNorm, dH, y, w.postNorm, eps, {
        accumulateDw: acc("postNorm"),
        accumulateDx: true,
      });
      // y = h + o(att)
      linearBackward(rec, dAtt, gr.o, dOut, att, w.o, { accumulateDw: acc("o") });
      const kvRows = k * mpad + M;
      attentionBackward(
        rec,
        dq,
        this.#dK.rows(kvRows),
        this.#dV.rows(kvRows),
        dAtt,
        q,
        kAll.rows(kvRows),
        vAll.rows(kvRows),
        att,
        { ...dims, kvLen: kvRows, mask, accumulate: k < this.steps - 1 },
      );
      ropeBackward(rec, dq, { numHeads: nH, headDim: hd, theta: cfg.ropeTheta, positions: posK(k) });
      const dKk = keysOf(this.#dK, k), dVk = keysOf(this.#dV, k);
      ropeBackward(rec, dKk, { numHeads: nKV, headDim: hd, theta: cfg.ropeTheta, positions: posK(k) });
      copyRows(rec, qkv, { offset: 0, stride: N }, dq, { offset: 0, stride: nH * hd }, M, nH * hd);
      copyRows(rec, qkv, { offset: nH * hd, stride: N }, dKk, { offset: 0, stride: kv }, M, kv);
      copyRows(rec, qkv, { offset: nH * hd + kv, stride: N }, dVk, { offset: 0, stride: kv }, M, kv);
      // qkv = en·Wembᵀ + hn·Whiddenᵀ
      linearBackward(rec, dH, gr.qkvEmb, qkv, en, w.qkvEmb, { accumulateDw: acc("qkvEmb") });
      rmsNormBackward(rec, dH2, gr.inputNorm, dH, a.embRaw.rows(M), w.inputNorm, eps, {
        accumulateDw: acc("inputNorm"),
      });
      linearBackward(rec, dH, gr.qkvHidden, qkv, hn, w.qkvHidden, { accumulateDw: acc("qkvHidden") });
      // dh_k = dY + hidden_norm backward (kept in dOut)
      rmsNormBackward(rec, dOut, gr.hiddenNorm, dH, h, w.hiddenNorm, eps, {
        accumulateDw: acc("hiddenNorm"),
        accumulateDx: true,
      });
      if (k > 0) {
        if (!this.detachHidden) {
          const prev = this.#acts[k - 1].dOut.rows(M);
          add(rec, prev, prev, dOut);
        }
      } else {
        linearBackward(rec, null, gr.fc, dOut, this.#feats.rows(M), w.fc, { accumulateDw: acc("fc") });
      }
    }
  }
}
