/**
 * Elementwise ops (residual add).
 * @module
 */
import { ELEMENTWISE_WGSL } from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { grid1d } from "./dispatch.ts";

/** out = a + b, elementwise over f32 tensors of equal size. `out` may be `a` (in place). */
export function add(rec: Recorder, out: Tensor, a: Tensor, b: Tensor): void {
  if (a.size !== b.size || a.size !== out.size) {
    throw new ShapeError(
      `add: sizes differ: ${a.name} [${a.shape}], ${b.name} [${b.shape}], ${out.name} [${out.shape}]`,
    );
  }
  for (const t of [a, b, out]) t.expectShape(t.shape, "f32");
  const k = rec.kernels.get({
    name: "add",
    code: ELEMENTWISE_WGSL,
    entryPoint: "add",
    storage: ["rw", "rw", "rw"],
    params: "u",
  });
  rec.dispatch(k, [a, b, out], [a.size], grid1d(a.size));
}
