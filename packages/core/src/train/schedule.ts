/**
 * Learning-rate schedule of draft training: linear warmup then cosine decay to a floor. Computed on
 * the CPU (the step count needs no readback) and passed to `adamw` in its uniform parameters.
 * @module
 */
import { ShapeError } from "../errors.ts";

/** Parameters of {@link lrSchedule}. */
export interface LrSchedule {
  /** Warmup steps (≥ 0): lr rises linearly to `peak` over them. */
  warmup: number;
  /** Total optimizer steps (> warmup): lr reaches `min` at the last one. */
  total: number;
  /** Peak learning rate. */
  peak: number;
  /** Final (floor) learning rate, default 0. */
  min?: number;
}

/**
 * lr of the optimizer step with 0-based index `step`: with s = step + 1, peak·s/warmup while
 * s ≤ warmup, then min + (peak − min)·½(1 + cos(π·(s − warmup)/(total − warmup))) (clamped to `min`
 * past `total`). The first step therefore has a non-zero lr.
 */
export function lrSchedule(step: number, o: LrSchedule): number {
  const { warmup, total, peak, min = 0 } = o;
  if (!Number.isInteger(step) || step < 0) throw new ShapeError(`lrSchedule: step ${step} must be ≥ 0`);
  if (!(warmup >= 0) || !(total > warmup)) {
    throw new ShapeError(`lrSchedule: need 0 ≤ warmup (${warmup}) < total (${total})`);
  }
  const s = step + 1;
  if (s <= warmup) return (peak * s) / warmup;
  const progress = Math.min(1, (s - warmup) / (total - warmup));
  return min + (peak - min) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
