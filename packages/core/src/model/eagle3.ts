/**
 * The EAGLE-3 draft model on the GPU (docs/engine.md §1): `fc` fuses the target's feature taps, one
 * decoder layer whose attention input is concat(input_layernorm(embedding), hidden_norm(h)) with
 * residual h, a final norm and an lm_head over the reduced draft vocabulary (target id = draft id +
 * d2t[draft id]). Like {@link LlamaModel}, every method only *records* dispatches into a Recorder —
 * no readback — so tree growth and training steps can be encoded ahead.
 *
 * Layout on the GPU: the trainable weights share one arena (one buffer when it fits a binding, so
 * {@link Eagle3Draft.params} can expose them as one flat f32 vector for optimisers); the frozen
 * embedding and the d2t maps live in another; a workspace for `maxBatch` rows is allocated at load,
 * so no GPU object is created per call. The KV cache is the caller's ({@link KvCache}, one layer; see
 * {@link Eagle3Draft.createKvCache}), passed to every forward.
 *
 * The concat is never materialised: q/k/v_proj (N, 2H) are stored as their two column halves
 * `qkvEmb` (N, H) and `qkvHidden` (N, H) with q, k, v rows stacked (N = (nH + 2·nKV)·hd), and the
 * projection is two accumulating linears. This class decodes, so it records the layer's fused
 * variant (draft_layer.ts): `draftInput` (embedding + both input norms, + the tree's row pick of the
 * hidden input with `hiddenRows`), 2 linear (QKV), ropeQkv, attention (one `attentionRope` dispatch
 * with {@link Eagle3Options.fuseRopeAttention}), o linear (+residual), gate/up linear with
 * post_attention_layernorm and SwiGLU fused, down linear (+residual) = 8 (7), plus lm_head with the
 * final norm fused for logits, where `linearFuses` says so for the rows (else up to 10 + 2). The
 * layer itself (shared with training, which runs it unfused) is `draft_layer.ts`; this class owns the
 * weights, the cache and the decoding workspace.
 * @module
 */
import type { GpuDevice } from "../gpu/device.ts";
import { BufferArena } from "../gpu/arena.ts";
import type { Recorder } from "../gpu/recorder.ts";
import { Tensor } from "../gpu/tensor.ts";
import { loadModelDir, type ModelDir } from "../io/model_dir.ts";
import {
  EAGLE3_TENSOR_NAMES,
  type Eagle3Checkpoint,
  type Eagle3Config,
  type Eagle3InitOptions,
  type Eagle3TensorName,
  initEagle3Checkpoint,
  loadEagle3Checkpoint,
  saveEagle3Checkpoint,
} from "../io/eagle3.ts";
import { ShapeError } from "../errors.ts";
import { linear } from "../ops/linear.ts";
import type { DynamicValue, SegmentedMask, TreeMask } from "../ops/attention.ts";
import {
  draftHeadForward,
  type DraftLayerActs,
  draftLayerForward,
  type Eagle3GpuWeights,
} from "./draft_layer.ts";

import { KvCache } from "./kv_cache.ts";

export type { Eagle3GpuWeights } from "./draft_layer.ts";

/** Options for loading or creating an {@link Eagle3Draft}. */
export interface Eagle3Options {
  /**
   * Default capacity of {@link Eagle3Draft.createKvCache} in rows (default min(max_position_embeddings,
   * 2048)); also bounds `maxBatch`.
   */
  maxSeqLen?: number;
  /** Most rows one forward may process (prefill chunk / tree frontier; default 256). */
  maxBatch?: number;
  /**
   * RoPE + the KV-cache write inside attention (`attentionRope`) for forwards of ≤ 8 rows with a
   * causal or tree mask: one dispatch fewer per draft step, same results bit for bit. `auto`
   * (default): on hardware adapters, off on software adapters, as `LlamaLoadOptions.fuseRopeAttention`
   * (measured there).
   */
  fuseRopeAttention?: "auto" | boolean;
}

