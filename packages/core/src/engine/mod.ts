/**
 * The engine façade: {@link Engine} (load a target + optional draft, then `chat` / `complete` with
 * streaming, stop strings, abort and a FIFO), its input errors, and the streaming pieces it is
 * built from (`TextStream`, `StopMatcher`, `FifoLock`).
 * @module
 */
export * from "./engine.ts";
export { EngineInputError } from "./validate.ts";
export { TextStream } from "./text_stream.ts";
export { StopMatcher, type StopPush } from "./stop.ts";
export { FifoLock } from "./fifo.ts";
export type { CycleTrace } from "./decoding.ts";
export {
  type AcceptanceProfile,
  type AutoTreeChoice,
  candidateTrees,
  chooseTree,
  describeTree,
  perfectAcceptance,
  predictCycleMs,
  predictTau,
  type TreeCostTable,
  type TreePrediction,
  type TreeShape,
} from "./auto_tree.ts";
export { calibrateAutoTree, type Calibration, CALIBRATION_MESSAGES } from "./calibrate.ts";
