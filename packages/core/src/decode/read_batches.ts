/**
 * How many decode steps (plain) or cycles (speculative) to encode per submit / readback: a schedule
 * that starts small and doubles until a batch takes long enough to hide the readback's latency.
 *
 * Why: Deno resolves a buffer mapping a fixed ~11 ms after the GPU is done (docs/engine.md §2). The
 * decode loops double-buffer (batch b+1 is submitted before batch b's readback is awaited), which
 * hides that latency only when the GPU works asynchronously. On llvmpipe with inline dispatch
 * (gpu/software_threads.ts) the submit itself runs the batch on the calling thread, so each read's
 * ~11 ms is idle time: tiny + 16 steps per read decoded 200 tokens at 2.58–2.75 ms per token, 64 steps
 * per read at 1.92 (2026-11-30, 2-core llvmpipe). Large fixed batches have their own cost: the first
 * tokens arrive later, and steps encoded after an eos are wasted (small at ~19 ms per step × 63 is over
 * a second). So a batch doubles from `first` while the previous one took less than `targetMs`, up to
 * `max`: short answers stay cheap, long ones amortize the latency to ≤ ~10 %.
 * @module
 */

/** Default target wall time of one batch: ~10× Deno's readback latency. */
export const READ_BATCH_TARGET_MS = 110;

/** A batch-size schedule; `next(ms)` gives the next batch's size from the last batch's wall time. */
export class ReadBatches {
  #size: number;
  readonly #max: number;
  readonly #targetMs: number;
  readonly #fixed: boolean;

  /**
   * `fixed` (a caller's explicit stepsPerRead / cyclesPerRead) keeps every batch at that size;
   * otherwise batches start at `first` and double up to `max` while a batch took < `targetMs`.
   */
  constructor(opts: { fixed?: number; first: number; max: number; targetMs?: number }) {
    this.#fixed = opts.fixed !== undefined;
    this.#size = opts.fixed ?? opts.first;
    this.#max = opts.fixed ?? opts.max;
    this.#targetMs = opts.targetMs ?? READ_BATCH_TARGET_MS;
  }

  /** The current batch size. */
  get size(): number {
    return this.#size;
  }

  /** The largest batch this schedule can reach (sizes trace buffers). */
  get max(): number {
    return this.#max;
  }

  /** Record that the last batch took `ms` wall time; returns the next batch's size. */
  next(ms: number): number {
    if (!this.#fixed && ms < this.#targetMs) this.#size = Math.min(this.#max, 2 * this.#size);
    return this.#size;
  }
}
