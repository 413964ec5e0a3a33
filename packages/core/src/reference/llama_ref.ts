/**
 * A CPU LLaMA forward pass with a KV cache, built only from the reference ops in `ops.ts`.
 *
 * It exists to close the loop between PyTorch and our GPU engine: this forward is checked against
 * the transformers outputs bundled in `models/<name>/reference.json`, and the GPU model (and the
 * draft/tree code that consumes hidden states) is then checked against this forward on inputs that
 * PyTorch never saw. It follows HF `LlamaForCausalLM` exactly: pre-norm RMSNorm, rotate-half RoPE,
 * grouped-query attention with scale 1/√hd, SwiGLU MLP, final norm and an lm_head that is the
 * embedding table when `tie_word_embeddings` is set. Everything is f32 storage with f64
 * accumulation; speed is whatever plain loops give (fine for the tiny models used in tests).
 * @module
 */

import { ShapeError } from "../errors.ts";
import type { LlamaConfig } from "../io/config.ts";
import {
  addRef,
  argmaxRef,
  attentionRef,
  causalMask,
  embeddingRef,
  linearRef,
  rmsNormRef,
  ropeRef,
  swigluRef,
} from "./ops.ts";

/**
 * The subset of the loader's `LlamaConfig` the reference forward needs; a full `LlamaConfig` (from
 * `loadLlamaConfig`) can be passed as is, and tests can build this by hand.
 */
export type RefLlamaConfig = Pick<
  LlamaConfig,
  | "hiddenSize"
  | "intermediateSize"
  | "numLayers"
  | "numHeads"
  | "numKvHeads"
  | "headDim"
  | "vocabSize"
  | "rmsNormEps"
  | "ropeTheta"
  | "tieWordEmbeddings"
>;

/** Options for {@link LlamaRef.forward}. */
export interface LlamaRefForwardOptions {
  /**
   * Layers l in [0, L] whose input hidden state to return (l = L: after the last layer, before the
   * final norm).
   */
  returnHiddenAtLayers?: number[];
}

/** Output of {@link LlamaRef.forward}. */
export interface LlamaRefForwardResult {
  /** (T, V) logits of the new tokens. */
  logits: Float32Array;
  /** Layer l → (T, H) hidden state entering layer l, for each requested layer. */
  hidden: Map<number, Float32Array>;
}

interface LayerWeights {
  inputNorm: Float32Array; // (H)
  wq: Float32Array; // (nH·hd, H)
  wk: Float32Array; // (nKV·hd, H)
  wv: Float32Array; // (nKV·hd, H)
  wo: Float32Array; // (H, nH·hd)
  postNorm: Float32Array; // (H)
  wGate: Float32Array; // (I, H)
  wUp: Float32Array; // (I, H)
  wDown: Float32Array; // (H, I)
}

/** Growable (capacity, nKV, hd) key or value cache for one layer. */
class CacheBuffer {
  data: Float32Array;
  constructor(readonly rowLen: number) {
    this.data = new Float32Array(64 * rowLen);
  }
  /** Write `rows` (T, rowLen) starting at token index `at`, growing as needed. */
  write(at: number, rows: Float32Array): void {
    const need = at * this.rowLen + rows.length;
    if (need > this.data.length) {
      const grown = new Float32Array(Math.max(need, this.data.length * 2));
      grown.set(this.data.subarray(0, at * this.rowLen));
      this.data = grown;
    }
    this.data.set(rows, at * this.rowLen);
  }
  /** View of the first `len` tokens: (len, rowLen). */
  view(len: number): Float32Array {
    return this.data.subarray(0, len * this.rowLen);
  }
}

/**
 * CPU reference LLaMA with a KV cache. Each `forward` appends its tokens after those already cached
 * (positions continue from the cache length); `reset` empties the cache.
 */
export class LlamaRef {
  /** The configuration this model was built with. */
  readonly cfg: RefLlamaConfig;
  #embed: Float32Array; // (V, H)
  #lmHead: Float32Array; // (V, H)
  #finalNorm: Float32Array; // (H)
  #layers: LayerWeights[];
  #kCache: CacheBuffer[];
  #vCache: CacheBuffer[];
  #len = 0;

