/**
 * CPU reference of the EAGLE-3 draft forward (f32 storage, f64 accumulation), built only from the
 * reference ops. It is the oracle for the GPU draft (`model/eagle3.ts`) and follows the EAGLE
 * authors' `cnets.py` exactly:
 *
 * ```
 * h        = fc(features)                                    (T, H)     once per target forward
 * x        = concat(input_layernorm(embed(ids)), hidden_norm(h))   (T, 2H)
 * q, k, v  = x·Wqᵀ, x·Wkᵀ, x·Wvᵀ, RoPE on q, k at each token's position; k, v → cache rows
 * a        = attention(q, cache, mask)                      causal by default, or any (T, kvLen) mask
 * y        = h + o_proj(a)
 * out      = y + down(silu(gate(n)) · up(n)),  n = post_attention_layernorm(y)    (pre-norm output)
 * logits   = lm_head(norm(out))                             (T, Vd) over the draft vocabulary
 * ```
 *
 * The KV cache has a fixed capacity; each forward writes its rows at `cacheRow` and attends to rows
 * [0, kvLen), so tests can replay prefix + tree expansions exactly as the GPU draft records them.
 * @module
 */

import { ShapeError } from "../errors.ts";
import type { Eagle3Checkpoint } from "../io/eagle3.ts";
import {
  addRef,
  attentionRef,
  causalMask,
  embeddingRef,
  linearRef,
  type MaskLike,
  rmsNormRef,
  ropeRef,
  swigluRef,
} from "./ops.ts";

/** Inputs of {@link Eagle3Ref.forward}. */
export interface Eagle3RefForwardArgs {
  /** (T, H) hidden input: fc(features) or a previous pre-norm output. */
  hidden: Float32Array;
  /** (T) token ids (target vocabulary) whose embeddings pair with `hidden`. */
  ids: ArrayLike<number>;
  /** First cache row written (rows cacheRow..cacheRow+T−1). */
  cacheRow: number;
  /** (T) RoPE positions (default cacheRow + t). */
  positions?: ArrayLike<number>;
  /** Cache rows [0, kvLen) are attended (default cacheRow + T). */
  kvLen?: number;
  /** (T, kvLen) mask, non-zero = may attend; default causal (query t sees rows ≤ kvLen − T + t). */
  mask?: MaskLike;
}

/** Output of {@link Eagle3Ref.forward}. */
export interface Eagle3RefForwardResult {
  /** (T, H) pre-norm output (the next step's hidden input). */
  out: Float32Array;
  /** (T, Vd) logits over the draft vocabulary. */
  logits: Float32Array;
}

/** The EAGLE-3 draft on the CPU with a fixed-capacity KV cache. */
export class Eagle3Ref {
  /** The checkpoint the reference computes with (not copied). */
  readonly ckpt: Eagle3Checkpoint;
  /** KV-cache capacity in rows. */
  readonly capacity: number;
  /** (capacity, nKV·hd) keys after RoPE. */
  readonly kCache: Float32Array;
  /** (capacity, nKV·hd) values. */
  readonly vCache: Float32Array;

  /** Wrap `ckpt` with an empty cache of `capacity` rows. */
  constructor(ckpt: Eagle3Checkpoint, capacity = 256) {
    this.ckpt = ckpt;
    this.capacity = capacity;
    const { numKvHeads: nKV, headDim: hd } = ckpt.config;
    this.kCache = new Float32Array(capacity * nKV * hd);
    this.vCache = new Float32Array(capacity * nKV * hd);
  }

  /** fc: (T, n·Ht) concatenated target features → (T, H). */
  fuse(features: Float32Array): Float32Array {
    const cfg = this.ckpt.config;
    const K = cfg.auxLayerIds.length * cfg.targetHiddenSize;
    if (features.length % K !== 0) throw new ShapeError(`Eagle3Ref.fuse: ${features.length} not (T, ${K})`);
    return linearRef(features, this.ckpt.tensors["fc.weight"], features.length / K, K, cfg.hiddenSize);
  }

