/**
 * The LLaMA target on the GPU: weights uploaded once into one weight arena (with Q/K/V and gate/up
 * fused into single matrices so each is one dispatch) and a fixed activation workspace sized for
 * `maxBatch` tokens. The KV cache is not part of the model: the caller owns a {@link KvCache} per
 * sequence ({@link LlamaModel.createKvCache}) and passes it to every forward, so several sequences
 * can share one model. `forward` only *records* dispatches — nothing is read back — so callers can
 * encode many decode steps per submit (docs/engine.md §2).
 *
 * Dispatches per layer: rmsNorm, QKV linear, fused RoPE + KV write, attention, O linear (+residual),
 * rmsNorm, gate/up linear, SwiGLU, down linear (+residual) = 9; for T ≤ MATVEC_MAX_M (decode, small
 * trees) the norms are fused into the QKV / gate-up matvecs and SwiGLU into the gate-up store = 6;
 * with {@link LlamaLoadOptions.fuseRopeAttention} (T ≤ 8) RoPE + KV write run inside attention = 5.
 * For a few tokens over a long cache on hardware adapters attention is split-K (`attention`'s
 * `split`: one more dispatch, many more workgroups). Plus embedding, last-row copy (T > 1) and the
 * LM head with the final norm fused per forward.
 * @module
 */
import type { GpuDevice } from "../gpu/device.ts";
import { BufferArena } from "../gpu/arena.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { LlamaConfig } from "../io/config.ts";
import { loadModelDir, type ModelDir } from "../io/model_dir.ts";
import type { WeightStore } from "../io/safetensors.ts";
import { ShapeError } from "../errors.ts";
import { linear, MATVEC_MAX_M } from "../ops/linear.ts";
import { rmsNorm } from "../ops/norm.ts";
import { swiglu } from "../ops/activation.ts";
import { embedding } from "../ops/embedding.ts";
import { attention, type DynamicValue, type SegmentedMask } from "../ops/attention.ts";
import { ropeQkv } from "../ops/rope.ts";
import { ATTENTION_ROPE_MAX_TOKENS, attentionRope, attentionRopeSupports } from "../ops/attention_rope.ts";
import { ATTENTION_MAX_SPLITS, attentionSplits, attentionSplitScratch } from "../ops/attention_split.ts";
import { copyRows } from "../ops/elementwise.ts";
import { KvCache } from "./kv_cache.ts";

/** Options for {@link LlamaModel.load}. */
export interface LlamaLoadOptions {
  /**
   * Storage type of the weight matrices on the GPU. `auto` (default): f16 when the checkpoint is
   * f16/bf16 and a hardware adapter has shader-f16, else f32 — on software adapters f16 loads are
   * slower than the bytes they save (llvmpipe, small, 128-token decode, 2 alternating runs: f32
   * 22.9 / 21.3 tok/s, f16 18.1 / 18.1). Computation is always f32.
   */
  weightDtype?: "auto" | "f32" | "f16";
  /**
   * Default capacity of {@link LlamaModel.createKvCache} in tokens (default: min(max_position_embeddings,
   * 2048)); also bounds `maxBatch`.
   */
  maxSeqLen?: number;
  /** Most tokens one `forward` call may process (prefill chunk / tree size; default 256). */
  maxBatch?: number;
  /**
   * Run RoPE + the KV-cache write inside attention (`attentionRope`) for forwards of ≤ 8 tokens: 5
   * dispatches per layer instead of 6, same results bit for bit. `auto` (default): on hardware
   * adapters (dispatch-bound); off on software adapters, where the fused kernel measured slower
   * than the extra dispatch (llvmpipe, tiny, 256-token decode, 3 alternating runs: 61 / 87 / 86
   * tok/s fused vs 83 / 98 / 87 unfused).
   */
  fuseRopeAttention?: "auto" | boolean;
  /**
   * Split-K attention for forwards of ≤ 8 tokens with a static length: `auto` (default) lets
   * `attentionSplits` decide per forward (hardware: when one workgroup per (token, head) would leave
   * the adapter idle and the cache is long; software adapters: practically never), a number forces
   * that many key ranges (tests, benchmarks; 1 = off).
   */
  attentionSplits?: "auto" | number;
  /**
   * Attention kernel of the unfused path (`attention`'s `kernel`): `auto` (default) = one invocation
   * per (token, kv head) on software adapters, one workgroup per (token, head) elsewhere; forced for
   * tests (the fused kernel is bit-identical to `workgroup`). The segmented mode always uses
   * `workgroup`.
   */
  attentionKernel?: "auto" | "workgroup" | "lanes";
}

