/**
 * Model loading for `@gto/core`: Hugging Face model directories (config.json, safetensors — single
 * or sharded, f32/f16/bf16 —, tokenizer.json, chat templates) into validated, typed objects. Every
 * failure is a `ModelLoadError` naming the file and the tensor or field at fault.
 * @module
 */

export {
  bf16ArrayToF32,
  bf16BitsToF32,
  DTYPE_BYTES,
  f16ArrayToF32,
  f16BitsToF32,
  f32ArrayToF16Bits,
  f32ToF16Bits,
  fmtShape,
  loadSafetensors,
  parseSafetensors,
  type SafetensorsDType,
  sameShape,
  type TensorEntry,
  type TensorToWrite,
  WeightStore,
  writeSafetensors,
} from "./safetensors.ts";
export { type LlamaConfig, type LlamaConfigOptions, loadLlamaConfig, parseLlamaConfig } from "./config.ts";
export { loadTokenizer, specialTokenText, type TextTokenizer } from "./tokenizer.ts";
export {
  type ChatMessage,
  type ChatTemplate,
  encodeChat,
  loadChatTemplate,
  parseChatTemplate,
} from "./chat.ts";
export { checkLlamaWeights, llamaTensorShapes, loadModelDir, type ModelDir } from "./model_dir.ts";
