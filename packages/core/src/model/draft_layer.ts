/**
 * The EAGLE-3 draft layer, once: its forward ({@link draftLayerForward}), used by decoding
 * (`Eagle3Draft.forward`, over the draft's own workspace) and by training (the TTT objective, over
 * per-step activation records), and its backward ({@link draftLayerBackward}) beside it, plus the
 * head (final norm + lm_head) forward and backward. Like llm.c's one `gpt2_forward` serving both
 * training and sampling, a second objective (GTO) or a second decoder reuses these functions instead
 * of copying the 13 ops.
 *
 * The computation (EAGLE `traineagle3/cnets.py` `LlamaDecoderLayeremb`): with e = embed(ids) and h
 * the hidden input,
 *   qkv = input_layernorm(e)·W_embᵀ + hidden_norm(h)·W_hiddenᵀ  (the concat is never materialised)
 *   q, k, v = RoPE(split(qkv));  att = attention(q, K, V)  (k, v written into the cache rows)
 *   y = h + o(att);  out = y + down(silu(gate(post_norm(y))) · up(post_norm(y)))
 * and the head logits = lm_head(norm(out)).
 *
 * Activations ({@link DraftLayerActs}) are an explicit record of views, llm.c `ActivationTensors`
 * style: training keeps one record per unrolled step (what the backward reads); decoding passes its
 * workspace with `emb` aliasing `en` (the fused input never materialises the raw embedding) and `y`
 * aliasing the output (one buffer for the residual stream).
 *
 * Decoding runs the layer once per tree level, so it takes the fused variant (`{ fused: true }`,
 * what `Eagle3Draft.forward` and `.head` use): one `draftInput` dispatch for embedding +
 * input_layernorm + hidden_norm (+ the tree's row gather of the hidden input; bit-identical to the
 * separate ops), post_attention_layernorm + gate/up + SwiGLU as one `linear` with the norm and SwiGLU
 * fused, and the final norm fused into lm_head — 9 dispatches per layer + head instead of 14 (+ 1
 * gather; 8 with `ropeAttention`, RoPE + KV write inside attention, the hardware default) where {@link linearFuses} says both fusions pay for the M rows (else the norm and / or the
 * SwiGLU run separately: software adapters fuse only the SwiGLU past 8 rows). The
 * fused norm scales the product instead of x, so those rows differ from the unfused ones in the last
 * bits; training (TTT, whose backward reads the unfused intermediates) keeps the unfused ops.
 *
 * Placement: the forward is model code (floor 5, beside `eagle3.ts`, which calls it); the backward
 * composes the backward ops of `../grad/` (floor 3), so it can sit beside the forward without an
 * upward import, and `../train/` (objectives, optimizer) imports both.
 * @module
 */
import type { Recorder } from "../gpu/recorder.ts";
import { Tensor } from "../gpu/tensor.ts";
import type { Eagle3Config } from "../io/eagle3.ts";
import { ShapeError } from "../errors.ts";
import { linear, linearFuses } from "../ops/linear.ts";
import { draftInput } from "../ops/draft_input.ts";
import { rmsNorm } from "../ops/norm.ts";
import { swiglu } from "../ops/activation.ts";
import { embedding } from "../ops/embedding.ts";
import {
  attention,
  type DynamicValue,
  type SegmentedMask,
  type TreeMask,
  type TttMask,
} from "../ops/attention.ts";
import { ropeQkv } from "../ops/rope.ts";
import { attentionRope, attentionRopeSupports } from "../ops/attention_rope.ts";
import { copyRows } from "../ops/elementwise.ts";
import { linearBackward, rmsNormBackward, ropeBackward, swigluBackward } from "../grad/backward.ts";
import { attentionBackward } from "../grad/attention_bwd.ts";