  /** lm_head(norm(x)): (T, H) → (T, Vd). */
  head(x: Float32Array): Float32Array {
    const cfg = this.ckpt.config;
    const T = x.length / cfg.hiddenSize;
    const xn = rmsNormRef(x, this.ckpt.tensors["norm.weight"], cfg.rmsNormEps);
    return linearRef(xn, this.ckpt.tensors["lm_head.weight"], T, cfg.hiddenSize, cfg.draftVocabSize);
  }

  /** One draft-layer forward over T tokens, writing their keys/values at `cacheRow`. */
  forward(args: Eagle3RefForwardArgs): Eagle3RefForwardResult {
    const cfg = this.ckpt.config;
    const w = this.ckpt.tensors;
    const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: hd } = cfg;
    const T = args.ids.length;
    if (args.hidden.length !== T * H) {
      throw new ShapeError(
        `Eagle3Ref.forward: hidden has ${args.hidden.length} elements, expected (${T}, ${H})`,
      );
    }
    const kvLen = args.kvLen ?? args.cacheRow + T;
    if (args.cacheRow < 0 || args.cacheRow + T > this.capacity || kvLen > this.capacity || kvLen < 1) {
      throw new ShapeError(
        `Eagle3Ref.forward: rows ${args.cacheRow}+${T} / kvLen ${kvLen} exceed ${this.capacity}`,
      );
    }
    const positions = Int32Array.from(
      { length: T },
      (_, t) => args.positions ? args.positions[t] : args.cacheRow + t,
    );
    const e = rmsNormRef(
      embeddingRef(this.ckpt.embed, args.ids, H),
      w["midlayer.input_layernorm.weight"],
      cfg.rmsNormEps,
    );
    const hn = rmsNormRef(args.hidden, w["midlayer.hidden_norm.weight"], cfg.rmsNormEps);
    // The concat input is formed explicitly here (the GPU draft splits the weights instead).
    const x = new Float32Array(T * 2 * H); // (T, 2H) = [norm(emb) | norm(hidden)]
    for (let t = 0; t < T; t++) {
      x.set(e.subarray(t * H, (t + 1) * H), t * 2 * H);
      x.set(hn.subarray(t * H, (t + 1) * H), t * 2 * H + H);
    }
    const q = ropeRef(
      linearRef(x, w["midlayer.self_attn.q_proj.weight"], T, 2 * H, nH * hd),
      positions,
      cfg.ropeTheta,
      hd,
    );
    const k = ropeRef(
      linearRef(x, w["midlayer.self_attn.k_proj.weight"], T, 2 * H, nKV * hd),
      positions,
      cfg.ropeTheta,
      hd,
    );
    const v = linearRef(x, w["midlayer.self_attn.v_proj.weight"], T, 2 * H, nKV * hd);
    this.kCache.set(k, args.cacheRow * nKV * hd);
    this.vCache.set(v, args.cacheRow * nKV * hd);
    const mask = args.mask ?? causalMask(T, kvLen, kvLen - T);
    const att = attentionRef(
      q,
      this.kCache.subarray(0, kvLen * nKV * hd),
      this.vCache.subarray(0, kvLen * nKV * hd),
      mask,
      1 / Math.sqrt(hd),
      { tq: T, tk: kvLen, nHeads: nH, nKvHeads: nKV, headDim: hd },
    ); // (T, nH·hd)
    const y = addRef(args.hidden, linearRef(att, w["midlayer.self_attn.o_proj.weight"], T, nH * hd, H)); // (T, H)
    const n = rmsNormRef(y, w["midlayer.post_attention_layernorm.weight"], cfg.rmsNormEps);
    const act = swigluRef(
      linearRef(n, w["midlayer.mlp.gate_proj.weight"], T, H, I),
      linearRef(n, w["midlayer.mlp.up_proj.weight"], T, H, I),
    ); // (T, I)
    const out = addRef(y, linearRef(act, w["midlayer.mlp.down_proj.weight"], T, I, H)); // (T, H)
    return { out, logits: this.head(out) };
  }
}
