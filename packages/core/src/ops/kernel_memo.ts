/**
 * Per-op kernel memo for the small ops (norm, activation, embedding, softmax, select).
 * `KernelCache.get` keys on the full WGSL text, so calling it per dispatch would concatenate and hash
 * kilobytes of source every time; the ops instead look their kernel up by a short variant key here
 * (one map per `KernelCache`), and only the first call per variant specialises and compiles.
 * @module
 */
import type { Kernel, KernelCache, KernelSpec } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";

const memo = new WeakMap<KernelCache, Map<string, Kernel>>();

/** The kernel for `key` on `rec`'s cache, building its spec with `build` on the first call only. */
export function memoKernel(rec: Recorder, key: string, build: () => KernelSpec): Kernel {
  let m = memo.get(rec.kernels);
  if (!m) {
    m = new Map();
    memo.set(rec.kernels, m);
  }
  let k = m.get(key);
  if (!k) {
    k = rec.kernels.get(build());
    m.set(key, k);
  }
  return k;
}

/**
 * Placeholders for a weight binding: element type, `enable f16;`, and `read` access unless another
 * tensor of the dispatch lives in the same GPU buffer (WebGPU forbids read + read_write of one
 * buffer in a dispatch). Throws {@link ShapeError} for f16 on a device without shader-f16.
 */
export function weightDefs(
  rec: Recorder,
  op: string,
  w: Tensor,
  others: readonly Tensor[],
): { ENABLE: string; WT: string; WACCESS: string } {
  const f16 = w.dtype === "f16";
  if (f16 && !rec.gpu.features.f16) {
    throw new ShapeError(
      `${op}: ${w.name} is f16 but the device has no shader-f16 (${rec.gpu.adapterName}); ` +
        `load the weights as f32 on this adapter`,
    );
  }
  const read = !others.some((t) => t.buffer === w.buffer);
  return { ENABLE: f16 ? "enable f16;" : "", WT: f16 ? "f16" : "f32", WACCESS: read ? "read" : "read_write" };
}

/** Rows of a per-row kernel as a 2-D workgroup grid (row = wg.y · nwg.x + wg.x). */
export function rowGrid(rec: Recorder, rows: number): [number, number] {
  const max = rec.gpu.limits.maxComputeWorkgroupsPerDimension;
  if (rows <= max) return [rows, 1];
  const y = Math.ceil(rows / max);
  return [Math.ceil(rows / y), y];
}

/** Leading dimensions of `t` flattened: `[rows, cols]` for a tensor whose last dimension is cols. */
export function rowsCols(t: Tensor, op: string): [number, number] {
  if (t.shape.length < 1) throw new ShapeError(`${op}: ${t.name} must have at least one dimension`);
  const cols = t.shape[t.shape.length - 1];
  return [t.size / Math.max(cols, 1), cols];
}

/** True when a and b share bytes without being exactly the same span (in-place is allowed). */
export function partialOverlap(a: Tensor, b: Tensor): boolean {
  if (a.buffer !== b.buffer) return false;
  const same = a.offset === b.offset && a.byteLength === b.byteLength;
  return !same && a.offset < b.offset + b.byteLength && b.offset < a.offset + a.byteLength;
}
