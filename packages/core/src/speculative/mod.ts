/**
 * Tree speculative decoding: the GPU-resident {@link SpecDecoder}, its acceptance / KV-compaction ops
 * and τ measurement (`measureTau`); the references live in `@gto/core/reference`.
 * @module
 */
export * from "./state.ts";
export * from "./accept.ts";
export * from "./decoder.ts";
export * from "./tau.ts";