/** The draft's trainable weights on the GPU (all f32, in the weight arena). */
export interface Eagle3GpuWeights {
  /** (H, n·Ht) feature fusion. */
  fc: Tensor;
  /** (H) input_layernorm (applied to the embedding). */
  inputNorm: Tensor;
  /** (H) hidden_norm (applied to the hidden input). */
  hiddenNorm: Tensor;
  /** ((nH + 2nKV)·hd, H): columns [0, H) of q/k/v_proj stacked (multiply norm(embedding)). */
  qkvEmb: Tensor;
  /** ((nH + 2nKV)·hd, H): columns [H, 2H) of q/k/v_proj stacked (multiply norm(hidden)). */
  qkvHidden: Tensor;
  /** (H, nH·hd) o_proj. */
  o: Tensor;
  /** (H) post_attention_layernorm. */
  postNorm: Tensor;
  /** (2I, H) gate_proj rows then up_proj rows. */
  gateUp: Tensor;
  /** (H, I) down_proj. */
  down: Tensor;
  /** (H) final norm. */
  norm: Tensor;
  /** (Vd, H) lm_head. */
  lmHead: Tensor;
}

/** Names of the draft's trainable weights, in {@link Eagle3GpuWeights} (and weight-arena) order. */
export const DRAFT_WEIGHT_KEYS: readonly (keyof Eagle3GpuWeights)[] = [
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

/** What a draft layer reads besides its inputs (an `Eagle3Draft` is one). */
export interface DraftLayerParams {
  /** Sizes, RoPE θ and the norm ε. */
  readonly config: Eagle3Config;
  /** Trainable weights. */
  readonly weights: Readonly<Eagle3GpuWeights>;
  /** (V, H) frozen token embedding. */
  readonly embed: Tensor;
}

/**
 * Activations of one draft-layer forward over T rows (views; what the backward reads). Decoding may
 * alias `en` to `emb` and `y` to the output (see the module doc); a forward to be differentiated
 * must keep them apart (and `io.out` apart from every activation).
 */
export interface DraftLayerActs {
  /** (T, H) embedding rows (the raw embedding, unless aliased to `en`). */
  emb: Tensor;
  /** (T, H) input_layernorm(embedding). */
  en: Tensor;
  /** (T, H) hidden_norm(hidden). */
  hn: Tensor;
  /** (T, (nH + 2nKV)·hd) fused projection (scratch: not read by the backward). */
  qkv: Tensor;
  /** (T, nH·hd) queries after RoPE. */
  q: Tensor;
  /** (T, nH·hd) attention output. */
  att: Tensor;
  /** (T, H) hidden + o_proj(att). */
  y: Tensor;
  /** (T, H) post_attention_layernorm(y). */
  xn: Tensor;
  /** (T, 2I) [gate | up]. */
  gu: Tensor;
  /** (T, I) silu(gate)·up. */
  act: Tensor;
}

/** Where the keys/values of the rows go and at which RoPE positions (see `ropeQkv`). */
export interface DraftLayerRope {
  /** Cache row of row 0 (rows cacheRow..cacheRow+T−1 are written). */
  cacheRow: number;
  /** Position of row t is pos0 + t (ropeQkv's default 0) unless `positions` is given. */
  pos0?: number;
  /** (T) u32 per-row positions. */
  positions?: Tensor;
  /** GPU scalar added to the cache row (and to positions unless `dynamicPos`; forward only). */
  dynamicRow?: DynamicValue;
  /** GPU scalar added to every position (forward only). */
  dynamicPos?: DynamicValue;
}

/** Which cache rows each query attends (see `attention`): causal by default, or a tree / bitset mask. */
export interface DraftLayerAttention {
  /** Cache rows [0, kvLen) (+ `dynamicLen`) are attended. */
  kvLen: number;
  /** GPU scalar added to kvLen (forward only). */
  dynamicLen?: DynamicValue;
  /** Prefix + tree mask over the last `treeLen` valid rows (forward only). */
  treeMask?: TreeMask;
  /** Full (T, ⌈kvLen/32⌉) bitset mask. */
  mask?: Tensor;
  /** Training-time-test visibility (unrolled step k over B sequences; scans only visible keys). */
  ttt?: TttMask;
  /** Per-tree prefixes plus own tree keys (GTO: P trees per forward; forward only). */
  segmented?: SegmentedMask;
}

/** Hidden input rows picked by a GPU index (tree growth: each frontier node's parent row). */
export interface DraftLayerHiddenRows {
  /** u32 row indices into `io.hidden` (≥ offset + T entries). */
  index: Tensor;
  /** First entry of `index` used (default 0). */
  offset?: number;
  /** (T, H) receives the picked rows: the layer's hidden input h (the residual). */
  into: Tensor;
}

/** Inputs and outputs of {@link draftLayerForward}. */
export interface DraftLayerForwardIo {
  /** (T, H) hidden input h (fc(features) or a previous `out`); (S, H) rows to pick from with `hiddenRows`. */
  hidden: Tensor;
  /** h_t = hidden[index[offset + t]] instead of hidden[t] (copied into `hiddenRows.into`). */
  hiddenRows?: DraftLayerHiddenRows;
  /** u32 token ids (target vocabulary); ids[idsOffset + t] pairs with hidden row t. */
  ids: Tensor;
  /** Index of the first id in `ids` (default 0). */
  idsOffset?: number;
  /** (S, nKV·hd) key cache (after RoPE). */
  kCache: Tensor;
  /** (S, nKV·hd) value cache. */
  vCache: Tensor;
  /** Cache rows and positions of the T rows. */
  rope: DraftLayerRope;
  /** Attended rows. */
  attention: DraftLayerAttention;
  /** (T, H) pre-norm output (may be `hidden` itself or `acts.y`). */
  out: Tensor;
}

/** Options of {@link draftLayerForward} and {@link draftHeadForward}. */
export interface DraftForwardOptions {
  /**
   * Decoding's fused dispatches (see the module doc; default false, training's unfused ops).
   * Fused, `acts.emb`, and `acts.xn` / `acts.gu` where {@link linearFuses} fuses for T rows, are not
   * written, and `acts.en` / `acts.hn` must share one GPU buffer.
   */
  fused?: boolean;
  /**
   * With `fused`: RoPE + the KV-cache write inside attention (`attentionRope`, one dispatch instead
   * of two, bit-identical) where it takes the call (T ≤ 8, causal or tree mask). Default false.
   */
  ropeAttention?: boolean;
}

/**
 * Record one draft-layer forward over T rows (12 dispatches, + 1 with `hiddenRows`; fused: 8 to 10,
 * see the module doc): activations into `acts`, keys and values into the cache rows of `io.rope`,
 * the pre-norm output into `io.out`. T is the row count of `io.out`; every tensor of `acts` must
 * have exactly T rows, and so must `io.hidden` unless `io.hiddenRows` picks them.
 */
export function draftLayerForward(
  rec: Recorder,
  layer: DraftLayerParams,
  acts: DraftLayerActs,
  io: DraftLayerForwardIo,
  opts: DraftForwardOptions = {},
): void {
  const cfg = layer.config, w = layer.weights, eps = cfg.rmsNormEps;
  const { hiddenSize: H, numHeads: nH, numKvHeads: nKV, headDim: hd } = cfg;
  const T = io.out.shape[0];
  io.out.expectShape([T, H], "f32"); // (T, H)
  const rows = io.hiddenRows;
  io.hidden.expectShape([rows ? io.hidden.shape[0] : T, H], "f32"); // (T, H), or (S, H) to pick from
  for (const t of [acts.emb, acts.en, acts.hn, acts.y, acts.xn]) t.expectShape([T, H], "f32"); // (T, H)
  const dims = { numHeads: nH, numKvHeads: nKV, headDim: hd };
  const { emb, en, hn, qkv, q, att, y, xn, gu, act } = acts;
  const idsOffset = io.idsOffset ?? 0;
  const h = rows ? rows.into.expectShape([T, H], "f32") : io.hidden; // (T, H) the residual input

  if (opts.fused) {
    const gather = rows && { index: rows.index, offset: rows.offset, out: rows.into };
    draftInput(rec, en, hn, layer.embed, io.ids, io.hidden, w.inputNorm, w.hiddenNorm, eps, {
      idsOffset,
      gather,
    });
  } else {
    // The row pick is a table lookup: the embedding op with the hidden rows as the table.
    if (rows) embedding(rec, rows.into, io.hidden, rows.index, { idsOffset: rows.offset ?? 0 });
    embedding(rec, emb, layer.embed, io.ids, { idsOffset });
    rmsNorm(rec, en, emb, w.inputNorm, eps);
    rmsNorm(rec, hn, h, w.hiddenNorm, eps);
  }
  linear(rec, qkv, en, w.qkvEmb); // concat(e, h)·Wᵀ = e·W_embᵀ + h·W_hiddenᵀ
  linear(rec, qkv, hn, w.qkvHidden, { residual: qkv });
  const rope = { ...dims, theta: cfg.ropeTheta, ...io.rope }, at = io.attention;
  if (
    opts.fused && opts.ropeAttention && attentionRopeSupports(T, hd) && !at.segmented && !at.mask && !at.ttt
  ) {
    const masks = { kvLen: at.kvLen, dynamicLen: at.dynamicLen, treeMask: at.treeMask };
    attentionRope(rec, att, qkv, io.kCache, io.vCache, { ...rope, ...masks });
  } else {
    ropeQkv(rec, q, io.kCache, io.vCache, qkv, rope);
    attention(rec, att, q, io.kCache, io.vCache, { ...dims, ...at });
  }
  linear(rec, y, att, w.o, { residual: h });
  const fuseNorm = opts.fused === true && linearFuses(rec, T, "norm");
  if (!fuseNorm) rmsNorm(rec, xn, y, w.postNorm, eps);
  const mlp = { x: fuseNorm ? y : xn, opts: fuseNorm ? { norm: { weight: w.postNorm, eps } } : {} };
  if (opts.fused && linearFuses(rec, T, "swiglu")) {
    linear(rec, act, mlp.x, w.gateUp, { ...mlp.opts, swiglu: true });
  } else {
    linear(rec, gu, mlp.x, w.gateUp, mlp.opts);
    swiglu(rec, act, gu);
  }
  linear(rec, io.out, act, w.down, { residual: y });
}

/**
 * Record logits (T, Vd) = lm_head(norm(x)) for x (T, H); `normed` (T, H) receives norm(x) (not
 * written when `fused` and {@link linearFuses} fuses the norm for T rows: it goes into lm_head).
 */
export function draftHeadForward(
  rec: Recorder,
  layer: DraftLayerParams,
  logits: Tensor,
  normed: Tensor,
  x: Tensor,
  opts: DraftForwardOptions = {},
): void {
  const w = layer.weights, eps = layer.config.rmsNormEps;
  if (opts.fused && linearFuses(rec, x.shape[0], "norm")) {
    linear(rec, logits, x, w.lmHead, { norm: { weight: w.norm, eps } });
    return;
  }
  rmsNorm(rec, normed, x, w.norm, eps);
  linear(rec, logits, normed, w.lmHead);
}

/**
 * Where a backward writes weight gradients. `claim(k)` is called once per recorded gradient write
 * of weight k, in recording order, and answers whether that write adds into `grads[k]` (true) or
 * overwrites it (false: the first write since the gradients were last zeroed). `DraftOptimizer`
 * implements it, so several objectives can add into one step's gradients.
 */
export interface DraftGradSink {
  /** One gradient tensor per weight (shapes as {@link Eagle3GpuWeights}). */
  readonly grads: Readonly<Eagle3GpuWeights>;
  /** Whether the next write of weight k adds (true) or overwrites (false); marks k as written. */
  claim(k: keyof Eagle3GpuWeights): boolean;
}

/** Gradient scratch of {@link draftLayerBackward}: T rows each, contents undefined on entry and exit. */
export interface DraftLayerGradScratch {
  /** (T, (nH + 2nKV)·hd) dqkv. */
  dqkv: Tensor;
  /** (T, I) d act. */
  dAct: Tensor;
  /** (T, 2I) d [gate | up]. */
  dGateUp: Tensor;
  /** (T, H) d of a normalised input. */
  dH: Tensor;
  /** (T, H) second (H) scratch (the embedding's gradient, discarded: the embedding is frozen). */
  dH2: Tensor;
  /** (T, nH·hd) d att. */
  dAtt: Tensor;
  /** (T, nH·hd) d q. */
  dq: Tensor;
}

/** Inputs and outputs of {@link draftLayerBackward}. */
export interface DraftLayerBackwardIo {
  /** (T, H) in: dL/d out; out: dL/d hidden (written in place). */
  dOut: Tensor;
  /** (T, H) the forward's hidden input. */
  hidden: Tensor;
  /** (S, nKV·hd) key cache as after the forward (and every later forward that wrote other rows). */
  kCache: Tensor;
  /** (S, nKV·hd) value cache. */
  vCache: Tensor;
  /** (S, nKV·hd) dL/d keys: rows [0, kvLen) written (or added with `accumulateKv`). */
  dK: Tensor;
  /** (S, nKV·hd) dL/d values, likewise. */
  dV: Tensor;
  /**
   * Add the attention's key/value gradients into dK/dV (rows shared with later, already
   * differentiated calls) instead of overwriting rows [0, kvLen).
   */
  accumulateKv: boolean;
  /** The forward's rope record (static rows and positions only). */
  rope: DraftLayerRope;
  /** The forward's attention record (static kvLen; causal, `mask` or `ttt`). */
  attention: DraftLayerAttention;
  /** Gradient scratch. */
  scratch: DraftLayerGradScratch;
}

/**
 * Record the backward of one {@link draftLayerForward} (≈ 17 dispatches): weight gradients into
 * `sink` (every weight of the layer except fc, norm and lm_head), the key/value gradients of rows
 * [0, kvLen) into dK/dV, and dL/d hidden into `io.dOut`. The dK/dV rows of this call (its
 * `rope.cacheRow` rows) must hold their complete gradient after this call's attention backward,
 * i.e. later calls that attend to them must have been differentiated before.
 */
export function draftLayerBackward(
  rec: Recorder,
  layer: DraftLayerParams,
  acts: DraftLayerActs,
  sink: DraftGradSink,
  io: DraftLayerBackwardIo,
): void {
  const cfg = layer.config, w = layer.weights, gr = sink.grads, eps = cfg.rmsNormEps;
  const { numHeads: nH, numKvHeads: nKV, headDim: hd } = cfg;
  const kv = nKV * hd, N = (nH + 2 * nKV) * hd;
  const { emb, en, hn, q, att, y, xn, gu, act } = acts;
  const { dqkv, dAct, dGateUp, dH, dH2, dAtt, dq } = io.scratch;
  const { dOut, rope } = io;
  const T = dOut.shape[0];
  if (en === emb) {
    throw new ShapeError("draftLayerBackward: acts.en must not alias acts.emb (keep the raw embedding)");
  }
  if (rope.dynamicRow || rope.dynamicPos || io.attention.dynamicLen || io.attention.treeMask) {
    throw new ShapeError(
      "draftLayerBackward: dynamic rows/positions/lengths and tree masks are forward-only",
    );
  }
  const kvLen = io.attention.kvLen;
  const acc = (k: keyof Eagle3GpuWeights) => ({ accumulateDw: sink.claim(k) });
  // out = y + down(act)
  linearBackward(rec, dAct, gr.down, dOut, act, w.down, acc("down"));
  swigluBackward(rec, dGateUp, dAct, gu);
  linearBackward(rec, dH, gr.gateUp, dGateUp, xn, w.gateUp, acc("gateUp"));
  // dY = dOut + post_attention_layernorm backward (kept in dOut)
  rmsNormBackward(rec, dOut, gr.postNorm, dH, y, w.postNorm, eps, { ...acc("postNorm"), accumulateDx: true });
  // y = h + o(att)
  linearBackward(rec, dAtt, gr.o, dOut, att, w.o, acc("o"));
  attentionBackward(
    rec,
    dq,
    io.dK.rows(kvLen),
    io.dV.rows(kvLen),
    dAtt,
    q,
    io.kCache.rows(kvLen),
    io.vCache.rows(kvLen),
    att,
    {
      numHeads: nH,
      numKvHeads: nKV,
      headDim: hd,
      kvLen,
      mask: io.attention.mask,
      ttt: io.attention.ttt,
      accumulate: io.accumulateKv,
    },
  );
  const rot = { headDim: hd, theta: cfg.ropeTheta, pos0: rope.pos0, positions: rope.positions };
  ropeBackward(rec, dq, { numHeads: nH, ...rot });
  const rowsAt = (t: Tensor) =>
    new Tensor(t.buffer, t.offset + 4 * rope.cacheRow * kv, [T, kv], "f32", t.name);
  const dKr = rowsAt(io.dK), dVr = rowsAt(io.dV);
  ropeBackward(rec, dKr, { numHeads: nKV, ...rot });
  copyRows(rec, dqkv, { offset: 0, stride: N }, dq, { offset: 0, stride: nH * hd }, T, nH * hd);
  copyRows(rec, dqkv, { offset: nH * hd, stride: N }, dKr, { offset: 0, stride: kv }, T, kv);
  copyRows(rec, dqkv, { offset: nH * hd + kv, stride: N }, dVr, { offset: 0, stride: kv }, T, kv);
  // qkv = en·Wembᵀ + hn·Whiddenᵀ
  linearBackward(rec, dH, gr.qkvEmb, dqkv, en, w.qkvEmb, acc("qkvEmb"));
  rmsNormBackward(rec, dH2, gr.inputNorm, dH, emb, w.inputNorm, eps, acc("inputNorm"));
  linearBackward(rec, dH, gr.qkvHidden, dqkv, hn, w.qkvHidden, acc("qkvHidden"));
  // dh = dY + hidden_norm backward (kept in dOut)
  rmsNormBackward(rec, dOut, gr.hiddenNorm, dH, io.hidden, w.hiddenNorm, eps, {
    ...acc("hiddenNorm"),
    accumulateDx: true,
  });
}

/**
 * Record the backward of {@link draftHeadForward}: dLogits (T, Vd) → lm_head and norm gradients
 * into `sink`, and dL/d x into `dX` (T, H) (overwritten, or added with `accumulateDx`). `dNormed`
 * (T, H) is scratch.
 */
export function draftHeadBackward(
  rec: Recorder,
  layer: DraftLayerParams,
  sink: DraftGradSink,
  io: { dLogits: Tensor; normed: Tensor; x: Tensor; dX: Tensor; dNormed: Tensor; accumulateDx?: boolean },
): void {
  const w = layer.weights, gr = sink.grads;
  linearBackward(rec, io.dNormed, gr.lmHead, io.dLogits, io.normed, w.lmHead, {
    accumulateDw: sink.claim("lmHead"),
  });
  rmsNormBackward(rec, io.dX, gr.norm, io.dNormed, io.x, w.norm, layer.config.rmsNormEps, {
    accumulateDw: sink.claim("norm"),
    accumulateDx: io.accumulateDx,
  });
}
