/**
 * CPU f64 references for training: a forward in f64 (no rounding to f32 anywhere) and the analytic
 * backward of every op the EAGLE-3 draft trains through, plus torch's AdamW and gradient clipping.
 *
 * Why a second forward: `../reference/ops.ts` rounds its outputs to f32, which makes central finite
 * differences useless below h ≈ 1e-3. The forwards here take any `ArrayLike<number>` and return
 * `Float64Array`; a test checks that each agrees with its `ops.ts` counterpart on f32 data, so the
 * chain is: ops.ts forward ≈ f64 forward here → finite differences in f64 validate the backward
 * here → the GPU backward kernels are all-close-tested against the backward here.
 *
 * Layouts follow the GPU ops: row-major, HF linear weights (N, K), fused SwiGLU input
 * [gate(I) | up(I)] per row, attention q (Tq, nH·hd), k/v (Tk, nKV·hd), masks (Tq, Tk) bytes.
 * @module
 */
import { ShapeError } from "../errors.ts";

type Arr = ArrayLike<number>;

function expectLen(name: string, a: Arr, n: number): void {
  if (a.length !== n) throw new ShapeError(`${name}: expected ${n} elements, got ${a.length}`);
}

// ---------------------------------------------------------------------------------------------
// linear: y (M, N) = x (M, K) · w (N, K)ᵀ

/** f64 linear: y = x·wᵀ. x (M, K), w (N, K) → (M, N). */
export function linearF64(x: Arr, w: Arr, M: number, K: number, N: number): Float64Array {
  expectLen("linearF64 x", x, M * K);
  expectLen("linearF64 w", w, N * K);
  const y = new Float64Array(M * N); // (M, N)
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = s;
    }
  }
  return y;
}

/** Backward of {@link linearF64}: dx (M, K) = dy·w, dw (N, K) = dyᵀ·x. */
export function linearBwdRef(
  dy: Arr,
  x: Arr,
  w: Arr,
  M: number,
  K: number,
  N: number,
): { dx: Float64Array; dw: Float64Array } {
  expectLen("linearBwdRef dy", dy, M * N);
  const dx = new Float64Array(M * K); // (M, K)
  const dw = new Float64Array(N * K); // (N, K)
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      const g = dy[m * N + n];
      for (let k = 0; k < K; k++) {
        dx[m * K + k] += g * w[n * K + k];
        dw[n * K + k] += g * x[m * K + k];
      }
    }
  }
  return { dx, dw };
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: y = x · r · w, r = (mean(x²) + eps)^(−1/2), per row

/** f64 RMSNorm. x (M, H), w (H) → (M, H). */
export function rmsNormF64(x: Arr, w: Arr, eps: number): Float64Array {
  const H = w.length, M = x.length / H;
  const y = new Float64Array(x.length); // (M, H)
  for (let m = 0; m < M; m++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[m * H + i] ** 2;
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) y[m * H + i] = x[m * H + i] * r * w[i];
  }
  return y;
}

/**
 * Backward of {@link rmsNormF64}: dx_i = r·w_i·dy_i − (r³/H)·x_i·Σ_j w_j·dy_j·x_j;
 * dw_i = Σ_rows dy_i·x_i·r.
 */
export function rmsNormBwdRef(dy: Arr, x: Arr, w: Arr, eps: number): { dx: Float64Array; dw: Float64Array } {
  const H = w.length, M = x.length / H;
  expectLen("rmsNormBwdRef dy", dy, x.length);
  const dx = new Float64Array(x.length); // (M, H)
  const dw = new Float64Array(H); // (H)
  for (let m = 0; m < M; m++) {
    const o = m * H;
    let ss = 0, dot = 0;
    for (let i = 0; i < H; i++) {
      ss += x[o + i] ** 2;
      dot += w[i] * dy[o + i] * x[o + i];
    }
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) {
      dx[o + i] = r * w[i] * dy[o + i] - (r * r * r / H) * x[o + i] * dot;
      dw[i] += dy[o + i] * x[o + i] * r;
    }
  }
  return { dx, dw };
}

