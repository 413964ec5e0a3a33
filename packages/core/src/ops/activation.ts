/**
 * Activations of the LLaMA MLP. `swiglu` consumes the fused gate/up projection (one matmul produces
 * both halves) and writes silu(gate) · up in one dispatch of `kernels/activation.wgsl`, one thread
 * per output element.
 * @module
 */
import { ACTIVATION_WGSL } from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { grid1d } from "./dispatch.ts";
import { memoKernel } from "./kernel_memo.ts";

/**
 * SwiGLU over the fused gate/up projection: gateUp (M, 2I) rows are [gate(I) | up(I)];
 * out (M, I) = silu(gate) · up with silu(g) = g / (1 + e^−g). Both f32; leading dimensions are
 * flattened into M. `out` must not overlap `gateUp`. Throws {@link ShapeError} naming the tensor.
 */
export function swiglu(rec: Recorder, out: Tensor, gateUp: Tensor): void {
  if (gateUp.shape.length < 1) throw new ShapeError(`swiglu: ${gateUp.name} must be (M, 2I)`);
  const lead = gateUp.shape.slice(0, -1);
  const I2 = gateUp.shape[gateUp.shape.length - 1];
  if (I2 % 2 !== 0) throw new ShapeError(`swiglu: ${gateUp.name} last dimension ${I2} is odd, expected 2I`);
  const I = I2 / 2;
  gateUp.expectShape(gateUp.shape, "f32"); // (M, 2I)
  out.expectShape([...lead, I], "f32"); // (M, I)
  if (
    out.buffer === gateUp.buffer && out.offset < gateUp.offset + gateUp.byteLength &&
    gateUp.offset < out.offset + out.byteLength
  ) {
    throw new ShapeError(`swiglu: ${out.name} overlaps its input ${gateUp.name}`);
  }
  const n = out.size;
  if (n === 0) return;
  const k = memoKernel(rec, "swiglu", () => ({
    name: "swiglu",
    code: ACTIVATION_WGSL,
    entryPoint: "swiglu",
    storage: ["rw", "rw"],
    params: "uu",
  }));
  rec.dispatch(k, [gateUp, out], [I, n], grid1d(n, 256, rec.gpu.limits.maxComputeWorkgroupsPerDimension));
}
