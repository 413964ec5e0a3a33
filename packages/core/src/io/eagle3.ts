/**
 * EAGLE-3 draft checkpoints on the host: the config, the tensors (f32 copies under their HF/EAGLE
 * names), the draft vocabulary maps, loading with validation against the target, and writing.
 *
 * The layout is the one the EAGLE authors' code (SafeAILab/EAGLE `eagle/model/cnets.py`) reads and
 * writes, so other engines can load our drafts and we can load theirs:
 *
 * ```
 * config.json       architectures ["LlamaForCausalLMEagle3"], hidden_size H, draft_vocab_size Vd,
 *                   target_hidden_size Ht, eagle_config.eagle_aux_hidden_state_layer_ids (default
 *                   {2, ⌊L/2⌋, L−3} of the target's L layers), num_hidden_layers 1
 * model.safetensors fc.weight (H, n·Ht)            n = number of feature taps (3)
 *                   midlayer.{input_layernorm,hidden_norm,post_attention_layernorm}.weight (H)
 *                   midlayer.self_attn.{q,k,v}_proj.weight (*, 2H)   input concat(norm(emb), norm(h))
 *                   midlayer.self_attn.o_proj.weight (H, nH·hd)
 *                   midlayer.mlp.{gate,up}_proj.weight (I, H), down_proj (H, I)
 *                   norm.weight (H), lm_head.weight (Vd, H)
 *                   d2t int64 (Vd): target id = draft id + d2t[draft id]
 *                   t2d bool (V): whether a target id is in the draft vocabulary
 *                   embed_tokens.weight (V, H), optional: else the target's model.embed_tokens.weight
 * ```
 *
 * Everything a GPU draft or the CPU reference needs is an {@link Eagle3Checkpoint}; both are built
 * from it, and the GPU draft reads its weights back into one to save. Every inconsistency stops the
 * load with a {@link ModelLoadError} naming the file and the tensor or field.
 * @module
 */

import { ModelLoadError, ShapeError } from "../errors.ts";
import { parseLlamaConfig } from "./config.ts";
import type { LlamaConfig } from "./config.ts";
import type { ModelDir } from "./model_dir.ts";
import {
  fmtShape,
  loadSafetensors,
  sameShape,
  type TensorToWrite,
  type WeightStore,
  writeSafetensors,
} from "./safetensors.ts";
import { describe, isObject, joinPath, parseJsonObject, readText } from "./_fs.ts";
import { mulberry32 } from "../util/random.ts";

/** The `architectures` value of EAGLE-3 draft configs. */
export const EAGLE3_ARCHITECTURE = "LlamaForCausalLMEagle3";

/** Validated EAGLE-3 draft hyper-parameters. */
export interface Eagle3Config {
  /** Draft residual width H. */
  hiddenSize: number;
  /** Draft MLP width I. */
  intermediateSize: number;
  /** Query heads nH. */
  numHeads: number;
  /** Key/value heads nKV. */
  numKvHeads: number;
  /** Per-head width hd. */
  headDim: number;
  /** Target vocabulary V (rows of the embedding, length of t2d). */
  vocabSize: number;
  /** Draft vocabulary Vd (rows of lm_head, length of d2t). */
  draftVocabSize: number;
  /** Target hidden width Ht (each feature tap is Ht wide). */
  targetHiddenSize: number;
  /** Target layers whose *input* hidden states are the features, concatenated in this order. */
  auxLayerIds: number[];
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** RoPE base θ. */
  ropeTheta: number;
  /** Longest context the draft was configured for. */
  maxPositionEmbeddings: number;
  /** Beginning-of-sequence id (copied from the target for config.json). */
  bosTokenId?: number;
  /** End-of-sequence ids (copied from the target for config.json). */
  eosTokenIds: number[];
}

