/**
 * Backward of GQA attention for training, with the causal mask, any per-query bitset mask (e.g.
 * the EAGLE-3 training-time-test (TTT) mask built by {@link tttMask}), or the TTT visibility
 * computed in the kernel (`ttt`, scanning only the keys each query sees). Two dispatches of
 * `kernels/attention_bwd.wgsl`: `dq_main` (one workgroup per (query, head); recomputes the scores'
 * log-sum-exp, so the forward needs no extra output, and stores (lse, D) per (query, head) in a
 * scratch) and `dkv_main` (one workgroup per (key, kv head), summing over the queries and the query
 * heads that share the kv head). Scores are never materialised.
 * @module
 */
import { ATTENTION_BWD_WGSL } from "@gto/kernels";
import { specialize } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { memoKernel } from "../ops/kernel_memo.ts";
import { checkTttMask, type TttMask } from "../ops/attention.ts";
import { scratchF32 } from "./scratch.ts";

/** Largest head dim of the attention backward kernels. */
export const ATTENTION_BWD_MAX_HEAD_DIM = 128;

/** Options of {@link attentionBackward} (the forward's, plus gradient accumulation). */
export interface AttentionBackwardOptions {
  /** Query heads. */
  numHeads: number;
  /** Key/value heads (divides numHeads). */
  numKvHeads: number;
  /** Head dimension (≤ 128). */
  headDim: number;
  /** Valid key rows [0, kvLen) of k and v. */
  kvLen: number;
  /** Logit scale; default 1/√headDim. */
  scale?: number;
  /** u32 (Tq, ceil(kvLen/32)) bitset mask (`packMask`); default causal (query t sees keys ≤ kvLen − Tq + t). */
  mask?: Tensor;
  /**
   * Training-time-test visibility (see `TttMask` in ops/attention.ts): scans only the keys each
   * query sees, instead of a bitset over all rows.
   */
  ttt?: TttMask;
  /** Add into dk, dv instead of overwriting them (keys shared by several unrolled steps). */
  accumulate?: boolean;
  /**
   * Threads per workgroup (tests): default 64 on software adapters when headDim ≤ 64 (llvmpipe runs
   * a workgroup as fibers switched at every barrier; half the fibers per barrier), else 128.
   */
  workgroupSize?: 64 | 128;
  /** Scratch (Tq, nH, 2) f32 for (lse, D); default an internal per-device scratch. */
  stats?: Tensor;
}

/**
 * Gradients of out = attention(q, k, v) (see `attention`): dq (Tq, nH·hd) is written; dk, dv
 * (S, nKV·hd) rows [0, kvLen) are written (or added with `accumulate`; with `ttt`, rows
 * [0, steps·stepStride + Tq)), later rows untouched.
 * Inputs: dout, q, out (Tq, nH·hd) — `out` is the forward output (for D = dout·out); k, v
 * (S, nKV·hd). f32 throughout. Gradient tensors must not overlap the inputs or each other.
 */
