/**
 * Scaled-dot-product attention over the KV cache (`kernels/attention.wgsl`), with grouped-query
 * heads and either the causal mask or a per-query bitset mask (tree drafts). One dispatch: one
 * workgroup per (query, head) runs a tiled online softmax over the valid cache rows, so decode and
 * tree verification never materialise scores in global memory.
 *
 * Software adapters (llvmpipe) get `kernels/attention_sw.wgsl` instead for the causal, bitset,
 * prefix + tree and segmented masks: one invocation per (query, kv head) with the group's heads in
 * registers and no barriers (docs/engine.md §7 has the measurements; GTO's segmented verification
 * in docs/gto.md); the TTT mode keeps the workgroup kernel everywhere.
 *
 * Limits: f32 tensors; head dim a multiple of 4 and ≤ 128 (the kernel keeps q and the output as
 * hd/4 vec4 lanes of one workgroup).
 * @module
 */
import { ATTENTION_SW_WGSL, ATTENTION_WGSL } from "@gto/kernels";
import { type Kernel, type KernelCache, specialize } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { type AttentionSplit, attentionSplits, recordSplitAttention } from "./attention_split.ts";

/** Largest head dim the attention kernel supports. */
export const ATTENTION_MAX_HEAD_DIM = 128;

/** Threshold (workgroups = Tq · nH) below which 256-thread workgroups are used (few, long ones). */
const WIDE_BELOW = 64;

// KernelCache.get keys on the full WGSL text; look variants up by a short key instead so a dispatch
// costs no string building after the first call per (workgroup size, head dim).
const variants = new WeakMap<KernelCache, Map<number, Kernel>>();

function attentionKernel(rec: Recorder, wg: number, hd: number): Kernel {
  let m = variants.get(rec.kernels);
  if (!m) variants.set(rec.kernels, m = new Map());
  const key = wg * 1024 + hd;
  let k = m.get(key);
  if (!k) {
    k = rec.kernels.get({
      name: `attention_wg${wg}_d${hd}`,
      code: specialize(ATTENTION_WGSL, { WG: wg, D4: hd / 4 }),
      entryPoint: "attention",
      storage: ["rw", "rw", "rw", "rw", "rw", "rw"],
      params: "uuuufuuiuuuuu",
    });
    m.set(key, k);
  }
  return k;
}

/** attention_sw.wgsl with its per-head registers unrolled for head dim 4·D4 and G heads per kv head. */
export function attentionSwCode(D4: number, G: number): string {
  const ds = Array.from({ length: D4 }, (_, d) => d), hs = Array.from({ length: G }, (_, h) => h);
  const qInit = hs.map((h) =>
    `  let qrow${h} = (t * p.nh + g * G + ${h}u) * D4;\n` +
    ds.map((d) => `  let q${h}_${d} = q[qrow${h} + ${d}u] * p.scale;\n  var a${h}_${d} = vec4f(0.0);\n`).join(
      "",
    ) +
    `  var m${h} = NEG;\n  var l${h} = 0.0;`
  ).join("\n");
  const kvLoad = ds.map((d) => `    let k${d} = kc[kb + ${d}u];\n    let v${d} = vc[kb + ${d}u];`).join("\n");
  const update = hs.map((h) =>
    `    {\n      var dot4 = vec4f(0.0);\n` +
    ds.map((d) => `      dot4 = fma(q${h}_${d}, k${d}, dot4);\n`).join("") +
    `      let s = (dot4.x + dot4.y) + (dot4.z + dot4.w);\n      let mn = max(m${h}, s);\n` +
    `      let alpha = exp(m${h} - mn);\n      let pj = exp(s - mn);\n      m${h} = mn;\n` +
    `      l${h} = l${h} * alpha + pj;\n` +
    ds.map((d) => `      a${h}_${d} = fma(vec4f(pj), v${d}, a${h}_${d} * alpha);\n`).join("") +
    `    }`
  ).join("\n");
  const store = hs.map((h) =>
    `  {\n    let orow = (t * p.nh + g * G + ${h}u) * D4;\n` +
    `    let inv = select(0.0, 1.0 / l${h}, l${h} > 0.0);\n` +
    ds.map((d) => `    out[orow + ${d}u] = a${h}_${d} * inv;\n`).join("") + `  }`
  ).join("\n");
  return specialize(ATTENTION_SW_WGSL, {
    D4,
    G,
    Q_INIT: qInit,
    KV_LOAD: kvLoad,
    HEAD_UPDATE: update,
    OUT_STORE: store,
  });
}

