/**
 * CPU reference implementations of every op the WGSL kernels compute.
 *
 * These functions are the independent oracle: each kernel's all-close test compares the GPU result
 * against the function here, and the CPU LLaMA forward (`llama_ref.ts`) built from them is checked
 * against PyTorch. They are written for clarity, not speed: plain loops, row-major `Float32Array`
 * inputs and outputs, and every reduction accumulated in f64 (JS numbers) before the single rounding
 * to f32 on store. Shapes are passed explicitly where they cannot be derived from array lengths, and
 * mismatches throw `ShapeError` rather than silently reading past a row.
 * @module
 */

import { ShapeError } from "../errors.ts";

/** A (rows, cols) boolean mask: `true` / non-zero means "may attend". */
export type MaskLike = ArrayLike<boolean> | Uint8Array;

/** Position indices, one per token. */
export type Positions = Int32Array | ArrayLike<number>;

function expectLength(name: string, a: ArrayLike<unknown>, n: number, shape: string): void {
  if (a.length !== n) {
    throw new ShapeError(`${name}: expected ${shape} = ${n} elements, got ${a.length}`);
  }
}

function rowsOf(name: string, a: ArrayLike<unknown>, cols: number): number {
  if (cols <= 0 || a.length % cols !== 0) {
    throw new ShapeError(`${name}: length ${a.length} is not a multiple of the row length ${cols}`);
  }
  return a.length / cols;
}

/** Options for {@link matmulRef}. */
export interface MatmulOptions {
  /** When true, `b` is stored as (N, K) and the product is a·bᵀ. Default false: `b` is (K, N). */
  transB?: boolean;
}

/**
 * Matrix product c = a·b (or a·bᵀ with `transB`), f64 accumulation.
 * @param a (M, K)
 * @param b (K, N), or (N, K) when `opts.transB`
 * @returns (M, N)
 */
export function matmulRef(
  a: Float32Array,
  b: Float32Array,
  M: number,
  K: number,
  N: number,
  opts: MatmulOptions = {},
): Float32Array {
  expectLength("matmulRef a", a, M * K, `(${M}, ${K})`);
  expectLength("matmulRef b", b, K * N, opts.transB ? `(${N}, ${K})` : `(${K}, ${N})`);
  const c = new Float32Array(M * N); // (M, N)
  if (opts.transB) {
    for (let m = 0; m < M; m++) {
      const ao = m * K;
      for (let n = 0; n < N; n++) {
        const bo = n * K;
        let s = 0;
        for (let k = 0; k < K; k++) s += a[ao + k] * b[bo + k];
        c[m * N + n] = s;
      }
    }
  } else {
    const acc = new Float64Array(N); // (N) one output row
    for (let m = 0; m < M; m++) {
      acc.fill(0);
      for (let k = 0; k < K; k++) {
        const av = a[m * K + k];
        const bo = k * N;
        for (let n = 0; n < N; n++) acc[n] += av * b[bo + n];
      }
      c.set(acc, m * N);
    }
  }
  return c;
}

/**
 * Linear layer without bias, HF weight layout: y = x·Wᵀ with W stored (out, in).
 * @param x (M, K)
 * @param w (N, K)
 * @returns (M, N)
 */
export function linearRef(x: Float32Array, w: Float32Array, M: number, K: number, N: number): Float32Array {
  return matmulRef(x, w, M, K, N, { transB: true });
}

/**
 * Matrix-vector product y = W·x with W stored (N, K) (one output per weight row).
 * @param w (N, K)
 * @param x (K)
 * @returns (N)
 */
export function matvecRef(w: Float32Array, x: Float32Array, N: number, K: number): Float32Array {
  return matmulRef(x, w, 1, K, N, { transB: true });
}

/**
 * RMSNorm as in HF `LlamaRMSNorm`: y = x · rsqrt(mean(x²) + eps) · w, per row.
 * @param x (M, H)
 * @param w (H)
 * @returns (M, H)
 */
