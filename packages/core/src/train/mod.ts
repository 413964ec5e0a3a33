/**
 * Training of the EAGLE-3 / GTO draft (`deno task train`): the Phase-I training-time-test objective
 * ({@link TttTrainer}, `ttt.ts`, with its f64 reference `ttt_ref.ts`), the optimizer that objectives
 * record gradients into ({@link DraftOptimizer}, `optimizer.ts`), the learning-rate schedule, the
 * data pipeline and the draft vocabulary. The draft layer's forward and backward live in
 * `../model/draft_layer.ts`; the backward ops and the AdamW kernels in `../grad/` (re-exported here).
 * The f64 references are exported from `@gto/core/reference`.
 * @module
 */
export * from "../grad/mod.ts";
export * from "./optimizer.ts";
export * from "./schedule.ts";
export * from "./ttt.ts";
export * from "./data.ts";
export * from "./draft_vocab.ts";
export * from "./gto_ops.ts";
export * from "./gto_groups.ts";
export * from "./gto_trees.ts";
export * from "./gto_inspect.ts";
export * from "./gto.ts";
