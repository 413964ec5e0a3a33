/**
 * CPU f64 reference of one EAGLE-3 training-time-test step (`ttt.ts`), written independently of the
 * GPU layout: per sequence, in EAGLE's checkpoint layout (q/k/v_proj over the explicit concat
 * [input_layernorm(emb) | hidden_norm(h)], separate gate/up), with the step-k mask built by
 * {@link tttMask} and the keys of steps 0..k concatenated step-major, exactly as
 * `traineagle3/cnets.py` does. The target's features and logits are inputs (the target forward is
 * tested elsewhere); everything after them — soft targets over the draft vocabulary, the seven
 * unrolled steps, the losses, accuracies, the analytic backward through all steps and torch's
 * clip + AdamW — is computed here in f64 from the f64 op references of `reference_bwd.ts`.
 * @module
 */
import { ShapeError } from "../errors.ts";
import { EAGLE3_TENSOR_NAMES, type Eagle3Checkpoint, type Eagle3TensorName } from "../io/eagle3.ts";
import { tttMask } from "../grad/attention_bwd.ts";
import {
  adamwRef,
  attentionBwdRef,
  attentionF64,
  clipScaleRef,
  linearBwdRef,
  linearF64,
  rmsNormBwdRef,
  rmsNormF64,
  ropeBwdRef,
  ropeF64,
  softCrossEntropyRef,
  swigluBwdRef,
  swigluF64,
} from "../grad/reference_bwd.ts";

/** Inputs of {@link tttStepRef}. */
export interface TttRefInput {
  /** Sequences B. */
  batch: number;
  /** Tokens per sequence S. */
  seqLen: number;
  /** (B·S) token ids. */
  ids: ArrayLike<number>;
  /** (B·S) loss mask. */
  lossMask: ArrayLike<number>;
  /** (B·S, n·Ht) target features (hidden states entering the tap layers, concatenated). */
  features: ArrayLike<number>;
  /** (B·S, V) target logits. */
  targetLogits: ArrayLike<number>;
}

/** Options of {@link tttStepRef}. */
export interface TttRefOptions {
  /** Unrolled steps (default 7). */
  steps?: number;
  /** Step weight base (default 0.8). */
  stepDecay?: number;
  /** Detach the hidden state carried between steps (default false). */
  detachHidden?: boolean;
  /** Compute gradients (default true). */
  backward?: boolean;
  /** Loss weight of each step (default stepDecay^k); plosses[k] is 0 for a step of weight 0. */
  stepWeights?: readonly number[];
  /**
   * Hard labels with signed weights per (step k, row b·S + t), step-major (steps·B·S): draft ids
   * (≥ Vd = none) of the token step k predicts at row t, x[t+k+2]; the term −h·log q(label) is added
   * to the differentiated objective (the GTO surrogate's gradient along Ŝ) and reported in
   * `hardLoss`, not in `loss`.
   */
  hard?: { labels: ArrayLike<number>; weights: ArrayLike<number> };
}

/** Output of {@link tttStepRef}. */
export interface TttRefResult {
  /** Per-step losses. */
  plosses: number[];
  /** Per-step accuracies. */
  acces: number[];
  /** Σ decay^k plosses[k]. */
  loss: number;
  /** Σ of all squared gradients. */
  gradNormSq: number;
  /** Gradient of `loss` (+ Σ hardLoss) w.r.t. each trainable tensor (EAGLE layout); empty without backward. */
  grads: Partial<Record<Eagle3TensorName, Float64Array>>;
  /** (steps·B·S) −h·log q(label) per (step, row), 0 without a label (all 0 without `hard`). */
  hardLoss: Float64Array;
}

type W = Record<Eagle3TensorName, ArrayLike<number>>;