/** Names of the trainable float tensors of an EAGLE-3 draft, in checkpoint order. */
export const EAGLE3_TENSOR_NAMES = [
  "fc.weight",
  "midlayer.input_layernorm.weight",
  "midlayer.hidden_norm.weight",
  "midlayer.self_attn.q_proj.weight",
  "midlayer.self_attn.k_proj.weight",
  "midlayer.self_attn.v_proj.weight",
  "midlayer.self_attn.o_proj.weight",
  "midlayer.post_attention_layernorm.weight",
  "midlayer.mlp.gate_proj.weight",
  "midlayer.mlp.up_proj.weight",
  "midlayer.mlp.down_proj.weight",
  "norm.weight",
  "lm_head.weight",
] as const;

/** One of {@link EAGLE3_TENSOR_NAMES}. */
export type Eagle3TensorName = typeof EAGLE3_TENSOR_NAMES[number];

/** A whole draft on the host: config, trainable tensors, frozen embedding and vocabulary maps. */
export interface Eagle3Checkpoint {
  /** Where it came from (a directory, or a description for fresh drafts); named in errors. */
  source: string;
  /** The validated config. */
  config: Eagle3Config;
  /** Trainable tensors by name, f32, row-major in the shapes of {@link eagle3TensorShapes}. */
  tensors: Record<Eagle3TensorName, Float32Array>;
  /** (V, H) token embedding (frozen; a copy of the target's unless the checkpoint has its own). */
  embed: Float32Array;
  /** (Vd) offsets: target id = draft id + d2t[draft id]. */
  d2t: Int32Array;
  /** (V) 1 where the target id is in the draft vocabulary. */
  t2d: Uint8Array;
}

/** Shapes of the trainable tensors implied by a config (fc is (H, n·Ht) for n feature taps). */
export function eagle3TensorShapes(cfg: Eagle3Config): Record<Eagle3TensorName, number[]> {
  const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: hd } = cfg;
  return {
    "fc.weight": [H, cfg.auxLayerIds.length * cfg.targetHiddenSize],
    "midlayer.input_layernorm.weight": [H],
    "midlayer.hidden_norm.weight": [H],
    "midlayer.self_attn.q_proj.weight": [nH * hd, 2 * H],
    "midlayer.self_attn.k_proj.weight": [nKV * hd, 2 * H],
    "midlayer.self_attn.v_proj.weight": [nKV * hd, 2 * H],
    "midlayer.self_attn.o_proj.weight": [H, nH * hd],
    "midlayer.post_attention_layernorm.weight": [H],
    "midlayer.mlp.gate_proj.weight": [I, H],
    "midlayer.mlp.up_proj.weight": [I, H],
    "midlayer.mlp.down_proj.weight": [H, I],
    "norm.weight": [H],
    "lm_head.weight": [cfg.draftVocabSize, H],
  };
}

/** EAGLE-3's default feature taps for a target with L layers: {2, ⌊L/2⌋, L−3}. */
export function defaultAuxLayerIds(numLayers: number): number[] {
  return [2, Math.floor(numLayers / 2), numLayers - 3];
}

/**
 * Validate a parsed EAGLE-3 config.json (`file` is named in errors). `target`, when given, supplies
 * the default feature taps and is cross-checked: vocab_size = V, target_hidden_size = Ht, taps in
 * [0, L].
 */