/** Options for {@link Eagle3Draft.create}: initialisation plus sizes. */
export interface Eagle3CreateOptions extends Eagle3Options, Eagle3InitOptions {}

/** Inputs of {@link Eagle3Draft.forward}. */
export interface Eagle3ForwardArgs {
  /** The draft KV cache (one layer; see {@link Eagle3Draft.createKvCache}). */
  kv: KvCache;
  /**
   * (≥T, H) f32 hidden input (fc(features) or a previous `out`); rows [0, T) are used, or the rows
   * `hiddenRows` names.
   */
  hidden: Tensor;
  /**
   * u32 row indices: hidden row t is `hidden[hiddenRows[hiddenRowsOffset + t]]` (tree growth: each
   * frontier node continues its parent's row), picked inside the input dispatch into the draft's
   * workspace (so `out` may be `hidden` itself, e.g. the previous level's output).
   */
  hiddenRows?: Tensor;
  /** First entry of `hiddenRows` used (default 0). */
  hiddenRowsOffset?: number;
  /** u32 token ids (target vocabulary); ids[idsOffset + t] pairs with hidden row t. */
  ids: Tensor;
  /** Index of the first id in `ids` (default 0). */
  idsOffset?: number;
  /** Rows in this call, 1..maxBatch. */
  T: number;
  /** KV-cache row of token 0 (rows cacheRow..cacheRow+T−1 are written). */
  cacheRow: number;
  /** GPU scalar added to the cache row (and to positions unless `dynamicPos` is given). */
  dynamicRow?: DynamicValue;
  /** Position of token t is pos0 + t (default cacheRow) unless `positions` is given. */
  pos0?: number;
  /** (T) u32 per-token positions (tree nodes share depths). */
  positions?: Tensor;
  /** GPU scalar added to every position. */
  dynamicPos?: DynamicValue;
  /** Cache rows [0, kvLen) (+ `dynamicLen`) are attended. */
  kvLen: number;
  /** GPU scalar added to kvLen. */
  dynamicLen?: DynamicValue;
  /** Prefix + tree mask over the last `treeLen` valid rows; default causal. */
  treeMask?: TreeMask;
  /** Full (T, ⌈kvLen/32⌉) bitset mask (static kvLen only); default causal. */
  mask?: Tensor;
  /** Per-tree prefixes plus each tree's own keys (GTO: P trees per forward; see `SegmentedMask`). */
  segmented?: SegmentedMask;
  /** Where to write the (T, H) output (default the draft's workspace); may be `hidden` itself. */
  out?: Tensor;
  /** Compute logits for all rows (default) or none. */
  logits?: "all" | "none";
}

/** Outputs of {@link Eagle3Draft.forward} (views; valid until the next call overwrites them). */
export interface Eagle3ForwardResult {
  /** (T, H) pre-norm output: the hidden input of the next draft step. */
  out: Tensor;
  /** (T, Vd) logits over the draft vocabulary, or null for `logits: "none"`. */
  logits: Tensor | null;
}