export function rmsNormRef(x: Float32Array, w: Float32Array, eps: number): Float32Array {
  const H = w.length;
  const M = rowsOf("rmsNormRef x", x, H);
  const y = new Float32Array(M * H); // (M, H)
  for (let m = 0; m < M; m++) {
    const o = m * H;
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[o + i] * x[o + i];
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) y[o + i] = x[o + i] * r * w[i];
  }
  return y;
}

/**
 * Rotary position embedding, HF "rotate-half" layout: dimension i in [0, hd/2) is paired with
 * i + hd/2, rotated by angle pos · theta^(-2i/hd).
 * @param x (T, nHeads, headDim) with T = positions.length
 * @param positions (T) absolute position of each token
 * @param theta RoPE base (`rope_theta`)
 * @param headDim head dimension (even)
 * @returns (T, nHeads, headDim)
 */
export function ropeRef(x: Float32Array, positions: Positions, theta: number, headDim: number): Float32Array {
  if (headDim % 2 !== 0) throw new ShapeError(`ropeRef: head dim ${headDim} is odd`);
  const T = positions.length;
  const rowLen = T === 0 ? 0 : x.length / T;
  if (T > 0 && (!Number.isInteger(rowLen) || rowLen % headDim !== 0)) {
    throw new ShapeError(`ropeRef x: length ${x.length} is not (${T}, nHeads, ${headDim})`);
  }
  const nHeads = rowLen / headDim;
  const half = headDim / 2;
  const invFreq = new Float64Array(half); // (hd/2)
  for (let i = 0; i < half; i++) invFreq[i] = Math.pow(theta, (-2 * i) / headDim);
  const y = new Float32Array(x.length); // (T, nHeads, hd)
  for (let t = 0; t < T; t++) {
    const p = positions[t];
    for (let i = 0; i < half; i++) {
      const ang = p * invFreq[i];
      const c = Math.cos(ang), s = Math.sin(ang);
      for (let h = 0; h < nHeads; h++) {
        const o = (t * nHeads + h) * headDim;
        const x1 = x[o + i], x2 = x[o + i + half];
        y[o + i] = x1 * c - x2 * s;
        y[o + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return y;
}

/** Shapes for {@link attentionRef}. */
export interface AttentionDims {
  /** Number of query tokens. */
  tq: number;
  /** Number of key/value tokens (cache length including the new tokens). */
  tk: number;
  /** Number of query heads. */
  nHeads: number;
  /** Number of key/value heads; must divide `nHeads` (GQA). */
  nKvHeads: number;
  /** Head dimension. */
  headDim: number;
}

/**
 * Scaled dot-product attention with a boolean mask and grouped-query heads: query head h reads
 * kv head floor(h / (nHeads / nKvHeads)). Softmax in f64 with max subtraction; a row whose mask
 * allows no key yields zeros.
 * @param q (Tq, nH, hd)
 * @param kCache (Tk, nKV, hd)
 * @param vCache (Tk, nKV, hd)
 * @param mask (Tq, Tk), true / non-zero = may attend; `null` = everything allowed
 * @param scale logit scale, usually 1/sqrt(hd)
 * @returns (Tq, nH, hd)
 */
export function attentionRef(
  q: Float32Array,
  kCache: Float32Array,
  vCache: Float32Array,
  mask: MaskLike | null,
  scale: number,
  dims: AttentionDims,
): Float32Array {
  const { tq, tk, nHeads, nKvHeads, headDim: hd } = dims;
  if (nKvHeads <= 0 || nHeads % nKvHeads !== 0) {
    throw new ShapeError(`attentionRef: ${nHeads} heads not divisible by ${nKvHeads} kv heads`);
  }
  expectLength("attentionRef q", q, tq * nHeads * hd, `(${tq}, ${nHeads}, ${hd})`);
  expectLength("attentionRef kCache", kCache, tk * nKvHeads * hd, `(${tk}, ${nKvHeads}, ${hd})`);
  expectLength("attentionRef vCache", vCache, tk * nKvHeads * hd, `(${tk}, ${nKvHeads}, ${hd})`);
  if (mask !== null) expectLength("attentionRef mask", mask, tq * tk, `(${tq}, ${tk})`);
  const group = nHeads / nKvHeads;
  const out = new Float32Array(tq * nHeads * hd); // (Tq, nH, hd)
  const scores = new Float64Array(tk); // (Tk)
  const acc = new Float64Array(hd); // (hd)
  for (let i = 0; i < tq; i++) {
    for (let h = 0; h < nHeads; h++) {
      const kvh = Math.floor(h / group);
      const qo = (i * nHeads + h) * hd;
      let mx = -Infinity;
      for (let j = 0; j < tk; j++) {
        if (mask !== null && !mask[i * tk + j]) {
          scores[j] = -Infinity;
          continue;
        }
        const ko = (j * nKvHeads + kvh) * hd;
        let s = 0;
        for (let d = 0; d < hd; d++) s += q[qo + d] * kCache[ko + d];
        s *= scale;
        scores[j] = s;
        if (s > mx) mx = s;
      }
      if (mx === -Infinity) continue; // fully masked row: zeros
      let den = 0;
      acc.fill(0);
      for (let j = 0; j < tk; j++) {
        if (scores[j] === -Infinity) continue;
        const p = Math.exp(scores[j] - mx);
        den += p;
        const vo = (j * nKvHeads + kvh) * hd;
        for (let d = 0; d < hd; d++) acc[d] += p * vCache[vo + d];
      }
      for (let d = 0; d < hd; d++) out[qo + d] = acc[d] / den;
    }
  }
  return out;
}

/**
 * Causal mask for `tq` new tokens appended after `pastLen` cached ones: query i may attend key j
 * iff j ≤ pastLen + i.
 * @returns (Tq, Tk) as 0/1 bytes
 */
export function causalMask(tq: number, tk: number, pastLen: number): Uint8Array {
  const m = new Uint8Array(tq * tk); // (Tq, Tk)
  for (let i = 0; i < tq; i++) {
    const last = Math.min(tk - 1, pastLen + i);
    for (let j = 0; j <= last; j++) m[i * tk + j] = 1;
  }
  return m;
}

/**
 * SwiGLU gating: silu(gate) · up, elementwise, with silu(x) = x / (1 + e^(-x)).
 * @param gate (n)
 * @param up (n)
 * @returns (n)
 */
export function swigluRef(gate: Float32Array, up: Float32Array): Float32Array {
  expectLength("swigluRef up", up, gate.length, `gate length`);
  const y = new Float32Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i];
    y[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
  return y;
}

/**
 * Embedding lookup: row ids[t] of the table.
 * @param table (V, H)
 * @param ids (T) token ids in [0, V)
 * @param hidden H
 * @returns (T, H)
 */
export function embeddingRef(table: Float32Array, ids: ArrayLike<number>, hidden: number): Float32Array {
  const V = rowsOf("embeddingRef table", table, hidden);
  const y = new Float32Array(ids.length * hidden); // (T, H)
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new ShapeError(`embeddingRef: token id ${id} at ${t} outside vocabulary [0, ${V})`);
    }
    y.set(table.subarray(id * hidden, (id + 1) * hidden), t * hidden);
  }
  return y;
}

/**
 * The EAGLE-3 draft layer's normalised inputs (op `draftInput`): rows [0, T) are
 * rmsNorm(table[ids[t]], gIn), rows [T, 2T) rmsNorm(hidden[rows[t]], gHid) (rows[t] = t when null).
 * @param table (V, H)
 * @param ids (T) token ids in [0, V)
 * @param hidden (S, H)
 * @param rows (T) row indices into hidden in [0, S), or null for the first T rows
 * @param gIn (H) input_layernorm weight
 * @param gHid (H) hidden_norm weight
 * @returns (2T, H)
 */
export function draftInputRef(
  table: Float32Array,
  ids: ArrayLike<number>,
  hidden: Float32Array,
  rows: ArrayLike<number> | null,
  gIn: Float32Array,
  gHid: Float32Array,
  eps: number,
): Float32Array {
  const H = gIn.length, T = ids.length;
  const picked = embeddingRef(hidden, rows ?? Array.from({ length: T }, (_, t) => t), H); // (T, H)
  const y = new Float32Array(2 * T * H); // (2T, H)
  y.set(rmsNormRef(embeddingRef(table, ids, H), gIn, eps));
  y.set(rmsNormRef(picked, gHid, eps), T * H);
  return y;
}

function softmaxRows(x: Float32Array, cols: number, temperature: number, log: boolean): Float32Array {
  if (!(temperature > 0)) throw new ShapeError(`softmax: temperature must be > 0, got ${temperature}`);
  const rows = rowsOf("softmax x", x, cols);
  const y = new Float32Array(x.length); // (rows, cols)
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let mx = -Infinity;
    for (let c = 0; c < cols; c++) mx = Math.max(mx, x[o + c] / temperature);
    let den = 0;
    for (let c = 0; c < cols; c++) den += Math.exp(x[o + c] / temperature - mx);
    const lse = mx + Math.log(den);
    for (let c = 0; c < cols; c++) {
      const z = x[o + c] / temperature - lse;
      y[o + c] = log ? z : Math.exp(z);
    }
  }
  return y;
}

/**
 * Row-wise softmax of x / temperature (max-subtracted, f64).
 * @param x (rows, cols)
 * @param cols row length
 * @param temperature > 0, default 1
 * @returns (rows, cols)
 */
export function softmaxRef(x: Float32Array, cols: number, temperature = 1): Float32Array {
  return softmaxRows(x, cols, temperature, false);
}

/**
 * Row-wise log-softmax of x / temperature (x/T − logsumexp(x/T), f64).
 * @param x (rows, cols)
 * @param cols row length
 * @param temperature > 0, default 1
 * @returns (rows, cols)
 */
export function logSoftmaxRef(x: Float32Array, cols: number, temperature = 1): Float32Array {
  return softmaxRows(x, cols, temperature, true);
}

/**
 * Index of the maximum of each row; ties go to the lowest index.
 * @param x (rows, cols)
 * @returns (rows)
 */
export function argmaxRef(x: Float32Array, cols: number): Int32Array {
  const rows = rowsOf("argmaxRef x", x, cols);
  const out = new Int32Array(rows); // (rows)
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let best = 0;
    for (let c = 1; c < cols; c++) if (x[o + c] > x[o + best]) best = c;
    out[r] = best;
  }
  return out;
}

/** Result of {@link topkRef}. */
export interface TopK {
  /** (k) indices, by descending value, ties by lower index. */
  ids: Int32Array;
  /** (k) the values at `ids`. */
  values: Float32Array;
}

/**
 * The k largest entries of one row, sorted descending; equal values are ordered by lower index.
 * @param row (n)
 * @param k number to keep (clamped to n)
 * @returns ids (k) and values (k)
 */
export function topkRef(row: Float32Array, k: number): TopK {
  const n = Math.min(k, row.length);
  const idx = Array.from({ length: row.length }, (_, i) => i);
  idx.sort((a, b) => (row[b] - row[a]) || (a - b));
  const ids = new Int32Array(idx.slice(0, n));
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = row[ids[i]];
  return { ids, values };
}

/**
 * Elementwise sum a + b (residual connections).
 * @param a (n)
 * @param b (n)
 * @returns (n)
 */
export function addRef(a: Float32Array, b: Float32Array): Float32Array {
  expectLength("addRef b", b, a.length, "a length");
  const y = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i] + b[i];
  return y;
}
