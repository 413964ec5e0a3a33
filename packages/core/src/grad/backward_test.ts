// GPU backward kernels vs the f64 CPU backward references (themselves checked by finite differences
// in reference_bwd_test.ts), on shapes that are not multiples of the tiles / workgroups.
import { throws } from "node:assert/strict";
import { assertAllClose, randn, rng, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { ShapeError } from "../errors.ts";
import { attention, packMask } from "../ops/attention.ts";
import { causalMask } from "../reference/ops.ts";
import {
  linearBackward,
  rmsNormBackward,
  ropeBackward,
  softCrossEntropy,
  swigluBackward,
} from "./backward.ts";
import { attentionBackward, tttMask } from "./attention_bwd.ts";
import {
  attentionBwdRef,
  attentionF64,
  linearBwdRef,
  rmsNormBwdRef,
  ropeBwdRef,
  softCrossEntropyRef,
  swigluBwdRef,
} from "./reference_bwd.ts";

function add(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from(a, (x, i) => x + b[i]);
}

Deno.test("linearBackward matches the reference (dx, dw, accumulation), incl. non-tile shapes", async () => {
  const { gpu, rec } = await testGpu();
  const act = new BufferArena(gpu, 1 << 22, "act");
  const wts = new BufferArena(gpu, 1 << 22, "weights");
  for (const [M, K, N] of [[3, 5, 4], [70, 33, 67], [130, 65, 9], [1, 1, 1]]) {
    const x = randn(M * K, M + K), w = randn(N * K, N), dy = randn(M * N, M * N);
    const tx = act.upload(x, [M, K], "f32", "x"), tdy = act.upload(dy, [M, N], "f32", "dy");
    const tw = wts.upload(w, [N, K], "f32", "w");
    const dx = act.alloc([M, K], "f32", "dx"), dw = act.upload(randn(N * K, 7), [N, K], "f32", "dw");
    const ref = linearBwdRef(dy, x, w, M, K, N);
    linearBackward(rec, dx, dw, tdy, tx, tw);
    const tol = { rtol: 1e-4, atol: 1e-4 };
    assertAllClose(await rec.readF32(dx), ref.dx, { name: `dx ${M}x${K}x${N}`, ...tol });
    assertAllClose(await rec.readF32(dw), ref.dw, { name: `dw ${M}x${K}x${N}`, ...tol });
    // accumulation: dw += dyᵀx again, dx += dy·w
    linearBackward(rec, dx, dw, tdy, tx, tw, { accumulateDw: true, accumulateDx: true });
    assertAllClose(await rec.readF32(dw), add(ref.dw, ref.dw), { name: `dw accum ${M}`, ...tol });
    assertAllClose(await rec.readF32(dx), add(ref.dx, ref.dx), { name: `dx accum ${M}`, ...tol });
    act.reset();
    wts.reset();
  }
  const x = act.alloc([4, 3], "f32", "x"), w = wts.alloc([2, 3], "f32", "w");
  throws(() => linearBackward(rec, null, w, act.alloc([4, 2], "f32", "dy"), x, w), ShapeError);
  throws(() => linearBackward(rec, x, null, act.alloc([4, 3], "f32", "dy"), x, w), /dy/);
  act.destroy();
  wts.destroy();
});

Deno.test("rmsNormBackward matches the reference (dx, dw over rows, accumulation)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "act");
  for (const [M, H] of [[3, 5], [7, 300], [1, 1]]) {
    const x = randn(M * H, H), w = randn(H, H + 1), dy = randn(M * H, H + 2), eps = 1e-5;
    const tx = arena.upload(x, [M, H], "f32", "x"), tw = arena.upload(w, [H], "f32", "w");
    const tdy = arena.upload(dy, [M, H], "f32", "dy");
    const dx = arena.alloc([M, H], "f32", "dx"), dw = arena.alloc([H], "f32", "dw");
    const ref = rmsNormBwdRef(dy, x, w, eps);
    rmsNormBackward(rec, dx, dw, tdy, tx, tw, eps);
    const tol = { rtol: 1e-4, atol: 1e-5 };
    assertAllClose(await rec.readF32(dx), ref.dx, { name: `dx ${M}x${H}`, ...tol });
    assertAllClose(await rec.readF32(dw), ref.dw, { name: `dw ${M}x${H}`, ...tol });
    rmsNormBackward(rec, dx, dw, tdy, tx, tw, eps, { accumulateDw: true, accumulateDx: true });
    assertAllClose(await rec.readF32(dx), add(ref.dx, ref.dx), { name: `dx accum ${M}x${H}`, ...tol });
    assertAllClose(await rec.readF32(dw), add(ref.dw, ref.dw), { name: `dw accum ${M}x${H}`, ...tol });
    arena.reset();
  }
  arena.destroy();
});