// ---------------------------------------------------------------------------------------------
// RoPE (rotate-half): an orthogonal rotation per pair, so the backward is the inverse rotation

function ropeRotate(x: Arr, positions: Arr, theta: number, hd: number, sign: number): Float64Array {
  const T = positions.length, nH = x.length / (T * hd), half = hd / 2;
  const y = new Float64Array(x.length); // (T, nH, hd)
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const a = positions[t] * Math.pow(theta, (-2 * i) / hd);
      const c = Math.cos(a), s = sign * Math.sin(a);
      for (let h = 0; h < nH; h++) {
        const o = (t * nH + h) * hd;
        const x1 = x[o + i], x2 = x[o + i + half];
        y[o + i] = x1 * c - x2 * s;
        y[o + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return y;
}

/** f64 RoPE (HF rotate-half). x (T, nH·hd), positions (T) → (T, nH·hd). */
export function ropeF64(x: Arr, positions: Arr, theta: number, headDim: number): Float64Array {
  return ropeRotate(x, positions, theta, headDim, 1);
}

/** Backward of {@link ropeF64}: dx = rotation by −angle of dy. */
export function ropeBwdRef(dy: Arr, positions: Arr, theta: number, headDim: number): Float64Array {
  return ropeRotate(dy, positions, theta, headDim, -1);
}

// ---------------------------------------------------------------------------------------------
// attention with GQA and a boolean mask

/** Shapes of the attention references. */
export interface AttnDims {
  /** Queries. */
  tq: number;
  /** Keys / values. */
  tk: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (divides nHeads). */
  nKvHeads: number;
  /** Head dimension. */
  headDim: number;
}

/**
 * f64 attention: q (Tq, nH·hd), k, v (Tk, nKV·hd), mask (Tq, Tk) non-zero = visible (null: all),
 * → out (Tq, nH·hd) and lse (Tq, nH) (−Infinity and zero output for a query that sees no key).
 */
export function attentionF64(
  q: Arr,
  k: Arr,
  v: Arr,
  mask: ArrayLike<number | boolean> | null,
  scale: number,
  dims: AttnDims,
): { out: Float64Array; lse: Float64Array } {
  const { tq, tk, nHeads: nH, nKvHeads: nKV, headDim: hd } = dims;
  expectLen("attentionF64 q", q, tq * nH * hd);
  expectLen("attentionF64 k", k, tk * nKV * hd);
  expectLen("attentionF64 v", v, tk * nKV * hd);
  const grp = nH / nKV;
  const out = new Float64Array(tq * nH * hd); // (Tq, nH·hd)
  const lse = new Float64Array(tq * nH).fill(-Infinity); // (Tq, nH)
  const s = new Float64Array(tk);
  for (let t = 0; t < tq; t++) {
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / grp), qo = (t * nH + h) * hd;
      let mx = -Infinity;
      for (let j = 0; j < tk; j++) {
        s[j] = -Infinity;
        if (mask && !mask[t * tk + j]) continue;
        let d = 0;
        for (let e = 0; e < hd; e++) d += q[qo + e] * k[(j * nKV + g) * hd + e];
        s[j] = d * scale;
        mx = Math.max(mx, s[j]);
      }
      if (mx === -Infinity) continue;
      let den = 0;
      for (let j = 0; j < tk; j++) if (s[j] > -Infinity) den += Math.exp(s[j] - mx);
      lse[t * nH + h] = mx + Math.log(den);
      for (let j = 0; j < tk; j++) {
        if (s[j] === -Infinity) continue;
        const p = Math.exp(s[j] - mx) / den;
        for (let e = 0; e < hd; e++) out[qo + e] += p * v[(j * nKV + g) * hd + e];
      }
    }
  }
  return { out, lse };
}