/** An EAGLE-3 draft resident on the GPU. */
export class Eagle3Draft {
  /** The validated draft config. */
  readonly config: Eagle3Config;
  /** The device. */
  readonly gpu: GpuDevice;
  /** Default KV-cache capacity in rows. */
  readonly maxSeqLen: number;
  /** Most rows per forward. */
  readonly maxBatch: number;
  /** Whether forwards of ≤ 8 rows run RoPE + the KV write inside attention (resolved option). */
  readonly fuseRopeAttention: boolean;
  /** Trainable weights. */
  readonly weights: Readonly<Eagle3GpuWeights>;
  /**
   * All trainable weights as one flat f32 vector (the span of the weight arena from the first to
   * the last tensor; alignment gaps are zero), or null when they did not fit one buffer.
   */
  readonly params: Tensor | null;
  /** (V, H) frozen token embedding. */
  readonly embed: Tensor;
  /** (Vd) i32 offsets: target id = draft id + d2t[draft id]. */
  readonly d2t: Tensor;
  /** (Vd) u32 target id of each draft id (= id + d2t[id]). */
  readonly draftToTarget: Tensor;
  /** Host copy of d2t (Vd). */
  readonly d2tHost: Int32Array;
  /** Host t2d (V): 1 where the target id is in the draft vocabulary. */
  readonly t2d: Uint8Array;
  readonly #embedHost: Float32Array;
  readonly #weightArena: BufferArena;
  readonly #frozen: BufferArena;
  readonly #act: BufferArena;
  // Workspace, maxBatch rows each.
  readonly #en: Tensor; // (B, H) input_layernorm(embedding)
  readonly #hn: Tensor; // (B, H) hidden_norm(hidden), same buffer as #en (draftInput writes both)
  readonly #hin: Tensor; // (B, H) hidden rows picked by `hiddenRows`
  readonly #qkv: Tensor; // (B, (nH+2nKV)·hd)
  readonly #q: Tensor; // (B, nH·hd)
  readonly #att: Tensor; // (B, nH·hd)
  readonly #out: Tensor; // (B, H)
  readonly #xn: Tensor; // (B, H)
  readonly #gateUp: Tensor; // (B, 2I)
  readonly #act1: Tensor; // (B, I)
  readonly #logits: Tensor; // (B, Vd)

  private constructor(gpu: GpuDevice, ckpt: Eagle3Checkpoint, opts: Eagle3Options) {
    const cfg = ckpt.config;
    this.config = cfg;
    this.gpu = gpu;
    this.maxSeqLen = opts.maxSeqLen ?? Math.min(cfg.maxPositionEmbeddings, 2048);
    this.maxBatch = Math.min(opts.maxBatch ?? 256, this.maxSeqLen);
    const software = gpu.isFallback || /llvmpipe|lavapipe|swiftshader/i.test(gpu.adapterName);
    const fra = opts.fuseRopeAttention ?? "auto";
    this.fuseRopeAttention = fra === "auto" ? !software : fra;
    if (!Number.isInteger(this.maxSeqLen) || this.maxSeqLen < 1 || !Number.isInteger(this.maxBatch)) {
      throw new ShapeError(`Eagle3Draft: maxSeqLen ${this.maxSeqLen} / maxBatch ${this.maxBatch} invalid`);
    }
    const {
      hiddenSize: H,
      intermediateSize: I,
      numHeads: nH,
      numKvHeads: nKV,
      headDim: hd,
      vocabSize: V,
      draftVocabSize: Vd,
    } = cfg;
    const N = (nH + 2 * nKV) * hd;
    const t = ckpt.tensors;

    const floats = EAGLE3_TENSOR_NAMES.reduce((s, n) => s + t[n].length, 0);
    this.#weightArena = new BufferArena(gpu, 4 * floats + 16 * 256, "eagle3-weights");
    const up = (data: Float32Array, shape: number[], name: string) =>
      this.#weightArena.upload(data, shape, "f32", name);
    const qkvE = new Float32Array(N * H), qkvH = new Float32Array(N * H);
    let row = 0;
    for (const name of ["q_proj", "k_proj", "v_proj"]) {
      const w = t[`midlayer.self_attn.${name}.weight` as Eagle3TensorName]; // (rows, 2H)
      const rows = w.length / (2 * H);
      for (let r = 0; r < rows; r++, row++) {
        qkvE.set(w.subarray(r * 2 * H, r * 2 * H + H), row * H);
        qkvH.set(w.subarray(r * 2 * H + H, (r + 1) * 2 * H), row * H);
      }
    }
    const gateUp = new Float32Array(2 * I * H);
    gateUp.set(t["midlayer.mlp.gate_proj.weight"]);
    gateUp.set(t["midlayer.mlp.up_proj.weight"], I * H);
    const K = cfg.auxLayerIds.length * cfg.targetHiddenSize;
    const w: Eagle3GpuWeights = {
      fc: up(t["fc.weight"], [H, K], "fc"),
      inputNorm: up(t["midlayer.input_layernorm.weight"], [H], "input_layernorm"),
      hiddenNorm: up(t["midlayer.hidden_norm.weight"], [H], "hidden_norm"),
      qkvEmb: up(qkvE, [N, H], "qkv_emb"),
      qkvHidden: up(qkvH, [N, H], "qkv_hidden"),
      o: up(t["midlayer.self_attn.o_proj.weight"], [H, nH * hd], "o_proj"),
      postNorm: up(t["midlayer.post_attention_layernorm.weight"], [H], "post_attention_layernorm"),
      gateUp: up(gateUp, [2 * I, H], "gate_up"),
      down: up(t["midlayer.mlp.down_proj.weight"], [H, I], "down_proj"),
      norm: up(t["norm.weight"], [H], "norm"),
      lmHead: up(t["lm_head.weight"], [Vd, H], "lm_head"),
    };
    this.weights = w;
    const all = Object.values(w) as Tensor[];
    const first = all[0], last = all[all.length - 1];
    this.params = all.every((x) => x.buffer === first.buffer)
      ? new Tensor(
        first.buffer,
        first.offset,
        [(last.offset + last.byteLength - first.offset) / 4],
        "f32",
        "params",
      )
      : null;

    this.#frozen = new BufferArena(gpu, 4 * (V * H + 2 * Vd) + 4 * 256, "eagle3-frozen");
    this.#embedHost = ckpt.embed;
    this.embed = this.#frozen.upload(ckpt.embed, [V, H], "f32", "draft_embed");
    this.d2tHost = ckpt.d2t.slice();
    this.t2d = ckpt.t2d.slice();
    this.d2t = this.#frozen.upload(this.d2tHost, [Vd], "i32", "d2t");
    this.draftToTarget = this.#frozen.upload(
      Uint32Array.from(this.d2tHost, (d, i) => i + d),
      [Vd],
      "u32",
      "draft_to_target",
    );

