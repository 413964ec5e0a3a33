/**
 * `@gto/core/train`: draft training — backward ops, AdamW, schedules, the EAGLE-3 training-time-test
 * trainer (`TttTrainer`), GTO objective ops, and the data pipeline (corpus prompts, regenerated
 * responses, batches, draft vocabulary). Their CPU references are in `@gto/core/reference`.
 * @module
 */
export * from "./src/train/mod.ts";
