/**
 * Split-K attention (`kernels/attention_split.wgsl`): for few queries over a long KV cache the keys
 * of each (query, head) are divided among several workgroups and a second dispatch merges their
 * partial softmax states. {@link attention} switches to it by itself when the caller lends it a
 * scratch tensor (`opts.split`) and {@link attentionSplits} says it pays; this module only records
 * the two dispatches for inputs `attention` has already validated.
 * @module
 */
import { ATTENTION_SPLIT_WGSL } from "@gto/kernels";
import { specialize } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { memoKernel } from "./kernel_memo.ts";

/** The scratch a caller lends {@link attention} for split-K (`opts.split`). */
export interface AttentionSplit {
  /** f32 scratch of ≥ {@link attentionSplitScratch} elements for the shapes it will see. */
  scratch: Tensor;
  /** Key ranges per (query, head); default: {@link attentionSplits}. 1 turns splitting off. */
  splits?: number;
}

/** Most splits per (query, head). */
export const ATTENTION_MAX_SPLITS = 64;

/** f32 elements of split-K scratch for Tq queries, nH heads, head dim hd and `splits` ranges. */
export function attentionSplitScratch(tq: number, nH: number, hd: number, splits: number): number {
  return tq * nH * splits * (hd + 4);
}

/**
 * Default split count for Tq queries × nH heads over at most `keys` keys: 1 (no split) unless the
 * one-workgroup-per-(query, head) kernel would leave the adapter idle. Hardware: aim for ≥ 256
 * workgroups with ≥ 128 keys each. Software adapters (llvmpipe runs workgroups on its thread pool):
 * aim for 2 workgroups per CPU thread with ≥ 512 keys each.
 */
export function attentionSplits(rec: Recorder, tq: number, nH: number, keys: number): number {
  const software = rec.gpu.isFallback || /llvmpipe|lavapipe|swiftshader/i.test(rec.gpu.adapterName);
  const target = software ? 2 * (navigator.hardwareConcurrency || 2) : 256;
  const minKeys = software ? 512 : 128;
  const want = Math.ceil(target / (tq * nH));
  return Math.max(1, Math.min(want, Math.floor(keys / minKeys), ATTENTION_MAX_SPLITS));
}

/** Validated inputs of one split-K attention (see `attention`). */
export interface SplitDispatch {
  out: Tensor;
  q: Tensor;
  kCache: Tensor;
  vCache: Tensor;
  mask: Tensor | undefined;
  meta: Tensor | undefined;
  /** Params: tq, nH, nKV, kvLen, scale, mode, maskWords, metaIndex, treeLen. */
  params: number[];
  headDim: number;
  splits: number;
  scratch: Tensor;
  workgroupSize: number;
}

/** Record split-K attention: the partial pass over (nH, Tq, splits) workgroups, then the merge. */
export function recordSplitAttention(rec: Recorder, d: SplitDispatch): void {
  const [tq, nH] = d.params;
  const need = attentionSplitScratch(tq, nH, d.headDim, d.splits);
  d.scratch.expectShape(d.scratch.shape, "f32");
  if (d.scratch.size < need) {
    throw new ShapeError(
      `attention: split scratch ${d.scratch.name} has ${d.scratch.size} elements, needs ${need}`,
    );
  }
  if (d.splits < 1 || d.splits > ATTENTION_MAX_SPLITS || !Number.isInteger(d.splits)) {
    throw new ShapeError(
      `attention: splits must be an integer in [1, ${ATTENTION_MAX_SPLITS}], got ${d.splits}`,
    );
  }
  const wg = d.workgroupSize, hd = d.headDim;
  const code = () => specialize(ATTENTION_SPLIT_WGSL, { WG: wg, D4: hd / 4 });
  const part = memoKernel(rec, `attn_split:${wg}:${hd}`, () => ({
    name: `attn_split_wg${wg}_d${hd}`,
    code: code(),
    entryPoint: "attn_split",
    storage: ["rw", "rw", "rw", "rw", "rw", "rw"],
    params: "uuuufuuiuu",
  }));
  const merge = memoKernel(rec, `attn_merge:${wg}:${hd}`, () => ({
    name: `attn_merge_d${hd}`,
    code: code(),
    entryPoint: "attn_merge",
    storage: ["rw", "rw"],
    params: "uuuufuuiuu",
  }));
  const params = [...d.params, d.splits];
  rec.dispatch(
    part,
    [d.q, d.kCache, d.vCache, d.mask ?? d.q, d.scratch, d.meta ?? d.q],
    params,
    [nH, tq, d.splits],
  );
  rec.dispatch(merge, [d.scratch, d.out], params, [nH, tq]);
}