Deno.test("ropeBackward inverts the rotation (positions tensor and pos0)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 20, "act");
  const T = 5, nH = 3, hd = 8, theta = 10000;
  const d = randn(T * nH * hd, 71);
  const pos = Uint32Array.of(0, 3, 3, 17, 400);
  const td = arena.upload(d, [T, nH * hd], "f32", "d");
  ropeBackward(rec, td, {
    numHeads: nH,
    headDim: hd,
    theta,
    positions: arena.upload(pos, [T], "u32", "pos"),
  });
  assertAllClose(await rec.readF32(td), ropeBwdRef(d, pos, theta, hd), {
    name: "rope bwd positions",
    atol: 1e-5,
  });
  const td2 = arena.upload(d, [T, nH * hd], "f32", "d2");
  ropeBackward(rec, td2, { numHeads: nH, headDim: hd, theta, pos0: 9 });
  assertAllClose(await rec.readF32(td2), ropeBwdRef(d, [9, 10, 11, 12, 13], theta, hd), {
    name: "rope bwd pos0",
    atol: 1e-5,
  });
  arena.destroy();
});

Deno.test("swigluBackward matches the reference (separate output and in place)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 20, "act");
  const M = 7, I = 37;
  const gu = randn(M * 2 * I, 81, 2), dOut = randn(M * I, 82);
  const tgu = arena.upload(gu, [M, 2 * I], "f32", "gateUp"), tdo = arena.upload(dOut, [M, I], "f32", "dOut");
  const d = arena.alloc([M, 2 * I], "f32", "dGateUp");
  const ref = swigluBwdRef(dOut, gu, I);
  swigluBackward(rec, d, tdo, tgu);
  assertAllClose(await rec.readF32(d), ref, { name: "swiglu bwd", atol: 1e-5 });
  swigluBackward(rec, tgu, tdo, tgu);
  assertAllClose(await rec.readF32(tgu), ref, { name: "swiglu bwd in place", atol: 1e-5 });
  arena.destroy();
});

Deno.test("softCrossEntropy with hard labels (signed weights, no-label rows) matches the reference, in place", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "act");
  for (const [M, V] of [[5, 7], [3, 1000]]) {
    const z = randn(M * V, V + 1, 3), r = rng(V + 2);
    const p = new Float32Array(M * V).map(() => r() / V);
    const wt = Float32Array.from({ length: M }, (_, m) => (m === 1 ? 0 : 0.5 / M));
    const labels = Uint32Array.from({ length: M }, (_, m) => (m === 2 ? 0xffffffff : (m * 37) % V));
    const hw = Float32Array.from({ length: M }, (_, m) => (m % 2 ? -0.7 : 1.1) * (m + 1));
    const tz = arena.upload(z, [M, V], "f32", "logits"), tp = arena.upload(p, [M, V], "f32", "p");
    const tw = arena.upload(wt, [M], "f32", "w");
    const hard = {
      labels: arena.upload(labels, [M], "u32", "labels"),
      weights: arena.upload(hw, [M], "f32", "hw"),
      loss: arena.alloc([M], "f32", "hardLoss"),
    };
    const loss = arena.alloc([M], "f32", "loss"), dz = arena.alloc([M, V], "f32", "dLogits");
    const ref = softCrossEntropyRef(z, p, wt, V, { labels, weights: hw });
    softCrossEntropy(rec, loss, dz, tz, tp, tw, hard);
    assertAllClose(await rec.readF32(loss), ref.loss, { name: `loss ${M}x${V}`, rtol: 1e-5, atol: 1e-6 });
    assertAllClose(await rec.readF32(hard.loss), ref.hardLoss, {
      name: `hard ${M}x${V}`,
      rtol: 1e-5,
      atol: 1e-6,
    });
    assertAllClose(await rec.readF32(dz), ref.dLogits, { name: `dz ${M}x${V}`, rtol: 1e-4, atol: 1e-7 });
    softCrossEntropy(rec, loss, tz, tz, tp, tw, hard);
    assertAllClose(await rec.readF32(loss), ref.loss, {
      name: `loss in place ${M}x${V}`,
      rtol: 1e-5,
      atol: 1e-6,
    });
    assertAllClose(await rec.readF32(tz), ref.dLogits, {
      name: `dz in place ${M}x${V}`,
      rtol: 1e-4,
      atol: 1e-7,
    });
    arena.reset();
  }
  arena.destroy();
});

