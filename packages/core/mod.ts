/**
 * `@gto/core`: a WebGPU tensor engine for LLaMA-family targets and EAGLE-3 / GTO speculative decoding.
 *
 * - Engine: {@link requestGpu}, {@link BufferArena}, {@link KernelCache}, {@link Recorder}, {@link Tensor}.
 * - Ops (one WGSL kernel family each, in `@gto/kernels`): linear, rmsNorm, ropeQkv, attention, swiglu,
 *   embedding, softmax/logSoftmax, argmax/topk/sample, add/copyRows.
 * - Models: {@link loadModelDir} (safetensors, config.json, tokenizer.json, chat templates),
 *   {@link LlamaModel} (GPU forward with KV cache), {@link generate} (GPU-resident decode loop).
 * - References: f64 CPU implementations of every op and of the LLaMA forward (`reference`).
 *
 * @example
 * ```ts
 * import { generate, KernelCache, LlamaModel, loadModelDir, Recorder, requestGpu } from "@gto/core";
 * const gpu = await requestGpu();
 * const dir = await loadModelDir("models/tiny");
 * const model = await LlamaModel.load(gpu, dir);
 * const rec = new Recorder(gpu, new KernelCache(gpu));
 * const prompt = dir.tokenizer.encode("def add(a, b):");
 * const out = await generate(model, rec, model.allocTokenRing(), prompt, { maxTokens: 32 });
 * console.log(dir.tokenizer.decode(out.tokens));
 * ```
 * @module
 */
export * from "./src/errors.ts";
export * from "./src/gpu/mod.ts";
export * from "./src/ops/mod.ts";
export * from "./src/model/llama.ts";
export * from "./src/model/eagle3.ts";
export * from "./src/model/draft_layer.ts";
export {
  generate,
  type GenerateOptions as PlainGenerateOptions,
  type GenerateResult as PlainGenerateResult,
  type SamplingOptions,
} from "./src/decode/generate.ts";
export * from "./src/engine/mod.ts";
export * from "./src/tree/mod.ts";
export * from "./src/speculative/mod.ts";
export * from "./src/train/mod.ts";
export {
  bf16BitsToF32,
  type ChatMessage,
  type ChatTemplate,
  checkLlamaWeights,
  encodeChat,
  f16BitsToF32,
  f32ToF16Bits,
  type LlamaConfig,
  llamaTensorShapes,
  loadChatTemplate,
  loadLlamaConfig,
  loadModelDir,
  loadSafetensors,
  loadTokenizer,
  type ModelDir,
  type SafetensorsDType,
  type TensorEntry,
  type TextTokenizer,
  WeightStore,
  writeSafetensors,
} from "./src/io/mod.ts";
export * from "./src/io/eagle3.ts";
export * as reference from "./src/reference/mod.ts";
