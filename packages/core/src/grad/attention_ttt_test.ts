/**
 * The training-time-test attention mode (`ttt`, forward in ops/attention.ts, backward in
 * attention_bwd.ts), which scans only the keys each query sees, against the f64 references
 * (`attentionRef`, `attentionBwdRef`, itself checked by finite differences in
 * reference_bwd_test.ts) with the visibility written out here as an explicit (Tq, kvLen) mask: B
 * sequences of S tokens, step-0 keys at rows [0, B·S), step j's keys at rows j·stride + r. Rows no
 * query may see (the padding between steps) hold NaN on the GPU, so a kernel that read one would
 * fail. Odd shapes, GQA, more keys than one tile, k = 0, accumulation, both backward workgroup
 * sizes, and the validation errors.
 * @module
 */
import assert from "node:assert/strict";
import { assertAllClose, randn, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { attention, packMask } from "../ops/attention.ts";
import { attentionRef } from "../reference/ops.ts";
import { attentionBackward } from "./attention_bwd.ts";
import { attentionBwdRef } from "./reference_bwd.ts";

/** (B, S, steps k, stride, nH, nKV, hd, forward workgroup size) */
const CASES: [number, number, number, number, number, number, number, (32 | 64 | 128 | 256)?][] = [
  [3, 5, 2, 16, 2, 1, 4], // three sequences, padding rows 15
  [1, 150, 1, 192, 2, 2, 8], // 151 visible keys at the end: more than one tile in every kernel
  [2, 7, 0, 14, 3, 3, 12, 32], // k = 0: causal within each sequence
  [2, 9, 6, 19, 4, 2, 16, 256], // six earlier steps, stride not a multiple of 32
];

/** The explicit visibility: query b·S + u sees rows b·S..b·S+u and j·stride + b·S + u, j = 1..k. */
function tttVisibility(B: number, S: number, k: number, stride: number, kvLen: number): Uint8Array {
  const Tq = B * S;
  const m = new Uint8Array(Tq * kvLen); // (Tq, kvLen)
  for (let t = 0; t < Tq; t++) {
    const b = Math.floor(t / S);
    for (let j = b * S; j <= t; j++) m[t * kvLen + j] = 1;
    for (let j = 1; j <= k; j++) m[t * kvLen + j * stride + t] = 1;
  }
  return m;
}

Deno.test("attention ttt mode: forward and backward equal the f64 references with the explicit mask", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "ttt-attn");
  for (const [ci, [B, S, k, stride, nH, nKV, hd, wg]] of CASES.entries()) {
    const Tq = B * S, kvLen = k * stride + Tq, rows = kvLen + 3;
    const kvW = nKV * hd, qW = nH * hd, scale = 1 / Math.sqrt(hd);
    const vis = tttVisibility(B, S, k, stride, kvLen);
    const seen = new Uint8Array(kvLen);
    for (let i = 0; i < vis.length; i++) if (vis[i]) seen[i % kvLen] = 1;
    const q = randn(Tq * qW, 300 + ci), dout = randn(Tq * qW, 310 + ci);
    const kv = [randn(kvLen * kvW, 320 + ci), randn(kvLen * kvW, 330 + ci)];
    // GPU caches: NaN in every row no query sees and in 3 rows past kvLen; the reference gets 0 there.
    const gpuKv = kv.map((a) => {
      const g = new Float32Array(rows * kvW).fill(NaN);
      for (let j = 0; j < kvLen; j++) {
        if (seen[j]) g.set(a.subarray(j * kvW, (j + 1) * kvW), j * kvW);
        else a.fill(0, j * kvW, (j + 1) * kvW);
      }
      return g;
    });
    const dims = { tq: Tq, tk: kvLen, nHeads: nH, nKvHeads: nKV, headDim: hd };
    const wantOut = attentionRef(q, kv[0], kv[1], vis, scale, dims);
    const want = attentionBwdRef(dout, q, kv[0], kv[1], vis, scale, dims);

    const tq = arena.upload(q, [Tq, qW], "f32", "q");
    const tk = arena.upload(gpuKv[0], [rows, kvW], "f32", "kCache");
    const tv = arena.upload(gpuKv[1], [rows, kvW], "f32", "vCache");
    const out = arena.alloc([Tq, qW], "f32", "out");
    const ttt = { seqLen: S, steps: k, stepStride: stride };
    const base = { numHeads: nH, numKvHeads: nKV, headDim: hd, kvLen, ttt };
    attention(rec, out, tq, tk, tv, wg ? { ...base, workgroupSize: wg } : base);
    const name = `case ${ci}: B ${B} S ${S} k ${k}`;
    assertAllClose(await rec.readF32(out), wantOut, { rtol: 1e-4, atol: 2e-5, name: `out ${name}` });
    // The same visibility as a packed bitset (mode 1) gives the same output.
    const bits = arena.upload(packMask(vis, Tq, kvLen), [Tq, Math.ceil(kvLen / 32)], "u32", "bits");
    const outMask = arena.alloc([Tq, qW], "f32", "out_mask");
    attention(rec, outMask, tq, tk, tv, { numHeads: nH, numKvHeads: nKV, headDim: hd, kvLen, mask: bits });
    assertAllClose(await rec.readF32(outMask), await rec.readF32(out), { rtol: 1e-5, atol: 1e-6, name });

    // Backward from the reference forward output; dk/dv rows past kvLen keep a sentinel. Both
    // workgroup sizes (64: the software-adapter default for hd ≤ 64; 128: the GPU default).
    const tout = arena.upload(Float32Array.from(wantOut), [Tq, qW], "f32", "out_ref");
    const tdo = arena.upload(dout, [Tq, qW], "f32", "dout");
    const dq = arena.alloc([Tq, qW], "f32", "dq");
    const tol = { rtol: 1e-4, atol: 1e-5 };
    const tail = Array(3 * kvW).fill(7);
    for (const workgroupSize of [64, 128] as const) {
      const dk = arena.upload(new Float32Array(rows * kvW).fill(7), [rows, kvW], "f32", "dk");
      const dv = arena.upload(new Float32Array(rows * kvW).fill(7), [rows, kvW], "f32", "dv");
      const o = { ...base, scale, workgroupSize };
      const at = `${name} wg ${workgroupSize}`;
      attentionBackward(rec, dq, dk, dv, tdo, tq, tk, tv, tout, o);
      assertAllClose(await rec.readF32(dq), want.dq, { name: `dq ${at}`, ...tol });
      assertAllClose(await rec.readF32(dk), [...want.dk, ...tail], { name: `dk ${at}`, ...tol });
      assertAllClose(await rec.readF32(dv), [...want.dv, ...tail], { name: `dv ${at}`, ...tol });
      attentionBackward(rec, dq, dk, dv, tdo, tq, tk, tv, tout, { ...o, accumulate: true });
      const twice = (a: ArrayLike<number>) => [...Array.from(a, (x) => 2 * x), ...tail];
      assertAllClose(await rec.readF32(dk), twice(want.dk), { name: `dk accumulated ${at}`, ...tol });
      assertAllClose(await rec.readF32(dv), twice(want.dv), { name: `dv accumulated ${at}`, ...tol });
    }
    arena.reset();
  }
  arena.destroy();
});

