/**
 * CPU reference implementations (f64 accumulation): the oracle every WGSL kernel is tested against,
 * and a CPU LLaMA forward with a KV cache checked against PyTorch outputs.
 * @module
 */

export {
  addRef,
  argmaxRef,
  type AttentionDims,
  attentionRef,
  causalMask,
  draftInputRef,
  embeddingRef,
  linearRef,
  logSoftmaxRef,
  type MaskLike,
  type MatmulOptions,
  matmulRef,
  matvecRef,
  type Positions,
  rmsNormRef,
  ropeRef,
  softmaxRef,
  swigluRef,
  type TopK,
  topkRef,
} from "./ops.ts";
export {
  LlamaRef,
  type LlamaRefForwardOptions,
  type LlamaRefForwardResult,
  type RefLlamaConfig,
} from "./llama_ref.ts";
export { Eagle3Ref, type Eagle3RefForwardArgs, type Eagle3RefForwardResult } from "./eagle3_ref.ts";
