/**
 * Elementwise and data-movement ops: residual add and a 2-D strided row copy (select the last row of
 * a batch, gather hidden-state taps into a concatenated feature buffer).
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

/** Where a {@link copyRows} reads or writes: element offset of row 0 and the row stride (elements). */
export interface RowSpan {
  /** Element offset of (row 0, col 0) within the tensor. */
  offset: number;
  /** Elements between consecutive rows. */
  stride: number;
}

/**
 * Copy a (rows, cols) block between f32 tensors with arbitrary row strides:
 * dst[d.offset + r·d.stride + c] = src[s.offset + r·s.stride + c]. `src` and `dst` must not overlap.
 */
export function copyRows(
  rec: Recorder,
  dst: Tensor,
  d: RowSpan,
  src: Tensor,
  s: RowSpan,
  rows: number,
  cols: number,
): void {
  src.expectShape(src.shape, "f32");
  dst.expectShape(dst.shape, "f32");
  if (rows === 0 || cols === 0) return;
  const last = (o: RowSpan) => o.offset + (rows - 1) * o.stride + cols;
  if (last(s) > src.size || s.offset < 0) {
    throw new ShapeError(`copyRows: reading ${rows}×${cols} from ${src.name} [${src.shape}] overruns it`);
  }
  if (last(d) > dst.size || d.offset < 0) {
    throw new ShapeError(`copyRows: writing ${rows}×${cols} into ${dst.name} [${dst.shape}] overruns it`);
  }
  const k = rec.kernels.get({
    name: "copy_rows",
    code: ELEMENTWISE_WGSL,
    entryPoint: "copy_rows",
    storage: ["rw", "rw"],
    params: "uuuuuu",
  });
  rec.dispatch(k, [src, dst], [rows, cols, s.offset, s.stride, d.offset, d.stride], grid1d(rows * cols));
}