export function parseEagle3Config(
  file: string,
  raw: Record<string, unknown>,
  target?: LlamaConfig,
): Eagle3Config {
  const fail = (msg: string): never => {
    throw new ModelLoadError(file, msg);
  };
  if (raw.architectures === undefined) {
    fail(`missing field "architectures" (expected ["${EAGLE3_ARCHITECTURE}"])`);
  }
  const base = parseLlamaConfig(file, raw, undefined, { architectures: [EAGLE3_ARCHITECTURE] });
  if (base.numLayers !== 1) {
    fail(`field "num_hidden_layers" is ${base.numLayers}; EAGLE-3 drafts have exactly 1 (midlayer)`);
  }
  if (base.tieWordEmbeddings) fail(`field "tie_word_embeddings" is true; EAGLE-3 drafts have an own lm_head`);
  const posInt = (key: string, v: unknown, fallback: number): number => {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      return fail(`field "${key}" is ${describe(v)}; expected a positive integer`);
    }
    return v;
  };
  const draftVocabSize = posInt("draft_vocab_size", raw.draft_vocab_size, base.vocabSize);
  if (draftVocabSize > base.vocabSize) {
    fail(`field "draft_vocab_size" (${draftVocabSize}) exceeds "vocab_size" (${base.vocabSize})`);
  }
  const targetHiddenSize = posInt("target_hidden_size", raw.target_hidden_size, base.hiddenSize);
  let auxLayerIds: number[] | undefined;
  const ec = raw.eagle_config;
  if (ec !== undefined && ec !== null) {
    if (!isObject(ec)) fail(`field "eagle_config" is ${describe(ec)}; expected an object`);
    const ids = (ec as Record<string, unknown>).eagle_aux_hidden_state_layer_ids;
    if (ids !== undefined && ids !== null) {
      if (
        !Array.isArray(ids) || ids.length === 0 ||
        !ids.every((v) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0)
      ) {
        fail(
          `field "eagle_config.eagle_aux_hidden_state_layer_ids" is ${
            describe(ids)
          }; expected a non-empty list of layer indices`,
        );
      }
      auxLayerIds = [...ids as number[]];
    }
  }
  if (!auxLayerIds) {
    if (!target) {
      fail(`field "eagle_config.eagle_aux_hidden_state_layer_ids" is missing and no target config is given`);
    }
    auxLayerIds = defaultAuxLayerIds(target!.numLayers);
  }
  if (target) {
    if (base.vocabSize !== target.vocabSize) {
      fail(`field "vocab_size" is ${base.vocabSize} but the target's vocab_size is ${target.vocabSize}`);
    }
    if (targetHiddenSize !== target.hiddenSize) {
      fail(
        `field "target_hidden_size" is ${targetHiddenSize} but the target's hidden_size is ${target.hiddenSize}`,
      );
    }
    const bad = auxLayerIds.find((l) => l > target.numLayers);
    if (bad !== undefined) {
      fail(
        `field "eagle_config.eagle_aux_hidden_state_layer_ids" names layer ${bad}; the target has ${target.numLayers}`,
      );
    }
  }
  return {
    hiddenSize: base.hiddenSize,
    intermediateSize: base.intermediateSize,
    numHeads: base.numHeads,
    numKvHeads: base.numKvHeads,
    headDim: base.headDim,
    vocabSize: base.vocabSize,
    draftVocabSize,
    targetHiddenSize,
    auxLayerIds,
    rmsNormEps: base.rmsNormEps,
    ropeTheta: base.ropeTheta,
    maxPositionEmbeddings: base.maxPositionEmbeddings,
    bosTokenId: base.bosTokenId ?? target?.bosTokenId,
    eosTokenIds: base.eosTokenIds.length > 0 ? base.eosTokenIds : [...(target?.eosTokenIds ?? [])],
  };
}

/**
 * Check d2t (Vd) / t2d (V) for consistency: every draft id maps to a distinct target id in [0, V),
 * t2d marks exactly those ids. `file` is named in errors.
 */
export function checkDraftVocab(file: string, d2t: Int32Array, t2d: Uint8Array, V: number): void {
  const seen = new Uint8Array(V);
  for (let i = 0; i < d2t.length; i++) {
    const t = i + d2t[i];
    if (!Number.isSafeInteger(t) || t < 0 || t >= V) {
      throw new ModelLoadError(
        file,
        `tensor "d2t" maps draft id ${i} to target id ${t} (= ${i} + ${d2t[i]}), outside [0, ${V})`,
      );
    }
    if (seen[t]) throw new ModelLoadError(file, `tensor "d2t" maps two draft ids to target id ${t}`);
    seen[t] = 1;
  }
  if (t2d.length !== V) {
    throw new ModelLoadError(file, `tensor "t2d" has ${t2d.length} entries; expected vocab_size ${V}`);
  }
  let count = 0;
  for (let t = 0; t < V; t++) {
    if (t2d[t]) {
      count++;
      if (!seen[t]) {
        throw new ModelLoadError(file, `tensor "t2d" marks target id ${t}, which no d2t entry maps to`);
      }
    }
  }
  if (count !== d2t.length) {
    throw new ModelLoadError(
      file,
      `tensor "t2d" marks ${count} target ids; expected draft_vocab_size ${d2t.length}`,
    );
  }
}

