/**
 * One call that turns a Hugging Face model directory into everything the engine needs: validated
 * config, weights, tokenizer and chat template. It also cross-checks the parts — every LLaMA tensor
 * present with the shape the config implies, the tokenizer's ids inside the embedding — so that a
 * mismatched checkpoint fails at load time with the first offending tensor named, instead of
 * producing wrong logits.
 * @module
 */

import { ModelLoadError } from "../errors.ts";
import { type ChatTemplate, loadChatTemplate } from "./chat.ts";
import { type LlamaConfig, loadLlamaConfig } from "./config.ts";
import { fmtShape, loadSafetensors, sameShape, type WeightStore } from "./safetensors.ts";
import { loadTokenizer, type TextTokenizer } from "./tokenizer.ts";
import { errText } from "./_fs.ts";

/** A loaded, cross-checked model directory. */
export interface ModelDir {
  /** The directory as given. */
  dir: string;
  /** Validated config.json (+ generation_config.json eos ids). */
  config: LlamaConfig;
  /** All weights, checked against {@link llamaTensorShapes}. */
  weights: WeightStore;
  /** The tokenizer. */
  tokenizer: TextTokenizer;
  /** The chat template, when the directory has one. */
  chatTemplate?: ChatTemplate;
}

/**
 * Names and shapes of every tensor a LLaMA checkpoint with this config must contain, in forward
 * order: embedding (V, H); per layer norms (H), q (nH·hd, H), k/v (nKV·hd, H), o (H, nH·hd),
 * gate/up (I, H), down (H, I); final norm (H); lm_head (V, H) unless tied to the embedding.
 */
export function llamaTensorShapes(cfg: LlamaConfig): Map<string, number[]> {
  const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: hd, vocabSize: V } =
    cfg;
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [V, H]);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}.`;
    m.set(p + "input_layernorm.weight", [H]);
    m.set(p + "self_attn.q_proj.weight", [nH * hd, H]);
    m.set(p + "self_attn.k_proj.weight", [nKV * hd, H]);
    m.set(p + "self_attn.v_proj.weight", [nKV * hd, H]);
    m.set(p + "self_attn.o_proj.weight", [H, nH * hd]);
    m.set(p + "post_attention_layernorm.weight", [H]);
    m.set(p + "mlp.gate_proj.weight", [I, H]);
    m.set(p + "mlp.up_proj.weight", [I, H]);
    m.set(p + "mlp.down_proj.weight", [H, I]);
  }
  m.set("model.norm.weight", [H]);
  if (!cfg.tieWordEmbeddings) m.set("lm_head.weight", [V, H]);
  return m;
}

/**
 * Load `dir` (config.json, weights, tokenizer, optional chat template) and check that every LLaMA
 * tensor exists with a float dtype and the shape the config implies. Throws ModelLoadError naming the
 * directory, file, field or first offending tensor.
 */
export async function loadModelDir(dir: string): Promise<ModelDir> {
  let isDir: boolean;
  try {
    isDir = (await Deno.stat(dir)).isDirectory;
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "model directory does not exist"
      : e instanceof Deno.errors.PermissionDenied
      ? "model directory is not readable (permission denied)"
      : `cannot stat model directory: ${errText(e)}`;
    throw new ModelLoadError(dir, why, { cause: e });
  }
  if (!isDir) throw new ModelLoadError(dir, "not a directory (expected a model directory with config.json)");
  try {
    await Deno.readDir(dir)[Symbol.asyncIterator]().next();
  } catch (e) {
    throw new ModelLoadError(dir, `model directory is not readable: ${errText(e)}`, { cause: e });
  }

  const config = await loadLlamaConfig(dir);
  const weights = await loadSafetensors(dir);
  checkLlamaWeights(config, weights);
  const tokenizer = await loadTokenizer(dir);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new ModelLoadError(
      dir,
      `tokenizer has ${tokenizer.vocabSize} tokens but config.json field "vocab_size" is ${config.vocabSize}`,
    );
  }
  const chatTemplate = await loadChatTemplate(dir);
  return { dir, config, weights, tokenizer, chatTemplate };
}

/**
 * Check that `weights` holds every tensor of {@link llamaTensorShapes} with a float dtype and the
 * expected shape; throws ModelLoadError naming the first missing or mis-shaped tensor.
 */
export function checkLlamaWeights(cfg: LlamaConfig, weights: WeightStore): void {
  for (const [name, shape] of llamaTensorShapes(cfg)) {
    if (!weights.has(name)) {
      const hint = name === "lm_head.weight" ? ` (config.json says tie_word_embeddings is false)` : "";
      throw new ModelLoadError(
        weights.source,
        `missing tensor "${name}" (expected shape ${fmtShape(shape)})${hint}`,
      );
    }
    const e = weights.get(name);
    if (e.dtype !== "F32" && e.dtype !== "F16" && e.dtype !== "BF16") {
      throw new ModelLoadError(e.file, `tensor "${name}" has dtype ${e.dtype}; expected F32, F16 or BF16`);
    }
    if (!sameShape(e.shape, shape)) {
      throw new ModelLoadError(
        e.file,
        `tensor "${name}" has shape ${fmtShape(e.shape)}; config.json implies ${fmtShape(shape)}`,
      );
    }
  }
}