function attentionSwKernel(rec: Recorder, hd: number, groups: number): Kernel {
  let m = variants.get(rec.kernels);
  if (!m) variants.set(rec.kernels, m = new Map());
  const key = -(groups * 1024 + hd); // negative keys: the software variant
  let k = m.get(key);
  if (!k) {
    k = rec.kernels.get({
      name: `attention_sw_d${hd}_g${groups}`,
      code: attentionSwCode(hd / 4, groups),
      entryPoint: "attention_sw",
      storage: ["rw", "rw", "rw", "rw", "rw", "rw"],
      params: "uuuufuuiuuuuu",
    });
    m.set(key, k);
  }
  return k;
}

/** A u32 scalar that lives on the GPU: `meta[index]` is added to a static base by the kernel. */
export interface DynamicValue {
  /** u32 state tensor (e.g. the speculative decoder's committed length). */
  meta: Tensor;
  /** Element index in `meta`. */
  index: number;
}

/**
 * Prefix + tree masking: the last `treeLen` valid keys are tree nodes; every query sees all keys
 * before them, and tree key i iff bit i of its row of `mask` (u32 (Tq, ceil(treeLen/32))) is set.
 */
export interface TreeMask {
  /** Bitset rows, one per query, over the tree keys (see {@link packMask}). */
  mask: Tensor;
  /** Number of tree keys at the end of the valid cache rows. */
  treeLen: number;
}

/**
 * Segmented masking (many trees per dispatch, GTO training): the Tq queries form G = Tq /
 * queriesPerGroup groups (trees) of consecutive queries; group g sees cache rows [0, prefix_g) with
 * prefix_g = `prefix.meta[prefix.index + g]` read on the GPU (clamped to `treeBase`), plus the tree
 * keys jt < treeLen whose bit is set in the query's row of `mask`; tree key jt of group g is cache
 * row treeBase + floor(jt / blockSize)·blockStride + g·blockSize + jt % blockSize. Each query scans
 * only prefix_g + treeLen keys.
 * - draft expansion e of P trees of width k: queriesPerGroup = blockSize = k, treeLen = k·(e+1),
 *   blockStride = P·k (expansion-major rows after the prefix), mask = the trees' draft masks;
 * - target verification of c trees of N nodes: queriesPerGroup = blockSize = treeLen = N, mask = the
 *   trees' ancestor bitsets.
 */
export interface SegmentedMask {
  /** u32 prefix length of group g at `meta[index + g]` (the caller keeps each ≤ treeBase). */
  prefix: DynamicValue;
  /** Consecutive queries per group. */
  queriesPerGroup: number;
  /** Bitset rows (Tq, ceil(treeLen/32)) over the group's own tree keys. */
  mask: Tensor;
  /** Tree keys per group. */
  treeLen: number;
  /** Cache row of group 0's tree key 0. */
  treeBase: number;
  /** Tree keys per block and group (default treeLen: one block). */
  blockSize?: number;
  /** Cache rows between consecutive blocks (default groups × blockSize). */
  blockStride?: number;
}

/**
 * Training-time-test masking (EAGLE-3 TTT, `train/ttt.ts`): the Tq = B·seqLen queries of unrolled
 * step k are B sequences of `seqLen` tokens whose step-0 keys are cache rows [0, Tq); query
 * t = b·seqLen + u sees the causal keys of its own sequence, rows b·seqLen..t, and its own
 * position's key of each earlier step, row j·stepStride + t for j = 1..steps (the keys of step j
 * live at rows [j·stepStride, j·stepStride + Tq)). The kernels scan exactly those u + 1 + steps keys
 * (no mask buffer), where the equivalent bitset ({@link packMask} of the TTT mask) makes every query
 * scan all steps·stepStride + Tq rows.
 */
export interface TttMask {
  /** Tokens per sequence S (divides Tq). */
  seqLen: number;
  /** Earlier unrolled steps k whose diagonal key each query sees (0 = causal within the sequence). */
  steps: number;
  /** Cache rows between consecutive steps' keys (≥ Tq). */
  stepStride: number;
}

/**
 * Validate a {@link TttMask} for Tq queries over kvLen cache rows (`op` names the caller); the rows
 * it reaches, [0, steps·stepStride + Tq), must lie within kvLen. Throws ShapeError.
 */