function intTensor(w: WeightStore, name: string, shape: number[]): Int32Array {
  if (!w.has(name)) {
    throw new ModelLoadError(w.source, `missing tensor "${name}" (expected shape ${fmtShape(shape)})`);
  }
  const e = w.get(name);
  if (!sameShape(e.shape, shape)) {
    throw new ModelLoadError(
      e.file,
      `tensor "${name}" has shape ${fmtShape(e.shape)}; expected ${fmtShape(shape)}`,
    );
  }
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Int32Array(n);
  const dv = new DataView(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength);
  if (e.dtype === "I64") {
    for (let i = 0; i < n; i++) {
      const v = dv.getBigInt64(8 * i, true);
      if (v < -(2n ** 31n) || v >= 2n ** 31n) {
        throw new ModelLoadError(e.file, `tensor "${name}" entry ${i} is ${v}, outside the int32 range`);
      }
      out[i] = Number(v);
    }
  } else if (e.dtype === "I32") {
    for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true);
  } else {
    throw new ModelLoadError(e.file, `tensor "${name}" has dtype ${e.dtype}; expected I64 or I32`);
  }
  return out;
}

function boolTensor(w: WeightStore, name: string, shape: number[]): Uint8Array {
  if (!w.has(name)) {
    throw new ModelLoadError(w.source, `missing tensor "${name}" (expected shape ${fmtShape(shape)})`);
  }
  const e = w.get(name);
  if (!sameShape(e.shape, shape)) {
    throw new ModelLoadError(
      e.file,
      `tensor "${name}" has shape ${fmtShape(e.shape)}; expected ${fmtShape(shape)}`,
    );
  }
  if (e.dtype !== "BOOL" && e.dtype !== "U8") {
    throw new ModelLoadError(e.file, `tensor "${name}" has dtype ${e.dtype}; expected BOOL`);
  }
  return Uint8Array.from(e.bytes, (b) => (b ? 1 : 0));
}

function floatTensor(w: WeightStore, name: string, shape: number[], hint = ""): Float32Array {
  if (!w.has(name)) {
    throw new ModelLoadError(w.source, `missing tensor "${name}" (expected shape ${fmtShape(shape)})${hint}`);
  }
  const e = w.get(name);
  if (!sameShape(e.shape, shape)) {
    throw new ModelLoadError(
      e.file,
      `tensor "${name}" has shape ${fmtShape(e.shape)}; config.json implies ${fmtShape(shape)}${hint}`,
    );
  }
  return w.f32(name, shape);
}

/**
 * Build a checkpoint from parsed parts: validates every tensor's shape against `config`, d2t/t2d
 * consistency, and takes the embedding from `weights` (`embed_tokens.weight`) or else from
 * `target` (`model.embed_tokens.weight`, which must then be (V, H)).
 */
export function eagle3FromWeights(
  config: Eagle3Config,
  weights: WeightStore,
  target?: ModelDir,
): Eagle3Checkpoint {
  const shapes = eagle3TensorShapes(config);
  const tensors = {} as Record<Eagle3TensorName, Float32Array>;
  for (const name of EAGLE3_TENSOR_NAMES) tensors[name] = floatTensor(weights, name, shapes[name]);
  const V = config.vocabSize, H = config.hiddenSize;
  const d2t = intTensor(weights, "d2t", [config.draftVocabSize]);
  const t2d = boolTensor(weights, "t2d", [V]);
  checkDraftVocab(weights.has("d2t") ? weights.get("d2t").file : weights.source, d2t, t2d, V);
  let embed: Float32Array;
  if (weights.has("embed_tokens.weight")) {
    embed = floatTensor(weights, "embed_tokens.weight", [V, H]);
  } else if (target) {
    embed = floatTensor(
      target.weights,
      "model.embed_tokens.weight",
      [V, H],
      ` (the draft has no embed_tokens.weight, so the target's embedding is used)`,
    );
  } else {
    throw new ModelLoadError(
      weights.source,
      `missing tensor "embed_tokens.weight" and no target to take model.embed_tokens.weight from`,
    );
  }
  return { source: weights.source, config, tensors, embed, d2t, t2d };
}

