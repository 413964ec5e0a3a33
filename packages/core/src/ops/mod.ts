/**
 * The ops: each validates shapes/dtypes, picks a cached kernel from `@gto/kernels` and records one
 * dispatch into a {@link Recorder}. References for every op live in `../reference/ops.ts`.
 * @module
 */
export * from "./elementwise.ts";
export * from "./linear.ts";
export * from "./norm.ts";
export * from "./rope.ts";
export * from "./attention.ts";
export * from "./activation.ts";
export * from "./embedding.ts";
export * from "./draft_input.ts";
export * from "./softmax.ts";
export * from "./select.ts";
export * from "./topk.ts";
export * from "./attention_split.ts";
export * from "./attention_rope.ts";
