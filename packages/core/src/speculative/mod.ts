/**
 * Tree speculative decoding: the GPU-resident {@link SpecDecoder}, its acceptance / KV-compaction ops
 * and their TypeScript references.
 * @module
 */
export * from "./state.ts";
export * from "./accept.ts";
export * from "./accept_ref.ts";
export * from "./decoder.ts";
export * from "./tau.ts";