    const B = this.maxBatch;
    const actBytes = 4 * B * (5 * H + N + 2 * nH * hd + 3 * I + Vd) + 16 * 256;
    this.#act = new BufferArena(gpu, actBytes, "eagle3-activations");
    this.#en = this.#act.alloc([B, H], "f32", "draft_input_norm");
    this.#hn = this.#act.alloc([B, H], "f32", "draft_hidden_norm");
    this.#hin = this.#act.alloc([B, H], "f32", "draft_hidden_rows");
    this.#qkv = this.#act.alloc([B, N], "f32", "draft_qkv");
    this.#q = this.#act.alloc([B, nH * hd], "f32", "draft_q");
    this.#att = this.#act.alloc([B, nH * hd], "f32", "draft_attn");
    this.#out = this.#act.alloc([B, H], "f32", "draft_out");
    this.#xn = this.#act.alloc([B, H], "f32", "draft_x_norm");
    this.#gateUp = this.#act.alloc([B, 2 * I], "f32", "draft_gate_up");
    this.#act1 = this.#act.alloc([B, I], "f32", "draft_mlp_act");
    this.#logits = this.#act.alloc([B, Vd], "f32", "draft_logits");
  }

  /** Upload a host checkpoint (from {@link loadEagle3Checkpoint}, {@link initEagle3Checkpoint}, …). */
  static fromCheckpoint(gpu: GpuDevice, ckpt: Eagle3Checkpoint, opts: Eagle3Options = {}): Eagle3Draft {
    return new Eagle3Draft(gpu, ckpt, opts);
  }

  /**
   * Load an EAGLE-3 draft directory for `target` (a directory or a loaded {@link ModelDir}); the
   * embedding comes from the draft's `embed_tokens.weight` or else the target's. Throws
   * ModelLoadError naming the file and the tensor/field at fault.
   */
  static async load(
    gpu: GpuDevice,
    dir: string,
    target: string | ModelDir,
    opts: Eagle3Options = {},
  ): Promise<Eagle3Draft> {
    const t = typeof target === "string" ? await loadModelDir(target) : target;
    return new Eagle3Draft(gpu, await loadEagle3Checkpoint(dir, t), opts);
  }

  /**
   * A freshly initialised draft for `target` (see {@link initEagle3Checkpoint}: embedding copied
   * from the target, linear weights ~N(0, 0.02²), norms 1, identity draft vocabulary by default).
   */
  static create(gpu: GpuDevice, target: ModelDir, opts: Eagle3CreateOptions = {}): Eagle3Draft {
    return new Eagle3Draft(gpu, initEagle3Checkpoint(target, opts), opts);
  }

  /**
   * A zero-filled one-layer KV cache for this draft with `capacity` rows (default {@link maxSeqLen});
   * the caller owns it. Allocate once per sequence slot, never per step.
   */
  createKvCache(capacity: number = this.maxSeqLen, label = "draft_kv"): KvCache {
    const { numKvHeads, headDim } = this.config;
    return KvCache.allocate(this.gpu, { layers: 1, capacity, rowWidth: numKvHeads * headDim }, label);
  }

  /** Record out (T, H) = fc(feats), feats (T, n·Ht) the concatenated target features. */
  fuse(rec: Recorder, out: Tensor, feats: Tensor): void {
    linear(rec, out, feats, this.weights.fc);
  }

  /**
   * Record logits (T, Vd) = lm_head(norm(x)) for x (T, H), T ≤ maxBatch (the norm fused into lm_head,
   * or in the norm workspace where `linearFuses` does not fuse the norm for T rows).
   */
  head(rec: Recorder, logits: Tensor, x: Tensor): void {
    const T = x.shape[0];
    if (x.shape.length !== 2 || T < 1 || T > this.maxBatch) {
      throw new ShapeError(`Eagle3Draft.head: ${x.name} [${x.shape}] must be (1..${this.maxBatch}, H)`);
    }
    draftHeadForward(rec, this, logits, this.#xn.rows(T), x, { fused: true });
  }

  /**
   * Record one draft-layer forward over T rows (see the module doc for the computation). Keys and
   * values go to rows cacheRow.. (+ dynamicRow) of `args.kv`; attention covers rows [0, kvLen) (+
   * dynamicLen), causal by default (query t sees rows ≤ kvLen − T + t) or with `treeMask` / `mask`.
   */
  forward(rec: Recorder, args: Eagle3ForwardArgs): Eagle3ForwardResult {
    const H = this.config.hiddenSize;
    const T = args.T;
    if (!Number.isInteger(T) || T < 1 || T > this.maxBatch) {
      throw new ShapeError(`Eagle3Draft.forward: T=${T}; this draft was loaded for 1..${this.maxBatch} rows`);
    }
    args.hidden.expectShape([-1, H], "f32");
    const picked = args.hiddenRows !== undefined;
    if (!picked && args.hidden.shape[0] < T) {
      throw new ShapeError(
        `Eagle3Draft.forward: ${args.hidden.name} has ${args.hidden.shape[0]} rows < T=${T}`,
      );
    }
    const hidden = picked || args.hidden.shape[0] === T ? args.hidden : args.hidden.rows(T);
    const out = args.out ? args.out.expectShape([-1, H], "f32") : this.#out;
    if (out.shape[0] < T) throw new ShapeError(`Eagle3Draft.forward: ${out.name} has fewer than ${T} rows`);
    const o = out.shape[0] === T ? out : out.rows(T);
    const { numKvHeads: nKV, headDim: hd } = this.config;
    const kv = args.kv.expect(1, nKV * hd, 0, "Eagle3Draft.forward");
    // Decoding's workspace (fused: the raw embedding is never materialised); y is the output buffer.
    const en = this.#en.rows(T);
    const acts: DraftLayerActs = {
      emb: en,
      en,
      hn: this.#hn.rows(T),
      qkv: this.#qkv.rows(T),
      q: this.#q.rows(T),
      att: this.#att.rows(T),
      y: o,
      xn: this.#xn.rows(T),
      gu: this.#gateUp.rows(T),
      act: this.#act1.rows(T),
    };
    const hiddenRows = picked
      ? { index: args.hiddenRows!, offset: args.hiddenRowsOffset, into: this.#hin.rows(T) }
      : undefined;
    draftLayerForward(rec, this, acts, {
      hidden,
      hiddenRows,
      ids: args.ids,
      idsOffset: args.idsOffset,
      kCache: kv.k[0],
      vCache: kv.v[0],
      rope: {
        cacheRow: args.cacheRow,
        pos0: args.pos0 ?? args.cacheRow,
        positions: args.positions,
        dynamicRow: args.dynamicRow,
        dynamicPos: args.dynamicPos,
      },
      attention: {
        kvLen: args.kvLen,
        dynamicLen: args.dynamicLen,
        treeMask: args.treeMask,
        mask: args.mask,
        segmented: args.segmented,
      },
      out: o,
    }, { fused: true, ropeAttention: this.fuseRopeAttention });
    if (args.logits === "none") return { out: o, logits: null };
    const logits = this.#logits.rows(T);
    this.head(rec, logits, o);
    return { out: o, logits };
  }

  /**
   * Read the weights back (submits `rec`) into a host checkpoint in the EAGLE-3 layout (q/k/v and
   * gate/up unfused); the embedding and vocabulary maps are the host copies.
   */
  async toCheckpoint(rec: Recorder): Promise<Eagle3Checkpoint> {
    const cfg = this.config;
    const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: hd } = cfg;
    const w = this.weights;
    const names = Object.keys(w) as (keyof Eagle3GpuWeights)[];
    const pending = names.map((n) => rec.readback(w[n]));
    rec.submit();
    const host = {} as Record<keyof Eagle3GpuWeights, Float32Array>;
    const bufs = await Promise.all(pending);
    rec.checkErrors();
    names.forEach((n, i) => host[n] = new Float32Array(bufs[i]));
    const unfuse = (rows: number, at: number): Float32Array => {
      const m = new Float32Array(rows * 2 * H); // (rows, 2H)
      for (let r = 0; r < rows; r++) {
        m.set(host.qkvEmb.subarray((at + r) * H, (at + r + 1) * H), r * 2 * H);
        m.set(host.qkvHidden.subarray((at + r) * H, (at + r + 1) * H), r * 2 * H + H);
      }
      return m;
    };
    const tensors: Record<Eagle3TensorName, Float32Array> = {
      "fc.weight": host.fc,
      "midlayer.input_layernorm.weight": host.inputNorm,
      "midlayer.hidden_norm.weight": host.hiddenNorm,
      "midlayer.self_attn.q_proj.weight": unfuse(nH * hd, 0),
      "midlayer.self_attn.k_proj.weight": unfuse(nKV * hd, nH * hd),
      "midlayer.self_attn.v_proj.weight": unfuse(nKV * hd, (nH + nKV) * hd),
      "midlayer.self_attn.o_proj.weight": host.o,
      "midlayer.post_attention_layernorm.weight": host.postNorm,
      "midlayer.mlp.gate_proj.weight": host.gateUp.slice(0, I * H),
      "midlayer.mlp.up_proj.weight": host.gateUp.slice(I * H),
      "midlayer.mlp.down_proj.weight": host.down,
      "norm.weight": host.norm,
      "lm_head.weight": host.lmHead,
    };
    return {
      source: "Eagle3Draft (GPU)",
      config: { ...cfg, auxLayerIds: [...cfg.auxLayerIds], eosTokenIds: [...cfg.eosTokenIds] },
      tensors,
      embed: this.#embedHost,
      d2t: this.d2tHost.slice(),
      t2d: this.t2d.slice(),
    };
  }

  /** Read the weights back and write `dir` in the EAGLE-3 layout (see {@link saveEagle3Checkpoint}). */
  async save(rec: Recorder, dir: string): Promise<void> {
    await saveEagle3Checkpoint(dir, await this.toCheckpoint(rec));
  }

  /** Free the GPU memory (weights, embedding, workspace; KV caches belong to their creators). */
  destroy(): void {
    this.#weightArena.destroy();
    this.#frozen.destroy();
    this.#act.destroy();
  }
}