/**
 * Load an EAGLE-3 draft directory (config.json + model.safetensors or a sharded index) for `target`.
 * Throws ModelLoadError naming the file and the tensor or field at fault.
 */
export async function loadEagle3Checkpoint(dir: string, target: ModelDir): Promise<Eagle3Checkpoint> {
  const file = joinPath(dir, "config.json");
  const raw = parseJsonObject(file, await readText(file, "config"), "config.json");
  const config = parseEagle3Config(file, raw, target.config);
  const weights = await loadSafetensors(dir);
  const ckpt = eagle3FromWeights(config, weights, target);
  ckpt.source = dir;
  return ckpt;
}

/** The config.json object for a draft config (EAGLE-3 / HF spelling). */
export function eagle3ConfigJson(cfg: Eagle3Config): Record<string, unknown> {
  const json: Record<string, unknown> = {
    architectures: [EAGLE3_ARCHITECTURE],
    model_type: "llama",
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    num_hidden_layers: 1,
    head_dim: cfg.headDim,
    rms_norm_eps: cfg.rmsNormEps,
    vocab_size: cfg.vocabSize,
    draft_vocab_size: cfg.draftVocabSize,
    max_position_embeddings: cfg.maxPositionEmbeddings,
    rope_theta: cfg.ropeTheta,
    hidden_act: "silu",
    tie_word_embeddings: false,
    target_hidden_size: cfg.targetHiddenSize,
    torch_dtype: "float32",
    eagle_config: { eagle_aux_hidden_state_layer_ids: [...cfg.auxLayerIds] },
  };
  if (cfg.bosTokenId !== undefined) json.bos_token_id = cfg.bosTokenId;
  if (cfg.eosTokenIds.length === 1) json.eos_token_id = cfg.eosTokenIds[0];
  else if (cfg.eosTokenIds.length > 1) json.eos_token_id = [...cfg.eosTokenIds];
  return json;
}

/**
 * Write a checkpoint to `dir` (created if needed) in the EAGLE-3 layout: model.safetensors (f32
 * tensors, `embed_tokens.weight`, d2t int64, t2d bool) then config.json, each written to a temporary
 * name and renamed, so a reader never sees a half-written file.
 */
