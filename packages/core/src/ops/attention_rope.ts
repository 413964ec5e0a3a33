/**
 * Attention fused with RoPE and the KV-cache write (`kernels/attention_rope.wgsl`), for a few new
 * tokens: one dispatch takes the fused QKV projection output to the attention output, writing the
 * new keys (rotated) and values into the cache on the way. It replaces `ropeQkv` + `attention` in a
 * decoder layer when T ≤ {@link ATTENTION_ROPE_MAX_TOKENS}, saving one dispatch per layer (the
 * dominant per-token cost on dispatch-bound adapters), with results equal to the two-dispatch path
 * bit for bit.
 * @module
 */
import { ATTENTION_ROPE_WGSL } from "@gto/kernels";
import { specialize } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { memoKernel } from "./kernel_memo.ts";
import { ATTENTION_MAX_HEAD_DIM, type DynamicValue, type TreeMask } from "./attention.ts";
import type { RopeQkvOptions } from "./rope.ts";

/** Most new tokens {@link attentionRope} takes (rows of its workgroup key staging). */
export const ATTENTION_ROPE_MAX_TOKENS = 8;

/**
 * Options of {@link attentionRope}: `ropeQkv`'s and `attention`'s, for the same T tokens (head dim a multiple
 * of 8, ≤ 128).
 */
export interface AttentionRopeOptions extends RopeQkvOptions {
  /** Valid cache rows after the write (plus `dynamicLen`); the new rows lie inside. */
  kvLen: number;
  /** GPU scalar added to kvLen. */
  dynamicLen?: DynamicValue;
  /** Prefix + tree masking over the last treeLen keys (default causal). */
  treeMask?: TreeMask;
  /** Logit scale (default 1/sqrt(hd)). */
  scale?: number;
  /** Threads per workgroup (default as `attention`: 64 on software adapters, else 256 / 128). */
  workgroupSize?: 32 | 64 | 128 | 256;
}

/** Whether {@link attentionRope} supports T tokens of head dim hd (else use `ropeQkv` + `attention`). */
export function attentionRopeSupports(T: number, headDim: number): boolean {
  return T >= 1 && T <= ATTENTION_ROPE_MAX_TOKENS && headDim % 8 === 0 && headDim <= ATTENTION_MAX_HEAD_DIM;
}

/**
 * RoPE + KV write + attention for T ≤ 8 new tokens: `qkv` (T, (nH + 2·nKV)·hd) f32 is the fused
 * projection output; keys/values of token t go to cache rows cacheRow (+ dynamicRow) + t of `kCache`,
 * `vCache` (S, nKV·hd); `out` (T, nH·hd) receives attention over rows [0, kvLen (+ dynamicLen)) with
 * the causal or prefix + tree mask. Exactly `ropeQkv(q, …)` then `attention(out, q, …)`. One dispatch.
 * All dynamic values must index the same meta tensor. Throws {@link ShapeError} naming the field.
 */