export function checkTttMask(op: string, ttt: TttMask, Tq: number, kvLen: number): void {
  const { seqLen: S, steps, stepStride } = ttt;
  if (!Number.isInteger(S) || S < 1 || Tq % S !== 0) {
    throw new ShapeError(`${op}: ttt seqLen ${S} must divide Tq ${Tq}`);
  }
  if (!Number.isInteger(steps) || steps < 0 || !Number.isInteger(stepStride) || stepStride < Tq) {
    throw new ShapeError(`${op}: ttt steps ${steps} must be ≥ 0 and stepStride ${stepStride} ≥ Tq ${Tq}`);
  }
  if (steps * stepStride + Tq > kvLen) {
    throw new ShapeError(
      `${op}: ttt keys reach row ${steps * stepStride + Tq - 1}, beyond kvLen ${kvLen}`,
    );
  }
}

/**
 * Scaled-dot-product attention with GQA over a KV cache.
 * `q` (Tq, nH·hd); `kCache`, `vCache` (S, nKV·hd) of which rows [0, kvLen) are valid (later rows
 * are never read); `out` (Tq, nH·hd), which may be `q` itself. Head h uses kv head
 * floor(h / (nH / nKV)). `scale` defaults to 1/sqrt(hd).
 * Masking: by default causal, query t at absolute position kvLen − Tq + t seeing keys ≤ that
 * position (requires Tq ≤ kvLen). With `opts.mask` (u32 tensor (Tq, ceil(kvLen/32)), see
 * {@link packMask}; bit j of row t set ⇔ query t may see key j) any per-query mask (tree masks).
 * With `opts.treeMask`, prefix + tree masking ({@link TreeMask}). With `opts.dynamicLen`, the valid
 * length is kvLen + meta[index] read on the GPU (causal or treeMask only). With `opts.segmented`,
 * per-group prefixes plus per-group tree keys ({@link SegmentedMask}; `kvLen` is then unused but must
 * be a valid row count). With `opts.ttt`, the training-time-test visibility ({@link TttMask}).
 * A query with no visible key outputs zeros. hd must be a multiple of 4 and ≤ 128; tensors f32.
 */
