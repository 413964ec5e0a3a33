/**
 * Tree speculative decoding: the GPU-resident {@link SpecDecoder}, the public cycle phases it is built
 * from ({@link verifyTree}, {@link greedyPath}; tree growth is `growDraftTree` in tree/), the loop's
 * commit / KV-compaction ops, the per-cycle trace and τ measurement (`measureTau`); the references live
 * in `@gto/core/reference`.
 * @module
 */
export * from "./state.ts";
export * from "./accept.ts";
export * from "./greedy_path.ts";
export * from "./verify.ts";
export * from "./trace.ts";
export * from "./decoder.ts";
export * from "./tau.ts";
export * from "./kv_compact.ts";
