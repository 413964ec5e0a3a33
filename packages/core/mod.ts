/**
 * `@gto/core`: a WebGPU tensor engine for LLaMA-family targets and EAGLE-3 / GTO speculative decoding.
 *
 * - {@link Engine}: the one way apps decode — load a target (+ optional EAGLE-3 draft), then `chat` /
 *   `complete` with streaming text, stop strings, abort and a FIFO of callers.
 * - GPU layer: {@link requestGpu}, {@link BufferArena}, {@link KernelCache}, {@link Recorder}, {@link Tensor}.
 * - Ops (one WGSL kernel family each, in `@gto/kernels`): linear, rmsNorm, ropeQkv, attention, swiglu,
 *   embedding, softmax/logSoftmax, argmax/topk/sample, add/copyRows.
 * - Models: {@link loadModelDir} (safetensors, config.json, tokenizer.json, chat templates, {@link encodeChat}),
 *   {@link LlamaModel}, {@link Eagle3Draft} (weights + workspace; each sequence's {@link KvCache} is the
 *   caller's); decoders: {@link generate} (plain, over a {@link TokenRing}), {@link SpecDecoder} (tree
 *   speculative, built from {@link growDraftTree}, {@link verifyTree} and {@link greedyPath}),
 *   {@link measureTau}.
 *
 * Subpaths: `@gto/core/train` (backward ops, optimizer, TTT / GTO training, data), `@gto/core/reference`
 * (f64 CPU references of every kernel, model and objective), `@gto/core/testing` (test device, all-close,
 * CLI runner), `@gto/core/cli` (the flags table shared by the apps).
 *
 * @example
 * ```ts
 * import { Engine } from "@gto/core";
 * const engine = await Engine.load({ target: "models/tiny" });
 * const r = await engine.chat([{ role: "user", content: "What is 12 plus 7?" }], { maxTokens: 32 });
 * console.log(r.text, r.finishReason, r.usage);
 * await engine.close();
 * ```
 * @module
 */
export * from "./src/errors.ts";
export * from "./src/util/random.ts";
export * from "./src/gpu/mod.ts";
export * from "./src/ops/mod.ts";
export * from "./src/model/kv_cache.ts";
export * from "./src/model/llama.ts";
export * from "./src/model/eagle3.ts";
export * from "./src/model/draft_layer.ts";
export {
  type FinishReason,
  generate,
  type GenerateOptions as PlainGenerateOptions,
  type GenerateResult as PlainGenerateResult,
  type SamplingOptions,
} from "./src/decode/generate.ts";
export * from "./src/decode/ring.ts";
export * from "./src/engine/mod.ts";
export * from "./src/tree/tree_ops.ts";
export * from "./src/tree/grow.ts";
export * from "./src/tree/report.ts";
export {
  type ResolvedTreeConfig,
  resolveTreeConfig,
  TREE_MAX_TOKENS,
  TREE_MAX_TOPK,
  type TreeCandidates,
  type TreeConfig,
} from "./src/tree/config.ts";
export * from "./src/speculative/mod.ts";
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