Deno.test("softCrossEntropy: loss and dLogits match the reference (masked rows, in place)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "act");
  for (const [M, V] of [[3, 5], [4, 1000]]) {
    const z = randn(M * V, V, 3), r = rng(V);
    const p = new Float32Array(M * V);
    for (let m = 0; m < M; m++) { // softmax of random logits as the target
      let s = 0;
      for (let v = 0; v < V; v++) s += p[m * V + v] = Math.exp(3 * r());
      for (let v = 0; v < V; v++) p[m * V + v] /= s;
    }
    const wt = Float32Array.from({ length: M }, (_, m) => (m === 1 ? 0 : 0.8 ** m / M));
    const tz = arena.upload(z, [M, V], "f32", "logits"), tp = arena.upload(p, [M, V], "f32", "p");
    const tw = arena.upload(wt, [M], "f32", "w");
    const loss = arena.alloc([M], "f32", "loss"), dz = arena.alloc([M, V], "f32", "dLogits");
    const ref = softCrossEntropyRef(z, p, wt, V);
    softCrossEntropy(rec, loss, dz, tz, tp, tw);
    assertAllClose(await rec.readF32(loss), ref.loss, { name: `loss ${M}x${V}`, rtol: 1e-5, atol: 1e-6 });
    assertAllClose(await rec.readF32(dz), ref.dLogits, { name: `dz ${M}x${V}`, rtol: 1e-4, atol: 1e-7 });
    softCrossEntropy(rec, loss, tz, tz, tp, tw);
    assertAllClose(await rec.readF32(tz), ref.dLogits, {
      name: `dz in place ${M}x${V}`,
      rtol: 1e-4,
      atol: 1e-7,
    });
    arena.reset();
  }
  arena.destroy();
});

Deno.test("attentionBackward matches the reference: TTT masks, GQA, causal, accumulation", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "act");
  const cases = [
    { seq: 5, step: 2, nH: 2, nKV: 1, hd: 4 }, // the brief's shape
    { seq: 50, step: 2, nH: 4, nKV: 2, hd: 12 }, // 150 keys: more than one 128-key tile, 5 mask words
    { seq: 9, step: 0, nH: 3, nKV: 3, hd: 8, causal: true, past: 140 }, // causal with 140 cached keys
    { seq: 4, step: 1, nH: 2, nKV: 1, hd: 6, emptyRow: 2 }, // TTT mask with query 2 seeing no key
  ];
  for (const [ci, c] of cases.entries()) {
    const tq = c.seq;
    const tk = c.causal ? c.past! + c.seq : c.seq * (c.step + 1);
    const dims = { tq, tk, nHeads: c.nH, nKvHeads: c.nKV, headDim: c.hd };
    const maskBytes = c.causal ? causalMask(tq, tk, c.past!) : tttMask(c.seq, c.step);
    if (c.emptyRow !== undefined) maskBytes.fill(0, c.emptyRow * tk, (c.emptyRow + 1) * tk);
    const q = randn(tq * c.nH * c.hd, 90 + ci), k = randn(tk * c.nKV * c.hd, 91 + ci);
    const v = randn(tk * c.nKV * c.hd, 92 + ci), dout = randn(tq * c.nH * c.hd, 93 + ci);
    const scale = 1 / Math.sqrt(c.hd);
    const out = Float32Array.from(attentionF64(q, k, v, maskBytes, scale, dims).out);
    const ref = attentionBwdRef(dout, q, k, v, maskBytes, scale, dims);
    const up = (a: Float32Array, cols: number, name: string) =>
      arena.upload(a, [a.length / cols, cols], "f32", name);
    const qc = c.nH * c.hd, kc = c.nKV * c.hd;
    const tqq = up(q, qc, "q");
    const tdo = up(dout, qc, "dout"), tout = up(out, qc, "out");
    const dq = arena.alloc([tq, qc], "f32", "dq");
    const dk = arena.alloc([tk + 3, kc], "f32", "dk"), dv = arena.alloc([tk + 3, kc], "f32", "dv");
    const mask = !c.causal
      ? arena.upload(packMask(maskBytes, tq, tk), [tq, Math.ceil(tk / 32)], "u32", "mask")
      : undefined;
    const kBig = arena.alloc([tk + 3, kc], "f32", "kBig"), vBig = arena.alloc([tk + 3, kc], "f32", "vBig");
    // k, v in caches with 3 extra rows past kvLen (never read; dk/dv rows past kvLen untouched)
    const kPad = new Float32Array((tk + 3) * kc), vPad = new Float32Array((tk + 3) * kc);
    kPad.set(k);
    vPad.set(v);
    gpu.device.queue.writeBuffer(kBig.buffer, kBig.offset, kPad);
    gpu.device.queue.writeBuffer(vBig.buffer, vBig.offset, vPad);
    const sentinel = new Float32Array((tk + 3) * kc).fill(7);
    gpu.device.queue.writeBuffer(dk.buffer, dk.offset, sentinel);
    gpu.device.queue.writeBuffer(dv.buffer, dv.offset, sentinel);
    const opts = { numHeads: c.nH, numKvHeads: c.nKV, headDim: c.hd, kvLen: tk, scale, mask };
    attentionBackward(rec, dq, dk, dv, tdo, tqq, kBig, vBig, tout, opts);
    const tol = { rtol: 1e-4, atol: 1e-5 };
    const tail = Array(3 * kc).fill(7);
    assertAllClose(await rec.readF32(dq), ref.dq, { name: `dq case ${ci}`, ...tol });
    assertAllClose(await rec.readF32(dk), [...ref.dk, ...tail], { name: `dk case ${ci}`, ...tol });
    assertAllClose(await rec.readF32(dv), [...ref.dv, ...tail], { name: `dv case ${ci}`, ...tol });
    attentionBackward(rec, dq, dk, dv, tdo, tqq, kBig, vBig, tout, { ...opts, accumulate: true });
    assertAllClose(await rec.readF32(dk), [...add(ref.dk, ref.dk), ...tail], {
      name: `dk accum ${ci}`,
      ...tol,
    });
    assertAllClose(await rec.readF32(dv), [...add(ref.dv, ref.dv), ...tail], {
      name: `dv accum ${ci}`,
      ...tol,
    });
    arena.reset();
  }
  arena.destroy();
});

