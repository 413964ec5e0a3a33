/**
 * Per-dispatch GPU timing, opt-in, for finding the kernels that dominate a step (docs/engine.md §7).
 * A cycle's phase times (`SpecDecoder.profile`) say *where* a cycle is slow; this says *which kernel*.
 *
 * While a {@link Recorder} profiles (`rec.startProfile()`), every dispatch gets a compute pass of its
 * own with `timestampWrites` at its beginning and end (WebGPU has no timestamp between two dispatches
 * of one pass without the non-standard `timestamp-query-inside-passes`). At each submit the query set
 * is resolved and copied to a pooled staging buffer (reused across submits); `rec.stopProfile()` awaits them and sums
 * the durations by (scope, kernel name). Scopes are labels the caller sets around a stretch of work
 * (`rec.profileScope("verification")`). With profiling off the recorder holds `null` here and its
 * dispatch path is unchanged but for one null check, so it costs nothing in decode loops.
 *
 * Measured on llvmpipe (Mesa's software Vulkan): timestamps bracket each dispatch's execution on the
 * worker threads; the gap between a pass's end and the next pass's beginning (~15–45 µs) is the
 * per-dispatch overhead, reported as `spanMs − kernelMs`. One pass per dispatch adds a little of that
 * overhead itself, so profile for attribution, and take totals from unprofiled timings.
 * @module
 */
import type { GpuDevice } from "./device.ts";
import { BufferPool } from "./arena.ts";
import { ShapeError } from "../errors.ts";

/** One kernel's share of a profiled stretch. */
export interface KernelTiming {
  /** The scope set with `Recorder.profileScope` when it was recorded ("" if none). */
  scope: string;
  /** The kernel's `KernelSpec.name`. */
  name: string;
  /** Dispatches of it. */
  dispatches: number;
  /** GPU milliseconds summed over those dispatches (begin → end timestamps of each). */
  ms: number;
}

/** What `Recorder.stopProfile` returns: per-kernel GPU time, most expensive first. */
export interface DispatchProfile {
  /** Per (scope, kernel name), sorted by `ms`, largest first. */
  kernels: KernelTiming[];
  /** Dispatches profiled. */
  dispatches: number;
  /** Σ kernel ms: time the GPU spent inside dispatches. */
  kernelMs: number;
  /** Σ over submits of (last end − first begin): kernel time plus the gaps between dispatches. */
  spanMs: number;
}

/** Pairs of timestamps per query set: a submit with more dispatches is split (the recorder submits). */
export const PROFILE_DISPATCHES_PER_SUBMIT = 2048;

interface Pending {
  names: string[];
  read: Promise<BigUint64Array>;
}

/** The timestamp queries of a profiling recorder (internal to {@link Recorder}). */
export class DispatchProfiler {
  readonly #querySet: GPUQuerySet;
  readonly #resolve: GPUBuffer;
  readonly #staging: BufferPool; // readback buffers, reused across submits
  #names: string[] = [];
  #pending: Pending[] = [];
  /** The current scope label. */
  scope = "";