/** Where to copy the hidden state entering a layer (for EAGLE-3 feature taps and tests). */
export interface HiddenCapture {
  /** Layer index l in [0, L]: the state entering layer l; l = L is after the last layer (pre final norm). */
  layer: number;
  /** Destination f32 tensor. */
  dst: Tensor;
  /** Element offset of row 0 in `dst` (default 0). */
  offset?: number;
  /** Elements between rows in `dst` (default H). */
  stride?: number;
}

/** Options for {@link LlamaModel.forward}. */
export interface ForwardOptions {
  /** Which logits to compute: all T rows, the last row only (default), or none. */
  logits?: "all" | "last" | "none";
  /** Hidden states to copy out, by layer. */
  capture?: HiddenCapture[];
  /**
   * Position of token t is positions[t] (u32 (T)) instead of pos0 + t (tree depths); pos0 is still
   * the first KV-cache row written.
   */
  positions?: Tensor;
  /**
   * Tree verification: the T tokens are tree nodes; each sees every cached key before them and the
   * tree keys set in its row of this bitset (u32 (T, ceil(T/32)), ancestor-or-self).
   */
  treeMask?: Tensor;
  /**
   * Many trees per forward (GTO training): per-tree prefixes plus each tree's own keys (see
   * `SegmentedMask`); the T rows are written at pos0.. as usual, their positions come from `positions`.
   */
  segmented?: SegmentedMask;
  /**
   * A GPU-resident committed length (`meta[index]`) added to pos0, to every position and to the
   * attention length, so a speculative loop needs no CPU round trip. The caller keeps
   * pos0 + meta[index] + T ≤ the cache's capacity.
   */
  dynamic?: DynamicValue;
}

interface LayerWeights {
  attnNorm: Tensor; // (H)
  qkv: Tensor; // ((nH + 2·nKV)·hd, H)
  o: Tensor; // (H, nH·hd)
  mlpNorm: Tensor; // (H)
  gateUp: Tensor; // (2I, H)
  down: Tensor; // (H, I)
}

/** A LLaMA model resident on the GPU. */
export class LlamaModel {
  /** The validated config. */
  readonly config: LlamaConfig;
  /** The device. */
  readonly gpu: GpuDevice;
  /** Storage dtype of the weight matrices. */
  readonly weightDtype: "f32" | "f16";
  /** Default KV-cache capacity in tokens (see {@link LlamaLoadOptions.maxSeqLen}). */
  readonly maxSeqLen: number;
  /** Most tokens per forward. */
  readonly maxBatch: number;
  /** Whether forwards of ≤ 8 tokens use the fused RoPE + KV write + attention kernel. */
  readonly fuseRopeAttention: boolean;
  readonly #splits: "auto" | number;
  readonly #attnKernel: "workgroup" | "lanes" | undefined;
  /** Bytes of weights on the GPU. */
  readonly weightBytes: number;
  readonly #weights: BufferArena;
  readonly #act: BufferArena;
  readonly #layers: LayerWeights[];
  readonly #embed: Tensor; // (V, H)
  readonly #finalNorm: Tensor; // (H)
  readonly #lmHead: Tensor; // (V, H)
  // Workspace, maxBatch rows each.
  readonly #x: Tensor; // (B, H) residual stream
  readonly #xn: Tensor; // (B, H) normed
  readonly #qkv: Tensor; // (B, (nH+2nKV)·hd)
  readonly #q: Tensor; // (B, nH·hd)
  readonly #att: Tensor; // (B, nH·hd)
  readonly #gateUp: Tensor; // (B, 2I)
  readonly #act1: Tensor; // (B, I)
  readonly #last: Tensor; // (1, H)
  readonly #split: Tensor; // split-K attention partials for ≤ 8 tokens
  /** Logits workspace (B, V); `forward` returns a view of it. */
  readonly logits: Tensor;