/**
 * Backward of {@link attentionF64}: with P = softmax, dP_j = dout·v_j, D = Σ_j P_j·dP_j,
 * dS_j = P_j·(dP_j − D): dq = scale·Σ_j dS_j·k_j; dk_j = scale·Σ dS_j·q; dv_j = Σ P_j·dout
 * (dk, dv summed over queries and over the query heads sharing a kv head).
 */
export function attentionBwdRef(
  dout: Arr,
  q: Arr,
  k: Arr,
  v: Arr,
  mask: ArrayLike<number | boolean> | null,
  scale: number,
  dims: AttnDims,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { tq, tk, nHeads: nH, nKvHeads: nKV, headDim: hd } = dims;
  expectLen("attentionBwdRef dout", dout, tq * nH * hd);
  const { lse } = attentionF64(q, k, v, mask, scale, dims);
  const grp = nH / nKV;
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  const P = new Float64Array(tk), dP = new Float64Array(tk);
  for (let t = 0; t < tq; t++) {
    for (let h = 0; h < nH; h++) {
      const L = lse[t * nH + h];
      if (L === -Infinity) continue;
      const g = Math.floor(h / grp), qo = (t * nH + h) * hd;
      let D = 0;
      for (let j = 0; j < tk; j++) {
        P[j] = 0;
        dP[j] = 0;
        if (mask && !mask[t * tk + j]) continue;
        const ko = (j * nKV + g) * hd;
        let sd = 0, pd = 0;
        for (let e = 0; e < hd; e++) {
          sd += q[qo + e] * k[ko + e];
          pd += dout[qo + e] * v[ko + e];
        }
        P[j] = Math.exp(sd * scale - L);
        dP[j] = pd;
        D += P[j] * pd;
      }
      for (let j = 0; j < tk; j++) {
        if (P[j] === 0) continue;
        const ko = (j * nKV + g) * hd;
        const dS = P[j] * (dP[j] - D);
        for (let e = 0; e < hd; e++) {
          dq[qo + e] += scale * dS * k[ko + e];
          dk[ko + e] += scale * dS * q[qo + e];
          dv[ko + e] += P[j] * dout[qo + e];
        }
      }
    }
  }
  return { dq, dk, dv };
}

// ---------------------------------------------------------------------------------------------
// SwiGLU over the fused [gate | up] rows

/** f64 SwiGLU: gateUp (M, 2I) rows [gate | up] → (M, I) silu(gate)·up. */
export function swigluF64(gateUp: Arr, I: number): Float64Array {
  const M = gateUp.length / (2 * I);
  const y = new Float64Array(M * I); // (M, I)
  for (let m = 0; m < M; m++) {
    for (let i = 0; i < I; i++) {
      const g = gateUp[m * 2 * I + i], u = gateUp[m * 2 * I + I + i];
      y[m * I + i] = (g / (1 + Math.exp(-g))) * u;
    }
  }
  return y;
}

