/**
 * Rotary position embedding (HF default rope, "rotate-half" layout). Two ops over one kernel
 * (`kernels/rope.wgsl`, entry `rope_qkv`):
 *
 * - {@link ropeQkv}: the step after the fused QKV projection. It splits each row of `qkv` into
 *   q | k | v, rotates q and k, writes q to its own tensor and k, v into the KV cache at rows
 *   `cacheRow + t` — one dispatch instead of split + 2 rope + 2 copies.
 * - {@link rope}: plain RoPE in place (the same kernel with no key/value heads and q = qkv = x).
 *
 * Positions are `positions[t]` (a u32 GPU tensor, for tree drafts whose tokens share depths) or
 * `pos0 + t`; no CPU round trip is needed either way.
 * @module
 */
import { ROPE_WGSL } from "@gto/kernels";
import type { Kernel, KernelCache } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { grid1d } from "./dispatch.ts";
import type { DynamicValue } from "./attention.ts";

function checkDyn(op: string, d: DynamicValue | undefined): number {
  if (!d) return -1;
  d.meta.expectShape([-1], "u32");
  if (!Number.isInteger(d.index) || d.index < 0 || d.index >= d.meta.size) {
    throw new ShapeError(`${op}: meta index ${d.index} outside ${d.meta.name} [${d.meta.shape}]`);
  }
  return d.index;
}

// KernelCache.get keys on the full WGSL text: remember the kernel per cache instead.
const compiled = new WeakMap<KernelCache, Kernel>();

function ropeKernel(rec: Recorder): Kernel {
  let k = compiled.get(rec.kernels);
  if (!k) {
    k = rec.kernels.get({
      name: "rope_qkv",
      code: ROPE_WGSL,
      entryPoint: "rope_qkv",
      storage: ["rw", "rw", "rw", "rw", "rw", "rw"],
      params: "uuuuuuufii",
    });
    compiled.set(rec.kernels, k);
  }
  return k;
}

function checkDims(op: string, heads: number, headDim: number, theta: number): void {
  if (!Number.isInteger(heads) || heads <= 0) throw new ShapeError(`${op}: numHeads ${heads} must be ≥ 1`);
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) {
    throw new ShapeError(`${op}: headDim ${headDim} must be a positive even integer`);
  }
  if (!(theta > 1)) throw new ShapeError(`${op}: rope theta ${theta} must be > 1`);
}

function checkPositions(op: string, T: number, pos0: number, positions: Tensor | undefined): void {
  if (positions) {
    positions.expectShape([T], ["u32", "i32"]);
  } else if (!Number.isInteger(pos0) || pos0 < 0 || pos0 + T > 2 ** 24) {
    throw new ShapeError(`${op}: pos0 ${pos0} must be an integer in [0, 2^24 − T]`);
  }
}

/** Options of {@link ropeQkv} (and the RoPE half of `attentionRope`). */
export interface RopeQkvOptions {
  /** Query heads nH. */
  numHeads: number;
  /** Key/value heads nKV (divides nH). */
  numKvHeads: number;
  /** Head dim. */
  headDim: number;
  /** RoPE θ (> 1). */
  theta: number;
  /** Cache row of token 0 (plus `dynamicRow`). */
  cacheRow: number;
  /** Position of token 0 when `positions` is not given (default 0). */
  pos0?: number;
  /** u32 (T): per-token positions (tree depths). */
  positions?: Tensor;
  /** GPU scalar added to the cache row (and, unless `dynamicPos` is given, to every position). */
  dynamicRow?: DynamicValue;
  /** GPU scalar added to every position. */
  dynamicPos?: DynamicValue;
}

/**
 * Fused split + RoPE + KV-cache write after the fused QKV projection.
 * `qkv` (T, (nH + 2·nKV)·hd) rows are [q (nH·hd) | k (nKV·hd) | v (nKV·hd)] (HF head-major within
 * each part). Writes q with rotate-half RoPE applied into `q` (T, nH·hd); k (roped) and v into
 * `kCache` / `vCache` (S, nKV·hd) at rows `cacheRow + t` (other rows are untouched).
 * Position of token t: `positions ? positions[t]` (u32 tensor (T)) `: pos0 + t`;
 * inv_freq_i = theta^(−2i/hd) (HF default rope). One dispatch. All tensors are f32; `q` and the
 * written cache rows must not overlap `qkv`.
 */