  private constructor(gpu: GpuDevice, dir: ModelDir, opts: LlamaLoadOptions) {
    const cfg = dir.config;
    this.config = cfg;
    this.gpu = gpu;
    const want = opts.weightDtype ?? "auto";
    if (want === "f16" && !gpu.features.f16) {
      throw new ShapeError(`${dir.dir}: --weight-dtype f16 needs shader-f16, which ${gpu.adapterName} lacks`);
    }
    const software = gpu.isFallback || /llvmpipe|lavapipe|swiftshader/i.test(gpu.adapterName);
    this.weightDtype = want === "auto"
      ? (cfg.dtype !== "float32" && gpu.features.f16 && !software ? "f16" : "f32")
      : want;
    this.maxSeqLen = opts.maxSeqLen ?? Math.min(cfg.maxPositionEmbeddings, 2048);
    this.maxBatch = Math.min(opts.maxBatch ?? 256, this.maxSeqLen);
    const fuse = opts.fuseRopeAttention ?? "auto";
    this.fuseRopeAttention = fuse === "auto" ? !software : fuse;
    const sp = opts.attentionSplits ?? "auto";
    if (sp !== "auto" && (!Number.isInteger(sp) || sp < 1 || sp > ATTENTION_MAX_SPLITS)) {
      throw new ShapeError(
        `attentionSplits must be "auto" or an integer in [1, ${ATTENTION_MAX_SPLITS}], got ${sp}`,
      );
    }
    this.#splits = sp;
    const ak = opts.attentionKernel ?? "auto";
    this.#attnKernel = ak === "auto" ? undefined : ak;
    const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: hd, vocabSize: V } =
      cfg;
    const w = dir.weights;
    const wbytes = this.weightDtype === "f16" ? 2 : 4;
    const matrixBytes = wbytes * (V * H * (cfg.tieWordEmbeddings ? 1 : 2) +
      cfg.numLayers * (((nH + 2 * nKV) * hd + nH * hd) * H + 3 * I * H));
    this.#weights = new BufferArena(
      gpu,
      matrixBytes + (cfg.numLayers * 2 + 1) * H * 4 + (2 * cfg.numLayers + 8) * 256,
      "weights",
    );
    const mat = (names: string[], rows: number[], cols: number, label: string): Tensor => {
      const total = rows.reduce((a, b) => a + b, 0);
      if (this.weightDtype === "f16") {
        const data = new Uint16Array(total * cols);
        let at = 0;
        names.forEach((n, i) => {
          data.set(w.f16Bits(n, [rows[i], cols]), at);
          at += rows[i] * cols;
        });
        return this.#weights.upload(data, [total, cols], "f16", label);
      }
      const data = new Float32Array(total * cols);
      let at = 0;
      names.forEach((n, i) => {
        data.set(w.f32(n, [rows[i], cols]), at);
        at += rows[i] * cols;
      });
      return this.#weights.upload(data, [total, cols], "f32", label);
    };
    const vec = (name: string) => this.#weights.upload(w.f32(name, [H]), [H], "f32", name);
    this.#embed = mat(["model.embed_tokens.weight"], [V], H, "embed_tokens");
    this.#layers = [];
    for (let l = 0; l < cfg.numLayers; l++) {
      const p = `model.layers.${l}.`;
      this.#layers.push({
        attnNorm: vec(`${p}input_layernorm.weight`),
        qkv: mat(
          [`${p}self_attn.q_proj.weight`, `${p}self_attn.k_proj.weight`, `${p}self_attn.v_proj.weight`],
          [nH * hd, nKV * hd, nKV * hd],
          H,
          `${p}qkv`,
        ),
        o: mat([`${p}self_attn.o_proj.weight`], [H], nH * hd, `${p}o_proj`),
        mlpNorm: vec(`${p}post_attention_layernorm.weight`),
        gateUp: mat([`${p}mlp.gate_proj.weight`, `${p}mlp.up_proj.weight`], [I, I], H, `${p}gate_up`),
        down: mat([`${p}mlp.down_proj.weight`], [H], I, `${p}down_proj`),
      });
    }
    this.#finalNorm = vec("model.norm.weight");
    this.#lmHead = cfg.tieWordEmbeddings ? this.#embed : mat(["lm_head.weight"], [V], H, "lm_head");
    this.weightBytes = this.#weights.used;

    const B = this.maxBatch;
    const splitFloats = attentionSplitScratch(ATTENTION_ROPE_MAX_TOKENS, nH, hd, ATTENTION_MAX_SPLITS);
    const actBytes = 4 * (B * (2 * H + (nH + 2 * nKV) * hd + 2 * nH * hd + 3 * I + V) + H + splitFloats) +
      64 * 256;
    this.#act = new BufferArena(gpu, actBytes, "activations");
    this.#x = this.#act.alloc([B, H], "f32", "x");
    this.#xn = this.#act.alloc([B, H], "f32", "x_norm");
    this.#qkv = this.#act.alloc([B, (nH + 2 * nKV) * hd], "f32", "qkv");
    this.#q = this.#act.alloc([B, nH * hd], "f32", "q");
    this.#att = this.#act.alloc([B, nH * hd], "f32", "attn_out");
    this.#gateUp = this.#act.alloc([B, 2 * I], "f32", "gate_up");
    this.#act1 = this.#act.alloc([B, I], "f32", "mlp_act");
    this.#last = this.#act.alloc([1, H], "f32", "last_hidden");
    this.logits = this.#act.alloc([B, V], "f32", "logits");
    this.#split = this.#act.alloc([splitFloats], "f32", "attn_split");
  }

  /** Load a model directory (or an already loaded {@link ModelDir}) onto the GPU. */
  static async load(
    gpu: GpuDevice,
    dir: string | ModelDir,
    opts: LlamaLoadOptions = {},
  ): Promise<LlamaModel> {
    const md = typeof dir === "string" ? await loadModelDir(dir) : dir;
    return new LlamaModel(gpu, md, opts);
  }

  /** Build directly from a config and weights (tests, custom loaders). */
  static fromWeights(
    gpu: GpuDevice,
    config: LlamaConfig,
    weights: WeightStore,
    opts: LlamaLoadOptions = {},
  ): LlamaModel {
    return new LlamaModel(gpu, { dir: weights.source, config, weights } as ModelDir, opts);
  }

  /**
   * A zero-filled KV cache for this model with `capacity` rows (default {@link maxSeqLen}); the caller
   * owns it (destroy it when done). Allocate once per sequence slot, never per step.
   */
  createKvCache(capacity: number = this.maxSeqLen, label = "kv"): KvCache {
    const { numLayers, numKvHeads, headDim } = this.config;
    return KvCache.allocate(this.gpu, { layers: numLayers, capacity, rowWidth: numKvHeads * headDim }, label);
  }

  /**
   * Record a forward over the T tokens ids[idsOffset, idsOffset+T) (u32 GPU tensor) at positions
   * pos0..pos0+T−1, writing their keys/values into rows pos0.. of `kv` and attending causally to
   * rows [0, pos0+T). Returns the logits view — (T, V) for `all`, (1, V) for `last` — or null.
   */
  forward(
    rec: Recorder,
    kv: KvCache,
    ids: Tensor,
    idsOffset: number,
    T: number,
    pos0: number,
    opts: ForwardOptions = {},
  ): Tensor | null {
    const cfg = this.config;
    const { hiddenSize: H, numHeads: nH, numKvHeads: nKV, headDim: hd } = cfg;
    if (!Number.isInteger(T) || T < 1 || T > this.maxBatch) {
      throw new ShapeError(`forward: T=${T} tokens; this model was loaded for 1..${this.maxBatch} per call`);
    }
    kv.expect(cfg.numLayers, nKV * hd, 0, "forward");
    if (!Number.isInteger(pos0) || pos0 < 0 || pos0 + T > kv.capacity) {
      throw new ShapeError(
        `forward: positions ${pos0}..${pos0 + T - 1} exceed the KV cache (${kv.capacity})`,
      );
    }
    const x = this.#x.rows(T), xn = this.#xn.rows(T), qkv = this.#qkv.rows(T), q = this.#q.rows(T);
    const att = this.#att.rows(T), gateUp = this.#gateUp.rows(T), act = this.#act1.rows(T);
    const captures = opts.capture ?? [];
    for (const c of captures) {
      if (c.layer < 0 || c.layer > cfg.numLayers) throw new ShapeError(`capture: no layer ${c.layer}`);
    }
    const capture = (l: number) => {
      for (const c of captures) {
        if (c.layer === l) {
          copyRows(
            rec,
            c.dst,
            { offset: c.offset ?? 0, stride: c.stride ?? H },
            x,
            { offset: 0, stride: H },
            T,
            H,
          );
        }
      }
    };
    embedding(rec, x, this.#embed, ids, { idsOffset });
    const dims = { numHeads: nH, numKvHeads: nKV, headDim: hd };
    const fused = T <= MATVEC_MAX_M, eps = cfg.rmsNormEps;
    const fuseAttn = this.fuseRopeAttention && attentionRopeSupports(T, hd) && !opts.segmented;
    // Split-K attention for a few tokens over a long cache (statically known lengths only: with a
    // GPU-resident length the key count is unknown here).
    const splits = T > ATTENTION_ROPE_MAX_TOKENS || opts.dynamic || opts.segmented
      ? 1
      : this.#splits === "auto"
      ? attentionSplits(rec, T, nH, pos0 + T)
      : this.#splits;
    for (let l = 0; l < cfg.numLayers; l++) {
      capture(l);
      const w = this.#layers[l];
      // Few rows (decode, small trees): RMSNorm fused into the QKV and gate/up matvecs and SwiGLU
      // into the gate/up store (7 dispatches per layer instead of 9); else the separate ops.
      if (fused) linear(rec, qkv, x, w.qkv, { norm: { weight: w.attnNorm, eps } });
      else {
        rmsNorm(rec, xn, x, w.attnNorm, eps);
        linear(rec, qkv, xn, w.qkv);
      }
      const rope = {
        ...dims,
        theta: cfg.ropeTheta,
        cacheRow: pos0,
        pos0,
        positions: opts.positions,
        dynamicRow: opts.dynamic,
        dynamicPos: opts.dynamic,
      };
      const attn = {
        ...dims,
        kvLen: pos0 + T,
        treeMask: opts.treeMask ? { mask: opts.treeMask, treeLen: T } : undefined,
        dynamicLen: opts.dynamic,
        segmented: opts.segmented,
      };
      if (splits === 1 && fuseAttn) attentionRope(rec, att, qkv, kv.k[l], kv.v[l], { ...rope, ...attn });
      else {
        ropeQkv(rec, q, kv.k[l], kv.v[l], qkv, rope);
        attention(rec, att, q, kv.k[l], kv.v[l], {
          ...attn,
          split: splits > 1 ? { scratch: this.#split, splits } : undefined,
          kernel: opts.segmented ? undefined : this.#attnKernel,
        });
      }
      linear(rec, x, att, w.o, { residual: x });
      if (fused) linear(rec, act, x, w.gateUp, { norm: { weight: w.mlpNorm, eps }, swiglu: true });
      else {
        rmsNorm(rec, xn, x, w.mlpNorm, eps);
        linear(rec, gateUp, xn, w.gateUp);
        swiglu(rec, act, gateUp);
      }
      linear(rec, x, act, w.down, { residual: x });
    }
    capture(cfg.numLayers);
    const mode = opts.logits ?? "last";
    if (mode === "none") return null;
    if (mode === "all") {
      rmsNorm(rec, xn, x, this.#finalNorm, cfg.rmsNormEps);
      const logits = this.logits.rows(T);
      linear(rec, logits, xn, this.#lmHead);
      return logits;
    }
    const logits = this.logits.rows(1);
    if (T === 1) { // decode: the final norm fused into the LM head, no last-row copy
      linear(rec, logits, x, this.#lmHead, { norm: { weight: this.#finalNorm, eps } });
      return logits;
    }
    copyRows(rec, this.#last, { offset: 0, stride: H }, x, { offset: (T - 1) * H, stride: H }, 1, H);
    linear(rec, logits, this.#last, this.#lmHead, { norm: { weight: this.#finalNorm, eps } });
    return logits;
  }

  /** Free the GPU memory (weights and workspace; KV caches belong to their creators). */
  destroy(): void {
    this.#weights.destroy();
    this.#act.destroy();
  }
}