  /**
   * Fetch and shape-check all weights up front.
   * @param cfg model hyper-parameters
   * @param weights returns the f32 tensor for an HF weight name (e.g. `model.layers.0.self_attn.q_proj.weight`)
   */
  constructor(cfg: RefLlamaConfig, weights: (name: string) => Float32Array) {
    this.cfg = cfg;
    const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: hd, vocabSize: V } =
      cfg;
    if (nKV <= 0 || nH % nKV !== 0) throw new ShapeError(`LlamaRef: ${nH} heads not divisible by ${nKV}`);
    const get = (name: string, n: number, shape: string): Float32Array => {
      const w = weights(name);
      if (w.length !== n) {
        throw new ShapeError(`LlamaRef: ${name} has ${w.length} elements, expected ${shape}`);
      }
      return w;
    };
    this.#embed = get("model.embed_tokens.weight", V * H, `(${V}, ${H})`);
    this.#lmHead = cfg.tieWordEmbeddings ? this.#embed : get("lm_head.weight", V * H, `(${V}, ${H})`);
    this.#finalNorm = get("model.norm.weight", H, `(${H})`);
    this.#layers = [];
    for (let l = 0; l < cfg.numLayers; l++) {
      const p = `model.layers.${l}.`;
      this.#layers.push({
        inputNorm: get(`${p}input_layernorm.weight`, H, `(${H})`),
        wq: get(`${p}self_attn.q_proj.weight`, nH * hd * H, `(${nH * hd}, ${H})`),
        wk: get(`${p}self_attn.k_proj.weight`, nKV * hd * H, `(${nKV * hd}, ${H})`),
        wv: get(`${p}self_attn.v_proj.weight`, nKV * hd * H, `(${nKV * hd}, ${H})`),
        wo: get(`${p}self_attn.o_proj.weight`, H * nH * hd, `(${H}, ${nH * hd})`),
        postNorm: get(`${p}post_attention_layernorm.weight`, H, `(${H})`),
        wGate: get(`${p}mlp.gate_proj.weight`, I * H, `(${I}, ${H})`),
        wUp: get(`${p}mlp.up_proj.weight`, I * H, `(${I}, ${H})`),
        wDown: get(`${p}mlp.down_proj.weight`, H * I, `(${H}, ${I})`),
      });
    }
    this.#kCache = this.#layers.map(() => new CacheBuffer(nKV * hd));
    this.#vCache = this.#layers.map(() => new CacheBuffer(nKV * hd));
  }

  /** Number of tokens currently in the KV cache (= position of the next token). */
  get length(): number {
    return this.#len;
  }

  /** Empty the KV cache; the next `forward` starts at position 0. */
  reset(): void {
    this.#len = 0;
  }

  /** Keep only the first `len` cached tokens (≤ length); the next `forward` continues at position len. */
  truncate(len: number): void {
    if (!Number.isInteger(len) || len < 0 || len > this.#len) {
      throw new ShapeError(`LlamaRef.truncate: ${len} outside [0, ${this.#len}]`);
    }
    this.#len = len;
  }

  /**
   * Run the new tokens `ids` through the model after the cached ones, appending their keys/values.
   * @param ids (T) token ids
   * @returns logits (T, V) and the requested hidden states (T, H) per layer
   */
  forward(ids: number[], opts: LlamaRefForwardOptions = {}): LlamaRefForwardResult {
    const cfg = this.cfg;
    const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: hd, vocabSize: V } =
      cfg;
    const L = cfg.numLayers;
    const want = new Set(opts.returnHiddenAtLayers ?? []);
    for (const l of want) {
      if (!Number.isInteger(l) || l < 0 || l > L) {
        throw new ShapeError(`LlamaRef: no layer ${l} in [0, ${L}]`);
      }
    }
    const T = ids.length;
    const past = this.#len;
    const tk = past + T;
    const positions = Int32Array.from({ length: T }, (_, t) => past + t); // (T)
    const mask = causalMask(T, tk, past); // (T, Tk)
    const scale = 1 / Math.sqrt(hd);
    const hidden = new Map<number, Float32Array>();

    let x = embeddingRef(this.#embed, ids, H); // (T, H)
    for (let l = 0; l < L; l++) {
      if (want.has(l)) hidden.set(l, x.slice());
      const w = this.#layers[l];
      const h = rmsNormRef(x, w.inputNorm, cfg.rmsNormEps); // (T, H)
      const q = ropeRef(linearRef(h, w.wq, T, H, nH * hd), positions, cfg.ropeTheta, hd); // (T, nH, hd)
      const k = ropeRef(linearRef(h, w.wk, T, H, nKV * hd), positions, cfg.ropeTheta, hd); // (T, nKV, hd)
      const v = linearRef(h, w.wv, T, H, nKV * hd); // (T, nKV, hd)
      this.#kCache[l].write(past, k);
      this.#vCache[l].write(past, v);
      const att = attentionRef(q, this.#kCache[l].view(tk), this.#vCache[l].view(tk), mask, scale, {
        tq: T,
        tk,
        nHeads: nH,
        nKvHeads: nKV,
        headDim: hd,
      }); // (T, nH, hd)
      x = addRef(x, linearRef(att, w.wo, T, nH * hd, H)); // (T, H)
      const h2 = rmsNormRef(x, w.postNorm, cfg.rmsNormEps); // (T, H)
      const act = swigluRef(linearRef(h2, w.wGate, T, H, I), linearRef(h2, w.wUp, T, H, I)); // (T, I)
      x = addRef(x, linearRef(act, w.wDown, T, I, H)); // (T, H)
    }
    if (want.has(L)) hidden.set(L, x.slice());
    this.#len = tk;
    const xn = rmsNormRef(x, this.#finalNorm, cfg.rmsNormEps); // (T, H)
    const logits = linearRef(xn, this.#lmHead, T, H, V); // (T, V)
    return { logits, hidden };
  }

  /**
   * Greedy decoding: reset the cache, prefill `prompt`, then emit `n` argmax tokens one at a time
   * through the KV cache (no early stop).
   * @param prompt (T) prompt token ids, non-empty
   * @param n number of tokens to generate
   * @returns the n generated token ids
   */
  greedy(prompt: number[], n: number): number[] {
    if (prompt.length === 0) throw new ShapeError("LlamaRef.greedy: empty prompt");
    const V = this.cfg.vocabSize;
    this.reset();
    const out: number[] = [];
    let logits = this.forward(prompt).logits; // (T, V)
    for (let i = 0; i < n; i++) {
      const last = logits.subarray(logits.length - V); // (V)
      const next = argmaxRef(last, V)[0];
      out.push(next);
      if (i + 1 < n) logits = this.forward([next]).logits; // (1, V)
    }
    return out;
  }
}
