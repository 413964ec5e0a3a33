/**
 * The WebGPU engine: device acquisition, tensors, memory, kernel caches and the step recorder.
 * @module
 */
export * from "./device.ts";
export * from "./software_threads.ts";
export * from "./tensor.ts";
export * from "./arena.ts";
export * from "./kernel.ts";
export * from "./recorder.ts";
export * from "./profiler.ts";
