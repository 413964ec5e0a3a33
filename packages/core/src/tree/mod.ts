/**
 * EAGLE-3 draft-tree construction: the CPU reference ({@link buildDraftTree}) and the GPU ops
 * ({@link TreeBuffers}, {@link treeLevel}, {@link treeFinalize}, {@link gatherRows}).
 * @module
 */
export * from "./config.ts";
export * from "./tree_ref.ts";
export * from "./grow.ts";
export * from "./tree_ops.ts";
export * from "./report.ts";