export function attention(
  rec: Recorder,
  out: Tensor,
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  opts: {
    numHeads: number;
    numKvHeads: number;
    headDim: number;
    kvLen: number;
    scale?: number;
    mask?: Tensor;
    treeMask?: TreeMask;
    dynamicLen?: DynamicValue;
    segmented?: SegmentedMask;
    ttt?: TttMask;
    /** Force the workgroup size (tests; default: 64 on software adapters, else 256 or 128 by size). */
    workgroupSize?: 32 | 64 | 128 | 256;
    /**
     * Which kernel: `workgroup` (attention.wgsl, one workgroup per (query, head)) or `lanes`
     * (attention_sw.wgsl, one invocation per (query, kv head); causal, `mask`, `treeMask`, `segmented`).
     * Default: `lanes` on software adapters where it applies (and no `workgroupSize` is forced), else
     * `workgroup`.
     */
    kernel?: "workgroup" | "lanes";
    /**
     * Scratch for split-K attention (few queries, long cache; not with `segmented`): the keys of each
     * (query, head) are divided among `splits` workgroups (default {@link attentionSplits}) and
     * merged by a second dispatch.
     */
    split?: AttentionSplit;
  },
): void {
  const { numHeads: nH, numKvHeads: nKV, headDim: hd, kvLen, mask, treeMask, dynamicLen, segmented, ttt } =
    opts;
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  if (!Number.isInteger(nH) || !Number.isInteger(nKV) || nKV <= 0 || nH <= 0 || nH % nKV !== 0) {
    throw new ShapeError(`attention: numHeads ${nH} must be a positive multiple of numKvHeads ${nKV}`);
  }
  if (!Number.isInteger(hd) || hd <= 0 || hd % 4 !== 0 || hd > ATTENTION_MAX_HEAD_DIM) {
    throw new ShapeError(
      `attention: headDim ${hd} must be a multiple of 4 in [4, ${ATTENTION_MAX_HEAD_DIM}]`,
    );
  }
  if (q.shape.length !== 2) throw new ShapeError(`${q.name}: expected 2-D (Tq, nH·hd), got [${q.shape}]`);
  const Tq = q.shape[0];
  q.expectShape([Tq, nH * hd], "f32"); // (Tq, nH·hd)
  out.expectShape([Tq, nH * hd], "f32"); // (Tq, nH·hd)
  kCache.expectShape([-1, nKV * hd], "f32"); // (S, nKV·hd)
  vCache.expectShape([kCache.shape[0], nKV * hd], "f32"); // (S, nKV·hd)
  const S = kCache.shape[0];
  if (dynamicLen) {
    dynamicLen.meta.expectShape([-1], "u32");
    if (
      !Number.isInteger(dynamicLen.index) || dynamicLen.index < 0 || dynamicLen.index >= dynamicLen.meta.size
    ) {
      throw new ShapeError(`attention: dynamicLen index ${dynamicLen.index} outside ${dynamicLen.meta.name}`);
    }
    if (mask) throw new ShapeError("attention: a full bitset mask needs a static kvLen; use treeMask");
    // The GPU adds meta[index]; the caller guarantees the sum stays ≤ S (not checkable here).
    if (!Number.isInteger(kvLen) || kvLen < 0 || kvLen > S) {
      throw new ShapeError(`attention: kvLen base ${kvLen} must be in [0, ${S}]`);
    }
  } else if (!Number.isInteger(kvLen) || kvLen < 1 || kvLen > S) {
    throw new ShapeError(`attention: kvLen ${kvLen} must be in [1, ${S}] (rows of ${kCache.name})`);
  }
  if ([mask, treeMask, segmented, ttt].filter((m) => m).length > 1) {
    throw new ShapeError("attention: give at most one of mask, treeMask, segmented, ttt");
  }
  let words = Math.ceil(kvLen / 32);
  let mode = 0;
  let treeLen = 0;
  let seg = [0, 0, 0, 0]; // queriesPerGroup, treeBase, blockSize, blockStride
  let meta: Tensor | undefined = dynamicLen?.meta;
  let metaIndex = dynamicLen ? dynamicLen.index : -1;
  if (segmented) {
    if (dynamicLen) {
      throw new ShapeError("attention: segmented carries its own prefix lengths; drop dynamicLen");
    }
    const { prefix, queriesPerGroup: qpg, treeBase } = segmented;
    treeLen = segmented.treeLen;
    if (!Number.isInteger(qpg) || qpg < 1 || Tq % qpg !== 0) {
      throw new ShapeError(`attention: segmented queriesPerGroup ${qpg} must divide Tq ${Tq}`);
    }
    const G = Tq / qpg;
    const blk = segmented.blockSize ?? treeLen;
    const stride = segmented.blockStride ?? G * blk;
    if (!Number.isInteger(treeLen) || treeLen < 1) {
      throw new ShapeError(`attention: treeLen ${treeLen} must be ≥ 1`);
    }
    if (!Number.isInteger(blk) || blk < 1 || !Number.isInteger(stride) || stride < G * blk) {
      throw new ShapeError(
        `attention: segmented blockSize ${blk} ≥ 1 and blockStride ${stride} ≥ groups·blockSize`,
      );
    }
    const blocks = Math.ceil(treeLen / blk);
    // Largest cache row a tree key maps to: the last group's last key of the last or a full block.
    const lastBlock = treeBase + (blocks - 1) * stride + (G - 1) * blk + treeLen - 1 - (blocks - 1) * blk;
    const fullBlock = blocks > 1 ? treeBase + (blocks - 2) * stride + G * blk - 1 : 0;
    const last = Math.max(lastBlock, fullBlock);
    if (!Number.isInteger(treeBase) || treeBase < 0 || last >= S) {
      throw new ShapeError(`attention: segmented tree keys reach row ${last}, ${kCache.name} has ${S} rows`);
    }
    prefix.meta.expectShape([-1], "u32");
    if (!Number.isInteger(prefix.index) || prefix.index < 0 || prefix.index + G > prefix.meta.size) {
      throw new ShapeError(
        `attention: segmented prefixes [${prefix.index}, ${prefix.index + G}) outside ${prefix.meta.name}`,
      );
    }
    words = Math.ceil(treeLen / 32);
    segmented.mask.expectShape([Tq, words], "u32"); // (Tq, ceil(treeLen/32))
    mode = 3;
    seg = [qpg, treeBase, blk, stride];
    meta = prefix.meta;
    metaIndex = prefix.index;
  } else if (ttt) {
    if (dynamicLen) throw new ShapeError("attention: the ttt mask needs a static kvLen; drop dynamicLen");
    checkTttMask("attention", ttt, Tq, kvLen);
    mode = 4;
    treeLen = ttt.steps;
    words = 0;
    seg = [ttt.seqLen, 0, 1, ttt.stepStride]; // q_per_group, tree_base, blk, blk_stride
  } else if (mask) {
    mask.expectShape([Tq, words], "u32"); // (Tq, ceil(kvLen/32))
    mode = 1;
  } else if (treeMask) {
    treeLen = treeMask.treeLen;
    if (!Number.isInteger(treeLen) || treeLen < 1 || (!dynamicLen && treeLen > kvLen)) {
      throw new ShapeError(`attention: treeLen ${treeLen} must be in [1, kvLen]`);
    }
    words = Math.ceil(treeLen / 32);
    treeMask.mask.expectShape([Tq, words], "u32"); // (Tq, ceil(treeLen/32))
    mode = 2;
  } else if (!dynamicLen && Tq > kvLen) {
    throw new ShapeError(`attention: causal mask needs Tq ${Tq} ≤ kvLen ${kvLen}`);
  }
  if (!Number.isFinite(scale)) throw new ShapeError(`attention: scale ${scale} is not finite`);
  // Software adapters (llvmpipe): 64-thread workgroups are 20–35 % faster for decode-sized problems
  // (fewer fibers switched at each barrier; measured 423 → 261 µs at tiny's shape, kv 32).
  const wg = opts.workgroupSize ?? (rec.gpu.isFallback ? 64 : Tq * nH <= WIDE_BELOW ? 256 : 128);
  if (wg < hd / 4) throw new ShapeError(`attention: workgroup size ${wg} below headDim/4 = ${hd / 4}`);
  if (opts.split && mode !== 3) {
    const splits = opts.split.splits ?? attentionSplits(rec, Tq, nH, dynamicLen ? S : kvLen);
    if (splits > 1) {
      recordSplitAttention(rec, {
        out,
        q,
        kCache,
        vCache,
        mask: mask ?? treeMask?.mask,
        meta,
        params: [Tq, nH, nKV, kvLen, scale, mode, words, metaIndex, treeLen],
        headDim: hd,
        splits,
        scratch: opts.split.scratch,
        workgroupSize: wg,
      });
      return;
    }
  }
  const lanesOk = mode <= 3;
  if (opts.kernel === "lanes" && !lanesOk) {
    throw new ShapeError(
      "attention: the lanes kernel takes the causal, mask, treeMask and segmented modes only",
    );
  }
  const kind = opts.kernel ??
    (lanesOk && rec.gpu.isFallback && opts.workgroupSize === undefined ? "lanes" : "workgroup");
  if (kind === "lanes") {
    rec.dispatch(
      attentionSwKernel(rec, hd, nH / nKV),
      [q, kCache, vCache, mask ?? treeMask?.mask ?? segmented?.mask ?? q, out, meta ?? q],
      [Tq, nH, nKV, kvLen, scale, mode, words, metaIndex, treeLen, ...seg],
      [Math.ceil((Tq * nKV) / 8)],
    );
    return;
  }
  const k = attentionKernel(rec, wg, hd);
  rec.dispatch(
    k,
    [q, kCache, vCache, mask ?? treeMask?.mask ?? segmented?.mask ?? q, out, meta ?? q],
    [Tq, nH, nKV, kvLen, scale, mode, words, metaIndex, treeLen, ...seg],
    [nH, Tq],
  );
}

/**
 * Pack a boolean (Tq, Tk) mask (`Uint8Array`, non-zero = may attend) into the bitset layout the
 * attention kernel expects: (Tq, ceil(Tk/32)) u32 words, bit (j & 31) of word j >> 5 of row t ⇔ mask[t, j].
 */
export function packMask(mask: Uint8Array, tq: number, tk: number): Uint32Array {
  if (mask.length !== tq * tk) {
    throw new ShapeError(`packMask: mask has ${mask.length} elements, expected (${tq}, ${tk}) = ${tq * tk}`);
  }
  const words = Math.ceil(tk / 32);
  const bits = new Uint32Array(tq * words); // (Tq, ceil(Tk/32))
  for (let t = 0; t < tq; t++) {
    for (let j = 0; j < tk; j++) {
      if (mask[t * tk + j]) bits[t * words + (j >> 5)] |= 1 << (j & 31);
    }
  }
  return bits;
}
