// Finite-difference checks (central, f64) of every CPU backward reference, and agreement of the f64
// forwards with the f32-rounding references in ../reference/ops.ts. CPU only.
import { ok } from "node:assert/strict";
import { assertAllClose, randn, rng } from "../testing/mod.ts";
import {
  attentionRef,
  causalMask,
  linearRef,
  logSoftmaxRef,
  rmsNormRef,
  ropeRef,
  swigluRef,
} from "../reference/ops.ts";
import {
  adamwRef,
  attentionBwdRef,
  attentionF64,
  clipScaleRef,
  linearBwdRef,
  linearF64,
  rmsNormBwdRef,
  rmsNormF64,
  ropeBwdRef,
  ropeF64,
  softCrossEntropyRef,
  swigluBwdRef,
  swigluF64,
} from "./reference_bwd.ts";
import { tttMask } from "./attention_bwd.ts";

function f64(a: Float32Array): Float64Array {
  return Float64Array.from(a);
}

/** Σ r·f(x): a scalar loss with cotangent r. */
function dotWith(r: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += r[i] * y[i];
  return s;
}

/** Central differences of `loss` at `x` (perturbed in place and restored) against `grad`. */
function fdCheck(name: string, loss: () => number, x: Float64Array, grad: ArrayLike<number>, h = 1e-6): void {
  const fd = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + h;
    const lp = loss();
    x[i] = x0 - h;
    const lm = loss();
    x[i] = x0;
    fd[i] = (lp - lm) / (2 * h);
  }
  assertAllClose(grad, fd, { name: `${name} vs finite differences`, rtol: 1e-6, atol: 1e-8 });
}

Deno.test("f64 forwards agree with the f32 reference ops", () => {
  const M = 3, K = 5, N = 4;
  const x = randn(M * K, 1), w = randn(N * K, 2);
  assertAllClose(linearF64(x, w, M, K, N), linearRef(x, w, M, K, N), { name: "linear", rtol: 1e-6 });
  const nw = randn(K, 3);
  assertAllClose(rmsNormF64(x, nw, 1e-5), rmsNormRef(x, nw, 1e-5), { name: "rmsNorm", rtol: 1e-6 });
  const xr = randn(3 * 2 * 8, 4), pos = [0, 7, 100];
  assertAllClose(ropeF64(xr, pos, 10000, 8), ropeRef(xr, pos, 10000, 8), { name: "rope", rtol: 1e-6 });
  const gu = randn(3 * 8, 5);
  const gate = new Float32Array(12), up = new Float32Array(12);
  for (let m = 0; m < 3; m++) {
    gate.set(gu.subarray(m * 8, m * 8 + 4), m * 4);
    up.set(gu.subarray(m * 8 + 4, m * 8 + 8), m * 4);
  }
  assertAllClose(swigluF64(gu, 4), swigluRef(gate, up), { name: "swiglu", rtol: 1e-6 });
  const dims = { tq: 5, tk: 15, nHeads: 2, nKvHeads: 1, headDim: 4 };
  const q = randn(5 * 8, 6), k = randn(15 * 4, 7), v = randn(15 * 4, 8), mask = tttMask(5, 2);
  assertAllClose(attentionF64(q, k, v, mask, 0.5, dims).out, attentionRef(q, k, v, mask, 0.5, dims), {
    name: "attention",
    rtol: 1e-6,
    atol: 1e-7,
  });
  // soft CE with a one-hot target equals −log_softmax at the target
  const z = randn(2 * 6, 9), p = new Float32Array(12);
  p[3] = 1;
  p[6 + 5] = 1;
  const { loss } = softCrossEntropyRef(z, p, [1, 1], 6);
  const ls = logSoftmaxRef(z, 6);
  assertAllClose(loss, [-ls[3], -ls[11]], { name: "softCE", rtol: 1e-6 });
});

Deno.test("tttMask: causal over step-0 keys plus the same position of each later step", () => {
  const m = tttMask(3, 2); // (3, 9)
  const rows = [0, 1, 2].map((t) => Array.from(m.subarray(t * 9, t * 9 + 9)).join(""));
  ok(rows[0] === "100100100" && rows[1] === "110010010" && rows[2] === "111001001", rows.join(" "));
  const m0 = tttMask(4, 0);
  ok(Array.from(m0).join("") === Array.from(causalMask(4, 4, 0)).join(""));
});

Deno.test("linear backward reference matches finite differences", () => {
  const M = 3, K = 5, N = 4;
  const x = f64(randn(M * K, 11)), w = f64(randn(N * K, 12)), r = randn(M * N, 13);
  const { dx, dw } = linearBwdRef(r, x, w, M, K, N);
  const loss = () => dotWith(r, linearF64(x, w, M, K, N));
  fdCheck("linear dx", loss, x, dx);
  fdCheck("linear dw", loss, w, dw);
});

Deno.test("rmsNorm backward reference matches finite differences", () => {
  const M = 3, H = 7, eps = 1e-5;
  const x = f64(randn(M * H, 21)), w = f64(randn(H, 22)), r = randn(M * H, 23);
  const { dx, dw } = rmsNormBwdRef(r, x, w, eps);
  const loss = () => dotWith(r, rmsNormF64(x, w, eps));
  fdCheck("rmsNorm dx", loss, x, dx);
  fdCheck("rmsNorm dw", loss, w, dw);
});

