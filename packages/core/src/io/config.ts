/**
 * Hugging Face LLaMA `config.json` (+ `generation_config.json`) → a validated, camel-cased
 * {@link LlamaConfig}. The engine sizes every buffer and kernel from these numbers, so a missing or
 * nonsensical field must stop the load with the field's name rather than surface later as a shape
 * error deep in a kernel. Two spellings exist in the wild: transformers ≥ 5 writes
 * `rope_parameters.rope_theta` and `dtype`; older checkpoints write `rope_theta` and `torch_dtype`.
 * Both are accepted. Features the engine does not implement (RoPE scaling, biases, activations other
 * than SiLU) are rejected here with a clear "not supported" message.
 * @module
 */

import { ModelLoadError } from "../errors.ts";
import { describe, isObject, joinPath, parseJsonObject, pathKind, readText } from "./_fs.ts";

/** The model hyper-parameters the engine needs, validated. */
export interface LlamaConfig {
  /** `model_type` from config.json (always `"llama"` for configs this loader accepts). */
  modelType: string;
  /** Residual stream width H. */
  hiddenSize: number;
  /** MLP width I. */
  intermediateSize: number;
  /** Number of decoder layers L. */
  numLayers: number;
  /** Attention (query) heads nH. */
  numHeads: number;
  /** Key/value heads nKV (grouped-query attention); divides numHeads. */
  numKvHeads: number;
  /** Per-head width hd (defaults to H / nH). */
  headDim: number;
  /** Vocabulary size V (rows of the embedding and lm_head). */
  vocabSize: number;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** RoPE base frequency θ. */
  ropeTheta: number;
  /** Whether lm_head shares the embedding matrix. */
  tieWordEmbeddings: boolean;
  /** Longest context the model was configured for. */
  maxPositionEmbeddings: number;
  /** Storage dtype the checkpoint declares. */
  dtype: "float32" | "float16" | "bfloat16";
  /** Beginning-of-sequence token id, when the config names one. */
  bosTokenId?: number;
  /** Token ids that end generation (generation_config.json first, else config.json); may be empty. */
  eosTokenIds: number[];
}

/** Options for {@link parseLlamaConfig} / {@link loadLlamaConfig}. */
export interface LlamaConfigOptions {
  /** `architectures` values accepted (default `["LlamaForCausalLM"]`); drafts may pass their own. */
  architectures?: string[];
}

/**
 * Validate a parsed config.json object (`file` is named in errors). `generation`, when given, is the
 * parsed generation_config.json (and its path) whose `eos_token_id` takes precedence.
 */
