/**
 * `@gto/core/reference`: the CPU references (f64 accumulation) every GPU kernel and loop is tested
 * against — ops, the LLaMA and EAGLE-3 forwards, draft-tree construction (`buildDraftTree`),
 * acceptance, and the training backward / TTT / GTO objectives. Independent of the GPU code.
 * @module
 */
export * from "./src/reference/mod.ts";
export * from "./src/tree/tree_ref.ts";
export * from "./src/speculative/accept_ref.ts";
export * from "./src/grad/reference_bwd.ts";
export * from "./src/train/ttt_ref.ts";
export * from "./src/train/gto_ref.ts";
export * from "./src/train/gto_pipeline_ref.ts";