export async function saveEagle3Checkpoint(dir: string, ckpt: Eagle3Checkpoint): Promise<void> {
  const cfg = ckpt.config;
  const shapes = eagle3TensorShapes(cfg);
  const out: TensorToWrite[] = [];
  for (const name of EAGLE3_TENSOR_NAMES) {
    const n = shapes[name].reduce((a, b) => a * b, 1);
    if (ckpt.tensors[name].length !== n) {
      throw new ShapeError(
        `saveEagle3Checkpoint: ${name} has ${ckpt.tensors[name].length} elements, expected ${n}`,
      );
    }
    out.push({ name, dtype: "F32", shape: shapes[name], data: ckpt.tensors[name] });
  }
  out.push({
    name: "embed_tokens.weight",
    dtype: "F32",
    shape: [cfg.vocabSize, cfg.hiddenSize],
    data: ckpt.embed,
  });
  checkDraftVocab(`${dir} (saving)`, ckpt.d2t, ckpt.t2d, cfg.vocabSize);
  out.push({
    name: "d2t",
    dtype: "I64",
    shape: [cfg.draftVocabSize],
    data: BigInt64Array.from(ckpt.d2t, BigInt),
  });
  out.push({
    name: "t2d",
    dtype: "BOOL",
    shape: [cfg.vocabSize],
    data: Uint8Array.from(ckpt.t2d, (b) => (b ? 1 : 0)),
  });
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(joinPath(dir, "model.safetensors"), out, { format: "pt" });
  const cfgFile = joinPath(dir, "config.json");
  const tmp = `${cfgFile}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(tmp, JSON.stringify(eagle3ConfigJson(cfg), null, 1) + "\n");
    await Deno.rename(tmp, cfgFile);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Options for {@link initEagle3Checkpoint}. */
export interface Eagle3InitOptions {
  /** The draft vocabulary (d2t (Vd) offsets, t2d (V) flags); default: the first `draftVocabSize` ids. */
  draftVocab?: { d2t: Int32Array; t2d: Uint8Array };
  /** Size of the identity draft vocabulary when `draftVocab` is not given (default: the full V). */
  draftVocabSize?: number;
  /** Feature taps (default {2, ⌊L/2⌋, L−3} of the target). */
  auxLayerIds?: number[];
  /** Seed of the weight initialisation (default 0). */
  seed?: number;
  /** Standard deviation of the linear weights (HF `initializer_range`, default 0.02). */
  initStd?: number;
}

/** Seeded N(0, std²) samples (mulberry32 + Box–Muller), deterministic across runs. */
function normals(n: number, seed: number, std: number): Float32Array {
  const u = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = Math.sqrt(-2 * Math.log(Math.max(u(), 1e-12)));
    out[i] = r * Math.cos(2 * Math.PI * u()) * std;
  }
  return out;
}

/**
 * A freshly initialised draft for `target`, as HF initialises a new model: linear weights
 * ~N(0, initStd²), norms 1; the embedding is a copy of the target's (frozen during training). The
 * draft layer has the target's width, heads and MLP size; its vocabulary is `draftVocab` or the
 * identity map onto the first `draftVocabSize` target ids.
 */
export function initEagle3Checkpoint(target: ModelDir, opts: Eagle3InitOptions = {}): Eagle3Checkpoint {
  const t = target.config;
  const V = t.vocabSize;
  let d2t: Int32Array, t2d: Uint8Array;
  if (opts.draftVocab) {
    ({ d2t, t2d } = opts.draftVocab);
  } else {
    const vd = opts.draftVocabSize ?? V;
    if (!Number.isSafeInteger(vd) || vd < 1 || vd > V) {
      throw new ShapeError(`initEagle3Checkpoint: draftVocabSize ${vd} must be in [1, ${V}]`);
    }
    d2t = new Int32Array(vd);
    t2d = new Uint8Array(V).fill(1, 0, vd);
  }
  checkDraftVocab("draftVocab", d2t, t2d, V);
  const auxLayerIds = opts.auxLayerIds ?? defaultAuxLayerIds(t.numLayers);
  const bad = auxLayerIds.find((l) => !Number.isSafeInteger(l) || l < 0 || l > t.numLayers);
  if (bad !== undefined) {
    throw new ShapeError(`initEagle3Checkpoint: feature tap ${bad} outside [0, ${t.numLayers}]`);
  }
  const config: Eagle3Config = {
    hiddenSize: t.hiddenSize,
    intermediateSize: t.intermediateSize,
    numHeads: t.numHeads,
    numKvHeads: t.numKvHeads,
    headDim: t.headDim,
    vocabSize: V,
    draftVocabSize: d2t.length,
    targetHiddenSize: t.hiddenSize,
    auxLayerIds: [...auxLayerIds],
    rmsNormEps: t.rmsNormEps,
    ropeTheta: t.ropeTheta,
    maxPositionEmbeddings: t.maxPositionEmbeddings,
    bosTokenId: t.bosTokenId,
    eosTokenIds: [...t.eosTokenIds],
  };
  const shapes = eagle3TensorShapes(config);
  const std = opts.initStd ?? 0.02;
  const seed = opts.seed ?? 0;
  const tensors = {} as Record<Eagle3TensorName, Float32Array>;
  EAGLE3_TENSOR_NAMES.forEach((name, i) => {
    const n = shapes[name].reduce((a, b) => a * b, 1);
    tensors[name] = shapes[name].length === 1
      ? new Float32Array(n).fill(1)
      : normals(n, (Math.imul(seed >>> 0, 0x9e3779b1) + i * 0x85ebca6b) >>> 0, std);
  });
  const embed = floatTensor(target.weights, "model.embed_tokens.weight", [V, t.hiddenSize]);
  return {
    source: `fresh EAGLE-3 draft for ${target.dir}`,
    config,
    tensors,
    embed,
    d2t: d2t.slice(),
    t2d: t2d.slice(),
  };
}