export function parseLlamaConfig(
  file: string,
  raw: Record<string, unknown>,
  generation?: { file: string; json: Record<string, unknown> },
  opts: LlamaConfigOptions = {},
): LlamaConfig {
  const fail = (msg: string): never => {
    throw new ModelLoadError(file, msg);
  };
  const allowed = opts.architectures ?? ["LlamaForCausalLM"];
  const modelType = raw.model_type;
  const archs = raw.architectures;
  if (modelType === undefined && archs === undefined) {
    fail(`unknown architecture: neither "model_type" nor "architectures" is set (expected "llama")`);
  }
  if (modelType !== undefined && modelType !== "llama") {
    fail(`unknown architecture ${describe(modelType)} in field "model_type" (expected "llama")`);
  }
  if (archs !== undefined) {
    if (!Array.isArray(archs) || archs.length === 0 || !archs.every((a) => typeof a === "string")) {
      fail(`field "architectures" is ${describe(archs)}; expected a non-empty list of strings`);
    }
    const bad = (archs as string[]).find((a) => !allowed.includes(a));
    if (bad !== undefined) {
      fail(`unknown architecture "${bad}" in field "architectures" (expected ${allowed.join(" or ")})`);
    }
  }

  const posInt = (key: string, fallback?: number): number => {
    const v = raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      return fail(`missing required field "${key}"`);
    }
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      return fail(`field "${key}" is ${describe(v)}; expected a positive integer`);
    }
    return v;
  };
  const posNum = (key: string, v: unknown, fallback: number): number => {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      return fail(`field "${key}" is ${describe(v)}; expected a positive number`);
    }
    return v;
  };

  const hiddenSize = posInt("hidden_size");
  const intermediateSize = posInt("intermediate_size");
  const numLayers = posInt("num_hidden_layers");
  const numHeads = posInt("num_attention_heads");
  const numKvHeads = posInt("num_key_value_heads", numHeads);
  const vocabSize = posInt("vocab_size");
  if (numHeads % numKvHeads !== 0) {
    fail(
      `field "num_attention_heads" (${numHeads}) is not divisible by "num_key_value_heads" (${numKvHeads})`,
    );
  }
  if (raw.head_dim == null && hiddenSize % numHeads !== 0) {
    fail(
      `field "hidden_size" (${hiddenSize}) is not divisible by "num_attention_heads" (${numHeads}) and "head_dim" is not set`,
    );
  }
  const headDim = posInt("head_dim", hiddenSize / numHeads);
  const maxPositionEmbeddings = posInt("max_position_embeddings", 2048);
  const rmsNormEps = posNum("rms_norm_eps", raw.rms_norm_eps, 1e-6);

  // RoPE: transformers 5 nests it in rope_parameters; older configs use rope_theta + rope_scaling.
  let ropeTheta: number;
  const rp = raw.rope_parameters;
  if (rp !== undefined && rp !== null) {
    if (!isObject(rp)) fail(`field "rope_parameters" is ${describe(rp)}; expected an object`);
    const p = rp as Record<string, unknown>;
    const type = p.rope_type ?? p.type ?? "default";
    if (type !== "default") {
      fail(`field "rope_parameters.rope_type" is ${describe(type)}: RoPE scaling is not supported`);
    }
    ropeTheta = posNum("rope_parameters.rope_theta", p.rope_theta ?? raw.rope_theta, 10000);
  } else {
    ropeTheta = posNum("rope_theta", raw.rope_theta, 10000);
  }
  const rs = raw.rope_scaling;
  if (rs !== undefined && rs !== null) {
    const type = isObject(rs) ? (rs.rope_type ?? rs.type) : rs;
    if (type !== "default") {
      fail(`field "rope_scaling" has type ${describe(type)}: RoPE scaling is not supported`);
    }
  }

  const tie = raw.tie_word_embeddings ?? false;
  if (typeof tie !== "boolean") fail(`field "tie_word_embeddings" is ${describe(tie)}; expected a boolean`);

  const dtypeKey = raw.dtype != null ? "dtype" : "torch_dtype";
  const dtype = raw[dtypeKey] ?? "float32";
  if (dtype !== "float32" && dtype !== "float16" && dtype !== "bfloat16") {
    fail(`field "${dtypeKey}" is ${describe(dtype)}; expected "float32", "float16" or "bfloat16"`);
  }

  for (const key of ["attention_bias", "mlp_bias"]) {
    if (raw[key] === true) fail(`field "${key}" is true: biases are not supported`);
  }
  const act = raw.hidden_act;
  if (act !== undefined && act !== "silu") {
    fail(`field "hidden_act" is ${describe(act)}: only "silu" is supported`);
  }

  let bosTokenId: number | undefined;
  if (raw.bos_token_id != null) {
    if (!isTokenId(raw.bos_token_id)) {
      fail(`field "bos_token_id" is ${describe(raw.bos_token_id)}; expected a token id`);
    }
    bosTokenId = raw.bos_token_id as number;
  }
  const genEos = generation?.json.eos_token_id;
  const eosTokenIds = genEos != null
    ? eosList(genEos, () => {
      throw new ModelLoadError(
        generation!.file,
        `field "eos_token_id" is ${describe(genEos)}; expected a token id or list`,
      );
    })
    : raw.eos_token_id != null
    ? eosList(
      raw.eos_token_id,
      () => fail(`field "eos_token_id" is ${describe(raw.eos_token_id)}; expected a token id or list`),
    )
    : [];

  return {
    modelType: "llama",
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    rmsNormEps,
    ropeTheta,
    tieWordEmbeddings: tie as boolean,
    maxPositionEmbeddings,
    dtype: dtype as LlamaConfig["dtype"],
    bosTokenId,
    eosTokenIds,
  };
}

/**
 * Read `dir/config.json` (and `dir/generation_config.json` when present) and validate them.
 * Throws ModelLoadError naming the file and field at fault.
 */
export async function loadLlamaConfig(dir: string, opts: LlamaConfigOptions = {}): Promise<LlamaConfig> {
  const file = joinPath(dir, "config.json");
  const raw = parseJsonObject(file, await readText(file, "config"), "config.json");
  const genFile = joinPath(dir, "generation_config.json");
  let gen: { file: string; json: Record<string, unknown> } | undefined;
  if (await pathKind(genFile) === "file") {
    gen = {
      file: genFile,
      json: parseJsonObject(genFile, await readText(genFile, "generation config"), "generation_config.json"),
    };
  }
  return parseLlamaConfig(file, raw, gen, opts);
}

function isTokenId(v: unknown): boolean {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function eosList(v: unknown, bad: () => never): number[] {
  if (isTokenId(v)) return [v as number];
  if (Array.isArray(v) && v.every(isTokenId)) return [...v] as number[];
  return bad();
}