/** Concatenate rows: a (T, A), b (T, Bc) → (T, A + Bc). */
function catCols(a: ArrayLike<number>, b: ArrayLike<number>, T: number, A: number, Bc: number): Float64Array {
  const o = new Float64Array(T * (A + Bc));
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < A; i++) o[t * (A + Bc) + i] = a[t * A + i];
    for (let i = 0; i < Bc; i++) o[t * (A + Bc) + A + i] = b[t * Bc + i];
  }
  return o;
}

function addInto(dst: Float64Array, src: ArrayLike<number>): void {
  for (let i = 0; i < dst.length; i++) dst[i] += src[i];
}

/**
 * Soft targets of a logits row restricted to the draft vocabulary (draft order), the full-vocab
 * argmax (first maximum) and the draft-space argmax of the targets.
 */
function softTarget(
  row: ArrayLike<number>,
  off: number,
  d2t: Int32Array,
  V: number,
): { p: Float64Array; argFull: number; argDraft: number } {
  let argFull = 0;
  for (let v = 1; v < V; v++) if (row[off + v] > row[off + argFull]) argFull = v;
  const Vd = d2t.length;
  const z = new Float64Array(Vd);
  let mx = -Infinity, argDraft = 0;
  for (let j = 0; j < Vd; j++) {
    z[j] = row[off + j + d2t[j]];
    if (z[j] > mx) {
      mx = z[j];
      argDraft = j;
    }
  }
  let s = 0;
  for (let j = 0; j < Vd; j++) s += Math.exp(z[j] - mx);
  const p = new Float64Array(Vd);
  for (let j = 0; j < Vd; j++) p[j] = Math.exp(z[j] - mx) / s;
  return { p, argFull, argDraft };
}

/**
 * One TTT step of `ckpt` on a batch: losses, accuracies and (unless `backward: false`) the
 * gradients of the weighted total, all in f64. Semantics as `TttTrainer` (see `ttt.ts`).
 */