  /** Allocate the query set; throws when the device lacks `timestamp-query`. */
  constructor(gpu: GpuDevice) {
    if (!gpu.features.timestamp) {
      throw new ShapeError(
        `profiling needs the timestamp-query feature, which ${gpu.adapterName} does not expose`,
      );
    }
    this.#staging = new BufferPool(gpu);
    const count = 2 * PROFILE_DISPATCHES_PER_SUBMIT;
    this.#querySet = gpu.device.createQuerySet({ type: "timestamp", count, label: "profile" });
    this.#resolve = gpu.device.createBuffer({
      label: "profile-resolve",
      size: 8 * count,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  /** Whether the query set is used up (the recorder submits before the next dispatch). */
  get full(): boolean {
    return this.#names.length >= PROFILE_DISPATCHES_PER_SUBMIT;
  }

  /** Begin a pass for one dispatch of `name`, timestamped at its beginning and end. */
  beginPass(encoder: GPUCommandEncoder, name: string): GPUComputePassEncoder {
    const i = this.#names.length;
    this.#names.push(this.scope ? `${this.scope}\u0000${name}` : `\u0000${name}`);
    return encoder.beginComputePass({
      label: name,
      timestampWrites: {
        querySet: this.#querySet,
        beginningOfPassWriteIndex: 2 * i,
        endOfPassWriteIndex: 2 * i + 1,
      },
    });
  }

  /** Append the resolve + copy of this submit's queries to `encoder` (before it is finished). */
  resolveInto(encoder: GPUCommandEncoder): (() => void) | null {
    const n = this.#names.length;
    if (n === 0) return null;
    const names = this.#names;
    this.#names = [];
    const bytes = 16 * n;
    const staging = this.#staging.acquire(
      bytes,
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      "profile-read",
    );
    encoder.resolveQuerySet(this.#querySet, 0, 2 * n, this.#resolve, 0);
    encoder.copyBufferToBuffer(this.#resolve, 0, staging, 0, bytes);
    // Mapped after the submit (the caller runs the returned function once it has submitted).
    return () => {
      const read = staging.mapAsync(GPUMapMode.READ).then(() => {
        const v = new BigUint64Array(staging.getMappedRange(0, bytes).slice(0));
        staging.unmap();
        this.#staging.release(staging);
        return v;
      });
      this.#pending.push({ names, read });
    };
  }

  /** Await every submitted read and sum them by (scope, name). */
  async collect(): Promise<DispatchProfile> {
    const byKey = new Map<string, KernelTiming>();
    let dispatches = 0, kernelNs = 0, spanNs = 0;
    for (const { names, read } of this.#pending) {
      const ts = await read;
      let first = Infinity, last = -Infinity;
      names.forEach((key, i) => {
        const begin = Number(ts[2 * i]), end = Number(ts[2 * i + 1]);
        first = Math.min(first, begin);
        last = Math.max(last, end);
        const ns = Math.max(0, end - begin);
        let row = byKey.get(key);
        if (!row) {
          const [scope, name] = key.split("\u0000");
          byKey.set(key, row = { scope, name, dispatches: 0, ms: 0 });
        }
        row.dispatches++;
        row.ms += ns / 1e6;
        kernelNs += ns;
        dispatches++;
      });
      if (names.length > 0) spanNs += Math.max(0, last - first);
    }
    this.#pending = [];
    const kernels = [...byKey.values()].sort((a, b) => b.ms - a.ms);
    return { kernels, dispatches, kernelMs: kernelNs / 1e6, spanMs: spanNs / 1e6 };
  }

  /** Free the query set and resolve buffer. */
  destroy(): void {
    this.#querySet.destroy();
    this.#resolve.destroy();
    this.#staging.destroy();
  }
}

/**
 * Scale a profile to "per unit" (e.g. per cycle of `reps` recorded cycles) and keep the `top` most
 * expensive rows (the rest summed into one `(other)` row). Pure; for reports.
 */
export function perUnit(p: DispatchProfile, units: number, top = Infinity): DispatchProfile {
  const scale = (k: KernelTiming): KernelTiming => ({
    ...k,
    dispatches: k.dispatches / units,
    ms: k.ms / units,
  });
  const rows = p.kernels.map(scale);
  const kept = rows.slice(0, top);
  const rest = rows.slice(top);
  if (rest.length > 0) {
    kept.push({
      scope: "",
      name: `(${rest.length} others)`,
      dispatches: rest.reduce((s, k) => s + k.dispatches, 0),
      ms: rest.reduce((s, k) => s + k.ms, 0),
    });
  }
  return {
    kernels: kept,
    dispatches: p.dispatches / units,
    kernelMs: p.kernelMs / units,
    spanMs: p.spanMs / units,
  };
}
