/**
 * Small per-device scratch tensors for backward kernels that need an intermediate between two
 * dispatches (RMSNorm's per-row rstd, attention's per-(query, head) log-sum-exp, the partial sums of
 * the gradient norm). One buffer per (device, purpose), grown by powers of two, so after the first
 * step no GPU object is created. Reuse within one compute pass is safe: WebGPU orders dispatches of a
 * pass with respect to their storage writes, and each op's consumer dispatch directly follows its
 * producer. A grown-out buffer is dropped, not destroyed (an unsubmitted pass may still bind it).
 * @module
 */
import type { Recorder } from "../gpu/recorder.ts";
import { STORAGE_USAGE } from "../gpu/arena.ts";
import { Tensor } from "../gpu/tensor.ts";

const buffers = new WeakMap<GPUDevice, Map<string, GPUBuffer>>();

/** An f32 scratch tensor of `shape` for `purpose` on `rec`'s device (contents undefined). */
export function scratchF32(rec: Recorder, purpose: string, shape: readonly number[]): Tensor {
  const device = rec.gpu.device;
  let m = buffers.get(device);
  if (!m) buffers.set(device, m = new Map());
  const bytes = Math.max(4, shape.reduce((a, b) => a * b, 1) * 4);
  let buf = m.get(purpose);
  if (!buf || buf.size < bytes) {
    const size = Math.max(256, 2 ** Math.ceil(Math.log2(bytes)));
    buf = device.createBuffer({ label: `scratch:${purpose}`, size, usage: STORAGE_USAGE });
    m.set(purpose, buf);
  }
  return new Tensor(buf, 0, shape, "f32", `scratch:${purpose}`);
}