export function tttStepRef(
  ckpt: Eagle3Checkpoint,
  input: TttRefInput,
  opts: TttRefOptions = {},
): TttRefResult {
  const cfg = ckpt.config;
  const w = ckpt.tensors as W;
  const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: hd, rmsNormEps: eps } =
    cfg;
  const V = cfg.vocabSize, Vd = cfg.draftVocabSize, F = cfg.auxLayerIds.length * cfg.targetHiddenSize;
  const theta = cfg.ropeTheta;
  const steps = opts.steps ?? 7, decay = opts.stepDecay ?? 0.8, backward = opts.backward ?? true;
  const { batch: B, seqLen: S } = input;
  const M = B * S;
  if (input.ids.length !== M || input.lossMask.length !== M) {
    throw new ShapeError("tttStepRef: ids/lossMask ≠ B·S");
  }
  const sw = opts.stepWeights ?? Array.from({ length: steps }, (_, k) => decay ** k);
  if (sw.length !== steps) throw new ShapeError(`tttStepRef: ${sw.length} step weights for ${steps} steps`);
  const hard = opts.hard;
  if (hard && (hard.labels.length !== steps * M || hard.weights.length !== steps * M)) {
    throw new ShapeError(`tttStepRef: hard labels/weights must hold steps·B·S = ${steps * M} entries`);
  }
  const hardLoss = new Float64Array(steps * M);
  if (input.features.length !== M * F) throw new ShapeError(`tttStepRef: features ≠ (B·S, ${F})`);
  if (input.targetLogits.length !== M * V) throw new ShapeError(`tttStepRef: targetLogits ≠ (B·S, ${V})`);
  const qN = nH * hd, kvN = nKV * hd, scale = 1 / Math.sqrt(hd);
  const grads: Partial<Record<Eagle3TensorName, Float64Array>> = {};
  if (backward) { for (const n of EAGLE3_TENSOR_NAMES) grads[n] = new Float64Array(w[n].length); }
  const G = grads as Record<Eagle3TensorName, Float64Array>;
  const plosses = new Array(steps).fill(0),
    correct = new Array(steps).fill(0),
    denom = new Array(steps).fill(0);
  const emb = ckpt.embed;
  const wq = w["midlayer.self_attn.q_proj.weight"], wk = w["midlayer.self_attn.k_proj.weight"];
  const wv = w["midlayer.self_attn.v_proj.weight"], wo = w["midlayer.self_attn.o_proj.weight"];
  const wg = w["midlayer.mlp.gate_proj.weight"], wu = w["midlayer.mlp.up_proj.weight"];
  const wd = w["midlayer.mlp.down_proj.weight"];
  const gateUpW = new Float64Array(2 * I * H); // [gate; up] rows, for swigluF64's fused layout
  gateUpW.set(Array.from(wg), 0);
  gateUpW.set(Array.from(wu), I * H);

  for (let b = 0; b < B; b++) {
    const ids = Array.from({ length: S }, (_, t) => input.ids[b * S + t]);
    const lm = Array.from({ length: S }, (_, t) => input.lossMask[b * S + t]);
    const g = Float64Array.from({ length: S * F }, (_, i) => input.features[b * S * F + i]);
    // Soft targets per source position t' (t' = S: the zero-filled row).
    const tgt: { p: Float64Array; argFull: number; argDraft: number }[] = [];
    for (let t = 0; t <= S; t++) {
      if (t < S) tgt.push(softTarget(input.targetLogits, (b * S + t) * V, ckpt.d2t, V));
      else tgt.push({ p: new Float64Array(Vd).fill(1 / Vd), argFull: 0, argDraft: 0 });
    }
    const hs: Float64Array[] = [linearF64(g, w["fc.weight"], S, F, H)];
    const keys: Float64Array[] = [], vals: Float64Array[] = [];
    const saved: {
      e: Float64Array;
      en: Float64Array;
      hn: Float64Array;
      x: Float64Array;
      q: Float64Array;
      att: Float64Array;
      y: Float64Array;
      xn: Float64Array;
      gu: Float64Array;
      act: Float64Array;
      pos: number[];
      mask: Uint8Array;
      dOut: Float64Array;
    }[] = [];
    for (let k = 0; k < steps; k++) {
      const h = hs[k];
      const sid = Array.from({ length: S }, (_, t) => (t + k + 1 < S ? ids[t + k + 1] : 0));
      const e = new Float64Array(S * H);
      for (let t = 0; t < S; t++) for (let i = 0; i < H; i++) e[t * H + i] = emb[sid[t] * H + i];
      const en = rmsNormF64(e, w["midlayer.input_layernorm.weight"], eps);
      const hn = rmsNormF64(h, w["midlayer.hidden_norm.weight"], eps);
      const x = catCols(en, hn, S, H, H); // (S, 2H)
      const pos = Array.from({ length: S }, (_, t) => t + k);
      const q = ropeF64(linearF64(x, wq, S, 2 * H, qN), pos, theta, hd);
      keys.push(ropeF64(linearF64(x, wk, S, 2 * H, kvN), pos, theta, hd));
      vals.push(linearF64(x, wv, S, 2 * H, kvN));
      const kc = new Float64Array((k + 1) * S * kvN), vc = new Float64Array((k + 1) * S * kvN);
      for (let j = 0; j <= k; j++) {
        kc.set(keys[j], j * S * kvN);
        vc.set(vals[j], j * S * kvN);
      }
      const mask = tttMask(S, k);
      const dims = { tq: S, tk: (k + 1) * S, nHeads: nH, nKvHeads: nKV, headDim: hd };
      const att = attentionF64(q, kc, vc, mask, scale, dims).out;
      const y = linearF64(att, wo, S, qN, H);
      addInto(y, h);
      const xn = rmsNormF64(y, w["midlayer.post_attention_layernorm.weight"], eps);
      const gu = linearF64(xn, gateUpW, S, H, 2 * I);
      const act = swigluF64(gu, I);
      const out = linearF64(act, wd, S, I, H);
      addInto(out, y);
      hs.push(out);
      const fn = rmsNormF64(out, w["norm.weight"], eps);
      const logits = linearF64(fn, w["lm_head.weight"], S, H, Vd);
      const probs = new Float64Array(S * Vd), rw = new Float64Array(S);
      for (let t = 0; t < S; t++) {
        const src = Math.min(t + k + 1, S);
        const tg = tgt[src];
        probs.set(tg.p, t * Vd);
        const lmk = t + k < S ? lm[t + k] : 0;
        const pm = (ckpt.t2d[tg.argFull] ? 1 : 0) * lmk;
        rw[t] = pm * sw[k] / M;
        denom[k] += lmk;
        let am = 0;
        for (let j = 1; j < Vd; j++) if (logits[t * Vd + j] > logits[t * Vd + am]) am = j;
        if (pm > 0 && am === tg.argDraft) correct[k] += pm;
      }
      const rows = k * M + b * S;
      const ce = softCrossEntropyRef(
        logits,
        probs,
        rw,
        Vd,
        hard && {
          labels: Array.from({ length: S }, (_, t) => hard.labels[rows + t]),
          weights: Array.from({ length: S }, (_, t) => hard.weights[rows + t]),
        },
      );
      for (let t = 0; t < S; t++) plosses[k] += sw[k] > 0 ? ce.loss[t] / sw[k] : 0;
      hardLoss.set(ce.hardLoss, rows);
      let dOut: Float64Array = new Float64Array(0);
      if (backward) {
        const l = linearBwdRef(ce.dLogits, fn, w["lm_head.weight"], S, H, Vd);
        addInto(G["lm_head.weight"], l.dw);
        const n = rmsNormBwdRef(l.dx, out, w["norm.weight"], eps);
        addInto(G["norm.weight"], n.dw);
        dOut = n.dx;
      }
      saved.push({ e, en, hn, x, q, att, y, xn, gu, act, pos, mask, dOut });
    }
    if (!backward) continue;
    const dKeys = keys.map((k) => new Float64Array(k.length));
    const dVals = vals.map((v) => new Float64Array(v.length));
    for (let k = steps - 1; k >= 0; k--) {
      const s = saved[k];
      const dOut = s.dOut;
      const dn = linearBwdRef(dOut, s.act, wd, S, I, H);
      addInto(G["midlayer.mlp.down_proj.weight"], dn.dw);
      const dGU = swigluBwdRef(dn.dx, s.gu, I);
      const dgu = linearBwdRef(dGU, s.xn, gateUpW, S, H, 2 * I);
      addInto(G["midlayer.mlp.gate_proj.weight"], dgu.dw.subarray(0, I * H));
      addInto(G["midlayer.mlp.up_proj.weight"], dgu.dw.subarray(I * H));
      const pn = rmsNormBwdRef(dgu.dx, s.y, w["midlayer.post_attention_layernorm.weight"], eps);
      addInto(G["midlayer.post_attention_layernorm.weight"], pn.dw);
      const dY = Float64Array.from(dOut);
      addInto(dY, pn.dx);
      const dov = linearBwdRef(dY, s.att, wo, S, qN, H);
      addInto(G["midlayer.self_attn.o_proj.weight"], dov.dw);
      const kc = new Float64Array((k + 1) * S * kvN), vc = new Float64Array((k + 1) * S * kvN);
      for (let j = 0; j <= k; j++) {
        kc.set(keys[j], j * S * kvN);
        vc.set(vals[j], j * S * kvN);
      }
      const dims = { tq: S, tk: (k + 1) * S, nHeads: nH, nKvHeads: nKV, headDim: hd };
      const ab = attentionBwdRef(dov.dx, s.q, kc, vc, s.mask, scale, dims);
      for (let j = 0; j <= k; j++) {
        addInto(dKeys[j], ab.dk.subarray(j * S * kvN, (j + 1) * S * kvN));
        addInto(dVals[j], ab.dv.subarray(j * S * kvN, (j + 1) * S * kvN));
      }
      // Step k's keys are complete now (later steps were processed first).
      const dqr = ropeBwdRef(ab.dq, s.pos, theta, hd);
      const dkr = ropeBwdRef(dKeys[k], s.pos, theta, hd);
      const dx = new Float64Array(S * 2 * H);
      for (
        const [dy, wt, name, n] of [
          [dqr, wq, "midlayer.self_attn.q_proj.weight", qN],
          [dkr, wk, "midlayer.self_attn.k_proj.weight", kvN],
          [dVals[k], wv, "midlayer.self_attn.v_proj.weight", kvN],
        ] as [Float64Array, ArrayLike<number>, Eagle3TensorName, number][]
      ) {
        const r = linearBwdRef(dy, s.x, wt, S, 2 * H, n);
        addInto(G[name], r.dw);
        addInto(dx, r.dx);
      }
      const dEn = new Float64Array(S * H), dHn = new Float64Array(S * H);
      for (let t = 0; t < S; t++) {
        for (let i = 0; i < H; i++) {
          dEn[t * H + i] = dx[t * 2 * H + i];
          dHn[t * H + i] = dx[t * 2 * H + H + i];
        }
      }
      addInto(
        G["midlayer.input_layernorm.weight"],
        rmsNormBwdRef(dEn, s.e, w["midlayer.input_layernorm.weight"], eps).dw,
      );
      const hnb = rmsNormBwdRef(dHn, hs[k], w["midlayer.hidden_norm.weight"], eps);
      addInto(G["midlayer.hidden_norm.weight"], hnb.dw);
      const dH = dY;
      addInto(dH, hnb.dx);
      if (k > 0) {
        if (!opts.detachHidden) addInto(saved[k - 1].dOut, dH);
      } else {
        addInto(G["fc.weight"], linearBwdRef(dH, g, w["fc.weight"], S, F, H).dw);
      }
    }
  }
  let gradNormSq = 0;
  if (backward) { for (const n of EAGLE3_TENSOR_NAMES) for (const v of G[n]) gradNormSq += v * v; }
  const loss = plosses.reduce((s, l, k) => s + sw[k] * l, 0);
  const acces = correct.map((c, k) => c / (denom[k] + 1e-6));
  return { plosses, acces, loss, gradNormSq, grads, hardLoss };
}