Deno.test("rope backward reference matches finite differences", () => {
  const T = 3, nH = 2, hd = 8, pos = [0, 5, 1234];
  const x = f64(randn(T * nH * hd, 31)), r = randn(T * nH * hd, 32);
  const dx = ropeBwdRef(r, pos, 10000, hd);
  fdCheck("rope dx", () => dotWith(r, ropeF64(x, pos, 10000, hd)), x, dx);
});

Deno.test("attention backward reference matches finite differences (TTT mask, GQA, causal)", () => {
  const cases = [
    { dims: { tq: 5, tk: 15, nHeads: 2, nKvHeads: 1, headDim: 4 }, mask: tttMask(5, 2) as Uint8Array | null },
    { dims: { tq: 3, tk: 6, nHeads: 4, nKvHeads: 2, headDim: 4 }, mask: causalMask(3, 6, 3) },
    { dims: { tq: 2, tk: 3, nHeads: 2, nKvHeads: 2, headDim: 3 }, mask: null },
  ];
  for (const [ci, { dims, mask }] of cases.entries()) {
    const { tq, tk, nHeads, nKvHeads, headDim } = dims;
    const q = f64(randn(tq * nHeads * headDim, 41 + ci)), k = f64(randn(tk * nKvHeads * headDim, 42 + ci));
    const v = f64(randn(tk * nKvHeads * headDim, 43 + ci)), r = randn(tq * nHeads * headDim, 44 + ci);
    const scale = 1 / Math.sqrt(headDim);
    const { dq, dk, dv } = attentionBwdRef(r, q, k, v, mask, scale, dims);
    const loss = () => dotWith(r, attentionF64(q, k, v, mask, scale, dims).out);
    fdCheck(`attention ${ci} dq`, loss, q, dq);
    fdCheck(`attention ${ci} dk`, loss, k, dk);
    fdCheck(`attention ${ci} dv`, loss, v, dv);
  }
});

Deno.test("swiglu backward reference matches finite differences", () => {
  const M = 3, I = 5;
  const gu = f64(randn(M * 2 * I, 51, 2)), r = randn(M * I, 52);
  fdCheck("swiglu", () => dotWith(r, swigluF64(gu, I)), gu, swigluBwdRef(r, gu, I));
});

Deno.test("soft cross-entropy gradient matches finite differences of its loss", () => {
  const M = 3, V = 6;
  const z = f64(randn(M * V, 61, 2)), rand = rng(62);
  const p = new Float64Array(M * V).map(() => rand());
  for (let v = 0; v < V; v++) p[2 * V + v] *= 0.5 / 3; // a row whose target mass is not 1
  const wt = [1, 0.25, 0.8];
  const { dLogits } = softCrossEntropyRef(z, p, wt, V);
  const loss = () => softCrossEntropyRef(z, p, wt, V).loss.reduce((a, b) => a + b, 0);
  fdCheck("softCE dLogits", loss, z, dLogits);
});

Deno.test("soft cross-entropy with signed hard-label weights matches finite differences", () => {
  const M = 4, V = 6;
  const z = f64(randn(M * V, 63, 2)), rand = rng(64);
  const p = new Float64Array(M * V).map(() => rand() / V);
  const wt = [1, 0, 0.8, 0.3];
  const hard = { labels: [2, 5, V, 0], weights: [0.7, -1.3, 5, -0.2] }; // row 2: no label
  const { dLogits } = softCrossEntropyRef(z, p, wt, V, hard);
  const loss = () => {
    const r = softCrossEntropyRef(z, p, wt, V, hard);
    return r.loss.reduce((a, b) => a + b, 0) + r.hardLoss.reduce((a, b) => a + b, 0);
  };
  fdCheck("softCE + hard dLogits", loss, z, dLogits);
  // The hard loss is −h·log q_y; the soft loss is unchanged by the hard term.
  const r = softCrossEntropyRef(z, p, wt, V, hard);
  const lse = (m: number) =>
    Math.log(Array.from({ length: V }, (_, v) => Math.exp(z[m * V + v])).reduce((x, y) => x + y));
  ok(Math.abs(r.hardLoss[1] - 1.3 * (z[V + 5] - lse(1))) < 1e-12, "row 1");
  ok(r.hardLoss[2] === 0, "no label, no term");
  const soft = softCrossEntropyRef(z, p, wt, V);
  ok(r.loss.every((l, m) => l === soft.loss[m]), "soft loss unchanged");
});

Deno.test("adamwRef follows torch's AdamW formula on a hand-computed step", () => {
  // step 1, β1 0.9, β2 0.95: m = 0.1g, v = 0.05g², m̂ = g, v̂ = g² → p −= lr·g/(|g| + ε) (after decay)
  const p = Float64Array.of(1, -2), m = new Float64Array(2), v = new Float64Array(2);
  adamwRef(p, [0.5, -3], m, v, { lr: 0.1, weightDecay: 0.01, step: 1, eps: 0 });
  assertAllClose(p, [1 * (1 - 0.001) - 0.1, -2 * (1 - 0.001) + 0.1], { name: "adamw step 1", rtol: 1e-12 });
  ok(Math.abs(clipScaleRef(4, 0.5) - 0.5 / (2 + 1e-6)) < 1e-15 && clipScaleRef(0.01, 0.5) === 1);
});