export function ropeQkv(
  rec: Recorder,
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  qkv: Tensor,
  opts: RopeQkvOptions,
): void {
  const { numHeads: nH, numKvHeads: nKV, headDim: hd, theta, cacheRow, pos0 = 0, positions } = opts;
  const rowMeta = checkDyn("ropeQkv", opts.dynamicRow);
  const posMeta = checkDyn("ropeQkv", opts.dynamicPos);
  if (opts.dynamicRow && opts.dynamicPos && opts.dynamicRow.meta !== opts.dynamicPos.meta) {
    throw new ShapeError("ropeQkv: dynamicRow and dynamicPos must index the same meta tensor");
  }
  const meta = opts.dynamicRow?.meta ?? opts.dynamicPos?.meta;
  checkDims("ropeQkv", nH, hd, theta);
  if (!Number.isInteger(nKV) || nKV <= 0) throw new ShapeError(`ropeQkv: numKvHeads ${nKV} must be ≥ 1`);
  if (qkv.shape.length !== 2) throw new ShapeError(`${qkv.name}: expected 2-D (T, ·), got [${qkv.shape}]`);
  const T = qkv.shape[0];
  qkv.expectShape([T, (nH + 2 * nKV) * hd], "f32"); // (T, (nH + 2nKV)·hd)
  q.expectShape([T, nH * hd], "f32"); // (T, nH·hd)
  kCache.expectShape([-1, nKV * hd], "f32"); // (S, nKV·hd)
  vCache.expectShape([kCache.shape[0], nKV * hd], "f32"); // (S, nKV·hd)
  const S = kCache.shape[0];
  if (!Number.isInteger(cacheRow) || cacheRow < 0 || (rowMeta < 0 && cacheRow + T > S)) {
    throw new ShapeError(
      `ropeQkv: cache rows [${cacheRow}, ${cacheRow + T}) exceed ${kCache.name} rows ${S}`,
    );
  }
  checkPositions("ropeQkv", T, pos0, positions);
  const n = T * (nH + 2 * nKV) * (hd / 2);
  rec.dispatch(
    ropeKernel(rec),
    [qkv, positions ?? qkv, q, kCache, vCache, meta ?? qkv],
    [T, nH, nKV, hd, cacheRow, pos0, positions ? 1 : 0, Math.log2(theta), rowMeta, posMeta],
    grid1d(n),
  );
}

/**
 * Plain RoPE in place on `x` (T, nHeads·hd), f32 (used by the draft and training). Position of token
 * t: `positions ? positions[t]` (u32 tensor (T)) `: pos0 + t`. One dispatch.
 */
export function rope(
  rec: Recorder,
  x: Tensor,
  opts: {
    numHeads: number;
    headDim: number;
    theta: number;
    pos0?: number;
    positions?: Tensor;
    /** GPU scalar added to every position. */
    dynamicPos?: DynamicValue;
  },
): void {
  const { numHeads: nH, headDim: hd, theta, pos0 = 0, positions } = opts;
  const posMeta = checkDyn("rope", opts.dynamicPos);
  checkDims("rope", nH, hd, theta);
  if (x.shape.length !== 2) throw new ShapeError(`${x.name}: expected 2-D (T, ·), got [${x.shape}]`);
  const T = x.shape[0];
  x.expectShape([T, nH * hd], "f32"); // (T, nH·hd)
  checkPositions("rope", T, pos0, positions);
  const n = T * nH * (hd / 2);
  rec.dispatch(
    ropeKernel(rec),
    [x, positions ?? x, x, x, x, opts.dynamicPos?.meta ?? x],
    [T, nH, 0, hd, 0, pos0, positions ? 1 : 0, Math.log2(theta), -1, posMeta],
    grid1d(n),
  );
}