/** Backward of {@link swigluF64}: dgate = dy·u·σ(g)(1 + g(1 − σ(g))), dup = dy·g·σ(g). → (M, 2I). */
export function swigluBwdRef(dOut: Arr, gateUp: Arr, I: number): Float64Array {
  const M = gateUp.length / (2 * I);
  expectLen("swigluBwdRef dOut", dOut, M * I);
  const d = new Float64Array(gateUp.length); // (M, 2I)
  for (let m = 0; m < M; m++) {
    for (let i = 0; i < I; i++) {
      const g = gateUp[m * 2 * I + i], u = gateUp[m * 2 * I + I + i], dy = dOut[m * I + i];
      const sg = 1 / (1 + Math.exp(-g));
      d[m * 2 * I + i] = dy * u * sg * (1 + g * (1 - sg));
      d[m * 2 * I + I + i] = dy * g * sg;
    }
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// soft cross-entropy over the draft vocabulary

/**
 * Per-row soft cross-entropy and its gradient: loss_m = −w_m·Σ_v p_v·log_softmax(z)_v,
 * dz = w_m·(softmax(z)·Σ_v p_v − p). logits, targetProbs (M, V), rowWeight (M). With `hard`
 * (labels (M), ≥ V = none; signed weights (M)): hardLoss_m = −h_m·log_softmax(z)[y_m] (0 without a
 * label), dz += h_m·(softmax(z) − e_{y_m}).
 */
export function softCrossEntropyRef(
  logits: Arr,
  targetProbs: Arr,
  rowWeight: Arr,
  V: number,
  hard?: { labels: Arr; weights: Arr },
): { loss: Float64Array; dLogits: Float64Array; hardLoss: Float64Array } {
  const M = rowWeight.length;
  const hardLoss = new Float64Array(M); // (M)
  expectLen("softCrossEntropyRef logits", logits, M * V);
  expectLen("softCrossEntropyRef targetProbs", targetProbs, M * V);
  const loss = new Float64Array(M); // (M)
  const dLogits = new Float64Array(M * V); // (M, V)
  for (let m = 0; m < M; m++) {
    const o = m * V;
    let mx = -Infinity;
    for (let i = 0; i < V; i++) mx = Math.max(mx, logits[o + i]);
    let den = 0, sp = 0, spz = 0;
    for (let i = 0; i < V; i++) {
      den += Math.exp(logits[o + i] - mx);
      sp += targetProbs[o + i];
      spz += targetProbs[o + i] * logits[o + i];
    }
    const lse = mx + Math.log(den);
    const w = rowWeight[m];
    loss[m] = -w * (spz - sp * lse);
    for (let i = 0; i < V; i++) {
      dLogits[o + i] = w * (Math.exp(logits[o + i] - lse) * sp - targetProbs[o + i]);
    }
    const y = hard ? hard.labels[m] : V;
    if (y < V) {
      const h = hard!.weights[m];
      hardLoss[m] = -h * (logits[o + y] - lse);
      for (let i = 0; i < V; i++) dLogits[o + i] += h * (Math.exp(logits[o + i] - lse) - (i === y ? 1 : 0));
    }
  }
  return { loss, dLogits, hardLoss };
}

// ---------------------------------------------------------------------------------------------
// optimizer

/** Options of {@link adamwRef} (torch.optim.AdamW semantics). */
export interface AdamWRefOptions {
  /** Learning rate. */
  lr: number;
  /** β1 (default 0.9). */
  beta1?: number;
  /** β2 (default 0.95). */
  beta2?: number;
  /** ε added to the bias-corrected √v (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0). */
  weightDecay?: number;
  /** 1-based step number (after increment, as torch's `state["step"]`). */
  step: number;
  /** Multiplier applied to the gradient first (gradient clipping); default 1. */
  gradScale?: number;
}

/**
 * One torch.optim.AdamW step in f64, in place on `p`, `m`, `v`:
 * p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε), with g = gradScale·grad.
 */
export function adamwRef(
  p: Float64Array,
  grad: Arr,
  m: Float64Array,
  v: Float64Array,
  o: AdamWRefOptions,
): void {
  const b1 = o.beta1 ?? 0.9, b2 = o.beta2 ?? 0.95, eps = o.eps ?? 1e-8, wd = o.weightDecay ?? 0;
  const sc = o.gradScale ?? 1;
  const bc1 = 1 - Math.pow(b1, o.step), bc2 = 1 - Math.pow(b2, o.step);
  for (let i = 0; i < p.length; i++) {
    const g = grad[i] * sc;
    p[i] *= 1 - o.lr * wd;
    m[i] = b1 * m[i] + (1 - b1) * g;
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    p[i] -= (o.lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps);
  }
}

/** torch `clip_grad_norm_` coefficient: min(1, maxNorm / (‖g‖ + 1e-6)) for the squared norm `normSq`. */
export function clipScaleRef(normSq: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (Math.sqrt(normSq) + 1e-6));
}