export function attentionRope(
  rec: Recorder,
  out: Tensor,
  qkv: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  opts: AttentionRopeOptions,
): void {
  const { numHeads: nH, numKvHeads: nKV, headDim: hd, theta, cacheRow, kvLen, positions } = opts;
  const pos0 = opts.pos0 ?? 0;
  if (!Number.isInteger(nH) || !Number.isInteger(nKV) || nKV <= 0 || nH <= 0 || nH % nKV !== 0) {
    throw new ShapeError(`attentionRope: numHeads ${nH} must be a positive multiple of numKvHeads ${nKV}`);
  }
  if (qkv.shape.length !== 2) throw new ShapeError(`${qkv.name}: expected 2-D (T, ·), got [${qkv.shape}]`);
  const T = qkv.shape[0];
  if (!attentionRopeSupports(T, hd)) {
    throw new ShapeError(
      `attentionRope: T ${T} must be in [1, ${ATTENTION_ROPE_MAX_TOKENS}] and headDim ${hd} a multiple of 8 ≤ ${ATTENTION_MAX_HEAD_DIM}`,
    );
  }
  if (!(theta > 1)) throw new ShapeError(`attentionRope: rope theta ${theta} must be > 1`);
  qkv.expectShape([T, (nH + 2 * nKV) * hd], "f32"); // (T, (nH + 2nKV)·hd)
  out.expectShape([T, nH * hd], "f32"); // (T, nH·hd)
  kCache.expectShape([-1, nKV * hd], "f32"); // (S, nKV·hd)
  vCache.expectShape([kCache.shape[0], nKV * hd], "f32"); // (S, nKV·hd)
  if (
    out.buffer === qkv.buffer && out.offset < qkv.offset + qkv.byteLength &&
    qkv.offset < out.offset + out.byteLength
  ) {
    throw new ShapeError(`attentionRope: ${out.name} overlaps ${qkv.name}`);
  }
  const S = kCache.shape[0];
  const dyn = [opts.dynamicRow, opts.dynamicPos, opts.dynamicLen].filter((d) => d) as DynamicValue[];
  for (const d of dyn) {
    d.meta.expectShape([-1], "u32");
    if (d.meta !== dyn[0].meta) {
      throw new ShapeError("attentionRope: all dynamic values must index one meta tensor");
    }
    if (!Number.isInteger(d.index) || d.index < 0 || d.index >= d.meta.size) {
      throw new ShapeError(`attentionRope: meta index ${d.index} outside ${d.meta.name} [${d.meta.shape}]`);
    }
  }
  const isDyn = opts.dynamicRow !== undefined || opts.dynamicLen !== undefined;
  if (!Number.isInteger(cacheRow) || cacheRow < 0 || !Number.isInteger(kvLen) || kvLen < 0 || kvLen > S) {
    throw new ShapeError(
      `attentionRope: cacheRow ${cacheRow} / kvLen ${kvLen} outside ${kCache.name} rows ${S}`,
    );
  }
  if (!isDyn && (cacheRow + T > kvLen || T > kvLen)) {
    throw new ShapeError(
      `attentionRope: new rows [${cacheRow}, ${cacheRow + T}) must lie inside kvLen ${kvLen}`,
    );
  }
  if (positions) positions.expectShape([T], ["u32", "i32"]);
  else if (!Number.isInteger(pos0) || pos0 < 0 || pos0 + T > 2 ** 24) {
    throw new ShapeError(`attentionRope: pos0 ${pos0} must be an integer in [0, 2^24 − T]`);
  }
  let mode = 0, words = 1, treeLen = 0;
  if (opts.treeMask) {
    treeLen = opts.treeMask.treeLen;
    if (!Number.isInteger(treeLen) || treeLen < 1 || (!isDyn && treeLen > kvLen)) {
      throw new ShapeError(`attentionRope: treeLen ${treeLen} must be in [1, kvLen]`);
    }
    words = Math.ceil(treeLen / 32);
    opts.treeMask.mask.expectShape([T, words], "u32"); // (T, ceil(treeLen/32))
    mode = 2;
  }
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  if (!Number.isFinite(scale)) throw new ShapeError(`attentionRope: scale ${scale} is not finite`);
  const wg = opts.workgroupSize ?? (rec.gpu.isFallback ? 64 : T * nH <= 64 ? 256 : 128);
  if (wg < hd / 4) throw new ShapeError(`attentionRope: workgroup size ${wg} below headDim/4 = ${hd / 4}`);
  const kern = memoKernel(rec, `attention_rope:${wg}:${hd}`, () => ({
    name: `attention_rope_wg${wg}_d${hd}`,
    code: specialize(ATTENTION_ROPE_WGSL, { WG: wg, D4: hd / 4, TMAX: ATTENTION_ROPE_MAX_TOKENS }),
    entryPoint: "attention_rope",
    storage: ["rw", "rw", "rw", "rw", "rw", "rw", "rw"],
    params: "uuuufuuiuuiuuif",
  }));
  const idx = (d: DynamicValue | undefined) => (d ? d.index : -1);
  const meta = dyn[0]?.meta;
  rec.dispatch(
    kern,
    [qkv, kCache, vCache, opts.treeMask?.mask ?? qkv, out, meta ?? qkv, positions ?? qkv],
    [
      T,
      nH,
      nKV,
      kvLen,
      scale,
      mode,
      words,
      idx(opts.dynamicLen),
      treeLen,
      cacheRow,
      idx(opts.dynamicRow),
      pos0,
      positions ? 1 : 0,
      idx(opts.dynamicPos),
      Math.log2(theta),
    ],
    [nH, T],
  );
}
