/**
 * Tree speculative decoding: the GPU-resident {@link SpecDecoder}, the public cycle phases it is built
 * from ({@link verifyTree}, {@link greedyPath}; tree growth is `growDraftTree` in tree/), the loop's
 * commit / KV-compaction ops and their TypeScript references.
 * @module
 */
export * from "./state.ts";
export * from "./accept.ts";
export * from "./accept_ref.ts";
export * from "./greedy_path.ts";
export * from "./verify.ts";
export * from "./trace.ts";
export * from "./decoder.ts";