/** Options of {@link tttUpdateRef} (torch clip_grad_norm_ + AdamW, first step from zero moments). */
export interface TttRefUpdateOptions {
  /** Learning rate. */
  lr: number;
  /** β1 (default 0.9). */
  beta1?: number;
  /** β2 (default 0.95). */
  beta2?: number;
  /** ε (default 1e-8). */
  eps?: number;
  /** Weight decay (default 0). */
  weightDecay?: number;
  /** Clip norm (default 0.5). */
  maxGradNorm?: number;
}

/** The trainable tensors after clipping `grads` to `maxGradNorm` and one AdamW step (f64). */
export function tttUpdateRef(
  ckpt: Eagle3Checkpoint,
  ref: TttRefResult,
  o: TttRefUpdateOptions,
): Record<Eagle3TensorName, Float64Array> {
  const scale = clipScaleRef(ref.gradNormSq, o.maxGradNorm ?? 0.5);
  const out = {} as Record<Eagle3TensorName, Float64Array>;
  for (const n of EAGLE3_TENSOR_NAMES) {
    const p = Float64Array.from(ckpt.tensors[n]);
    const g = ref.grads[n];
    if (!g) throw new ShapeError(`tttUpdateRef: no gradient for ${n} (run tttStepRef with backward)`);
    adamwRef(p, g, new Float64Array(p.length), new Float64Array(p.length), {
      lr: o.lr,
      beta1: o.beta1,
      beta2: o.beta2,
      eps: o.eps,
      weightDecay: o.weightDecay,
      step: 1,
      gradScale: scale,
    });
    out[n] = p;
  }
  return out;
}