export function attentionBackward(
  rec: Recorder,
  dq: Tensor,
  dk: Tensor,
  dv: Tensor,
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  opts: AttentionBackwardOptions,
): void {
  const { numHeads: nH, numKvHeads: nKV, headDim: hd, kvLen, mask } = opts;
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  if (!Number.isInteger(nH) || !Number.isInteger(nKV) || nKV <= 0 || nH <= 0 || nH % nKV !== 0) {
    throw new ShapeError(
      `attentionBackward: numHeads ${nH} must be a positive multiple of numKvHeads ${nKV}`,
    );
  }
  if (!Number.isInteger(hd) || hd <= 0 || hd > ATTENTION_BWD_MAX_HEAD_DIM) {
    throw new ShapeError(`attentionBackward: headDim ${hd} must be in [1, ${ATTENTION_BWD_MAX_HEAD_DIM}]`);
  }
  if (q.shape.length !== 2) throw new ShapeError(`${q.name}: expected 2-D (Tq, nH·hd), got [${q.shape}]`);
  const Tq = q.shape[0];
  for (const t of [q, dq, dout, out]) t.expectShape([Tq, nH * hd], "f32"); // (Tq, nH·hd)
  k.expectShape([-1, nKV * hd], "f32"); // (S, nKV·hd)
  const S = k.shape[0];
  for (const t of [v, dk, dv]) t.expectShape([S, nKV * hd], "f32"); // (S, nKV·hd)
  if (!Number.isInteger(kvLen) || kvLen < 1 || kvLen > S) {
    throw new ShapeError(`attentionBackward: kvLen ${kvLen} must be in [1, ${S}] (rows of ${k.name})`);
  }
  const words = Math.ceil(kvLen / 32);
  const ttt = opts.ttt;
  if (mask && ttt) throw new ShapeError("attentionBackward: give mask or ttt, not both");
  if (mask) mask.expectShape([Tq, words], "u32"); // (Tq, ceil(kvLen/32))
  const wg = opts.workgroupSize ?? (rec.gpu.isFallback && hd <= 64 ? 64 : 128);
  if (wg !== 64 && wg !== 128 || hd > wg) {
    throw new ShapeError(`attentionBackward: workgroupSize ${wg} must be 64 or 128 and ≥ headDim ${hd}`);
  }
  if (ttt) {
    checkTttMask("attentionBackward", ttt, Tq, kvLen);
    if (ttt.steps * (nH / nKV) > wg) {
      throw new ShapeError(
        `attentionBackward: ttt steps ${ttt.steps} × ${nH / nKV} query heads per kv head exceed ${wg}`,
      );
    }
  } else if (!mask && Tq > kvLen) {
    throw new ShapeError(`attentionBackward: causal mask needs Tq ${Tq} ≤ kvLen ${kvLen}`);
  }
  if (!Number.isFinite(scale)) throw new ShapeError(`attentionBackward: scale ${scale} is not finite`);
  const grads = [dq, dk, dv];
  for (const g of grads) {
    for (const t of [dout, q, k, v, out, ...(mask ? [mask] : []), ...grads]) {
      if (
        t !== g && g.buffer === t.buffer && g.offset < t.offset + t.byteLength &&
        t.offset < g.offset + g.byteLength
      ) {
        throw new ShapeError(`attentionBackward: ${g.name} overlaps ${t.name}`);
      }
    }
  }
  const stats = opts.stats ?? scratchF32(rec, "attn_stats", [Tq, nH, 2]);
  stats.expectShape([Tq, nH, 2], "f32"); // (Tq, nH, 2)
  if (Tq === 0) return;
  const spec = (entry: string) => () => ({
    name: `attention_bwd_${entry}_wg${wg}`,
    code: specialize(ATTENTION_BWD_WGSL, { WG: wg }),
    entryPoint: entry,
    storage: ["rw", "rw", "rw", "rw", "rw", "rw", "rw", "rw"] as ("rw")[],
    params: "uuuufuuuuuuu",
  });
  const mode = mask ? 1 : ttt ? 4 : 0;
  const params = [
    ...[Tq, nH, nKV, kvLen, scale, mode, words, hd, opts.accumulate ? 1 : 0],
    ...(ttt ? [ttt.seqLen, ttt.stepStride, ttt.steps] : [0, 0, 0]),
  ];
  const m = mask ?? q;
  rec.dispatch(
    memoKernel(rec, `attn_bwd_dq${wg}`, spec("dq_main")),
    [q, k, v, m, dout, stats, out, dq],
    params,
    [nH, Tq],
  );
  // ttt: dkv_main over the step-0 keys, dkv_diag over the later steps' (single-query) keys.
  rec.dispatch(
    memoKernel(rec, `attn_bwd_dkv${wg}`, spec("dkv_main")),
    [q, k, v, m, dout, stats, dk, dv],
    params,
    [nKV, ttt ? Tq : kvLen],
  );
  if (ttt && ttt.steps > 0) {
    rec.dispatch(
      memoKernel(rec, `attn_bwd_dkv_diag${wg}`, spec("dkv_diag")),
      [q, k, v, m, dout, stats, dk, dv],
      params,
      [nKV, ttt.stepStride],
    );
  }
}

/**
 * The EAGLE-3 training-time-test mask for unrolled step `step` (0-based) of a sequence of `seqLen`
 * positions. Keys are laid out step-major: [step-0 keys (seqLen) | step-1 keys | … | step-`step`
 * keys]; query t (at step `step`) sees the step-0 keys at positions ≤ t (causal) and, for each
 * j = 1..step, only step j's key at the same position t (EAGLE `traineagle3/cnets.py`).
 * @returns (seqLen, seqLen·(step+1)) 0/1 bytes, for `packMask`
 */
export function tttMask(seqLen: number, step: number): Uint8Array {
  if (!Number.isInteger(seqLen) || seqLen < 1 || !Number.isInteger(step) || step < 0) {
    throw new ShapeError(`tttMask: seqLen ${seqLen} must be ≥ 1 and step ${step} ≥ 0`);
  }
  const tk = seqLen * (step + 1);
  const m = new Uint8Array(seqLen * tk); // (S, S·(step+1))
  for (let t = 0; t < seqLen; t++) {
    for (let j = 0; j <= t; j++) m[t * tk + j] = 1;
    for (let s = 1; s <= step; s++) m[t * tk + s * seqLen + t] = 1;
  }
  return m;
}