Deno.test("attentionBackward composes with the GPU attention forward under the same packed TTT mask", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "act");
  const seq = 11, step = 3, nH = 4, nKV = 2, hd = 8, tq = seq, tk = seq * (step + 1);
  const dims = { tq, tk, nHeads: nH, nKvHeads: nKV, headDim: hd };
  const maskBytes = tttMask(seq, step);
  const q = randn(tq * nH * hd, 201), k = randn(tk * nKV * hd, 202), v = randn(tk * nKV * hd, 203);
  const dout = randn(tq * nH * hd, 204);
  const tq_ = arena.upload(q, [tq, nH * hd], "f32", "q"), tk_ = arena.upload(k, [tk, nKV * hd], "f32", "k");
  const tv_ = arena.upload(v, [tk, nKV * hd], "f32", "v"),
    tdo = arena.upload(dout, [tq, nH * hd], "f32", "dout");
  const mask = arena.upload(packMask(maskBytes, tq, tk), [tq, Math.ceil(tk / 32)], "u32", "mask");
  const out = arena.alloc([tq, nH * hd], "f32", "out");
  const opts = { numHeads: nH, numKvHeads: nKV, headDim: hd, kvLen: tk, mask };
  attention(rec, out, tq_, tk_, tv_, opts);
  const dq = arena.alloc([tq, nH * hd], "f32", "dq");
  const dk = arena.alloc([tk, nKV * hd], "f32", "dk"), dv = arena.alloc([tk, nKV * hd], "f32", "dv");
  attentionBackward(rec, dq, dk, dv, tdo, tq_, tk_, tv_, out, opts);
  const ref = attentionBwdRef(dout, q, k, v, maskBytes, 1 / Math.sqrt(hd), dims);
  const tol = { rtol: 1e-4, atol: 1e-5 };
  assertAllClose(await rec.readF32(dq), ref.dq, { name: "dq", ...tol });
  assertAllClose(await rec.readF32(dk), ref.dk, { name: "dk", ...tol });
  assertAllClose(await rec.readF32(dv), ref.dv, { name: "dv", ...tol });
  arena.destroy();
});

Deno.test("softCrossEntropy on the GPU: dLogits equals f32 finite differences of the GPU loss", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 20, "act");
  const M = 2, V = 7, h = 1e-2;
  const z = randn(M * V, 301), p = new Float32Array(M * V).fill(1 / V), wt = Float32Array.of(0.7, 0.3);
  const tp = arena.upload(p, [M, V], "f32", "p"), tw = arena.upload(wt, [M], "f32", "w");
  const loss = arena.alloc([M], "f32", "loss"), dz = arena.alloc([M, V], "f32", "dz");
  const gpuLoss = async (zz: Float32Array): Promise<number> => {
    softCrossEntropy(rec, loss, dz, arena.upload(zz, [M, V], "f32", "z"), tp, tw);
    const l = await rec.readF32(loss);
    return l[0] + l[1];
  };
  await gpuLoss(z);
  const grad = await rec.readF32(dz);
  const fd = new Float64Array(M * V);
  for (let i = 0; i < M * V; i++) {
    const zp = z.slice(), zm = z.slice();
    zp[i] += h;
    zm[i] -= h;
    fd[i] = (await gpuLoss(zp) - await gpuLoss(zm)) / (2 * h);
  }
  assertAllClose(grad, fd, { name: "GPU dLogits vs FD", rtol: 2e-3, atol: 2e-4 });
  arena.destroy();
});