Deno.test("attention ttt mode: validation names the problem", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "ttt-attn-bad");
  const q = arena.alloc([6, 8], "f32", "q"), kc = arena.alloc([40, 8], "f32", "kc");
  const base = { numHeads: 1, numKvHeads: 1, headDim: 8, kvLen: 30 };
  const ttt = { seqLen: 3, steps: 2, stepStride: 8 };
  attention(rec, q, q, kc, kc, { ...base, ttt }); // rows [0, 22) ⊂ [0, 30)
  assert.throws(() => attention(rec, q, q, kc, kc, { ...base, ttt: { ...ttt, seqLen: 4 } }), /divide Tq 6/);
  assert.throws(() => attention(rec, q, q, kc, kc, { ...base, ttt: { ...ttt, stepStride: 5 } }), /≥ Tq 6/);
  assert.throws(
    () => attention(rec, q, q, kc, kc, { ...base, ttt: { ...ttt, steps: 4 } }),
    /beyond kvLen 30/,
  );
  assert.throws(() => attention(rec, q, q, kc, kc, { ...base, ttt, mask: q }), /at most one/);
  const g = arena.alloc([40, 8], "f32", "g"), g2 = arena.alloc([40, 8], "f32", "g2");
  const dq = arena.alloc([6, 8], "f32", "dq");
  assert.throws(
    () => attentionBackward(rec, dq, g, g2, q, q, kc, kc, q, { ...base, ttt: { ...ttt, steps: 4 } }),
    /attentionBackward: ttt keys reach row 37/,
  );
  arena.destroy();
});
