/**
 * Token embedding lookup. Token ids are a GPU tensor (a decode loop writes sampled ids into a token
 * ring and embeds them without a CPU round trip), read from `idsOffset`. One dispatch of
 * `kernels/embedding.wgsl`, one thread per output element; f16 tables use the same source
 * specialised with `enable f16;`.
 * @module
 */
import { EMBEDDING_WGSL } from "@gto/kernels";
import { specialize } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { grid1d } from "./dispatch.ts";
import { memoKernel, weightDefs } from "./kernel_memo.ts";

/** Options for {@link embedding}. */
export interface EmbeddingOptions {
  /** Index of the first id to read in `ids` (default 0). */
  idsOffset?: number;
}

/**
 * Gather rows: out (T, H) = table[ids[idsOffset + t]]. table (V, H) f32 or f16; ids a u32 tensor of
 * any shape with at least idsOffset + T elements; out (T, H) f32. An id ≥ V writes a row of NaNs
 * (clamping would be a silent wrong answer). Throws {@link ShapeError} naming the tensor on a
 * shape/dtype mismatch, and for an f16 table on a device without shader-f16.
 */
export function embedding(
  rec: Recorder,
  out: Tensor,
  table: Tensor,
  ids: Tensor,
  opts: EmbeddingOptions = {},
): void {
  if (table.shape.length !== 2) {
    throw new ShapeError(`embedding: ${table.name} must be (V, H), got [${table.shape}]`);
  }
  const [V, H] = table.shape; // (V, H)
  table.expectShape([V, H], ["f32", "f16"]);
  if (out.shape.length !== 2) {
    throw new ShapeError(`embedding: ${out.name} must be (T, H), got [${out.shape}]`);
  }
  const T = out.shape[0];
  out.expectShape([T, H], "f32"); // (T, H)
  ids.expectShape(ids.shape, "u32");
  const off = opts.idsOffset ?? 0;
  if (!Number.isInteger(off) || off < 0) {
    throw new ShapeError(`embedding: idsOffset must be an integer ≥ 0, got ${off}`);
  }
  if (off + T > ids.size) {
    throw new ShapeError(`embedding: ${ids.name} has ${ids.size} ids, needs idsOffset + T = ${off + T}`);
  }
  const n = T * H;
  if (n === 0) return;
  const defs = weightDefs(rec, "embedding", table, [ids, out]);
  const k = memoKernel(rec, `embedding:${defs.WT}:${defs.WACCESS}`, () => ({
    name: `embedding_${defs.WT}`,
    code: specialize(EMBEDDING_WGSL, defs),
    storage: [defs.WACCESS === "read" ? "read" : "rw", "rw", "rw"],
    params: "uuuu",
  }));
  rec.dispatch(
    k,
    [table, ids, out],
    [T, H, V, off],
    grid1d(n, 256, rec.gpu.limits.maxComputeWorkgroupsPerDimension),
  );
}
