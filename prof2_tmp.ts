import { attention, attentionBackward, BufferArena, KernelCache, linear, linearBackward, Recorder, requestGpu, randn } from "./packages/core/mod.ts";
const gpu = await requestGpu();
const rec = new Recorder(gpu, new KernelCache(gpu));
const A = new BufferArena(gpu, 1 << 26, "p");
const M = 256, mpad = 256, k = 6, nH = 4, nKV = 2, hd = 32, H = 128, I = 384, Vd = 1024;
const kvLen = k * mpad + M;
const q = A.alloc([M, nH * hd], "f32"), o = A.alloc([M, nH * hd], "f32"), d = A.alloc([M, nH * hd], "f32"), dq = A.alloc([M, nH * hd], "f32");
const K = A.alloc([kvLen, nKV * hd], "f32"), V = A.alloc([kvLen, nKV * hd], "f32"), dK = A.alloc([kvLen, nKV * hd], "f32"), dV = A.alloc([kvLen, nKV * hd], "f32");
const x = A.alloc([M, H], "f32"), w = A.alloc([Vd, H], "f32"), y = A.alloc([M, Vd], "f32"), dx = A.alloc([M, H], "f32"), dw = A.alloc([Vd, H], "f32");
const wd = A.alloc([H, I], "f32"), xa = A.alloc([M, I], "f32"), dxa = A.alloc([M, I], "f32"), dwd = A.alloc([H, I], "f32");
const opts = { numHeads: nH, numKvHeads: nKV, headDim: hd, kvLen, ttt: { seqLen: M, steps: k, stepStride: mpad } };
async function time(name: string, f: () => void, n = 5) {
  f(); await rec.finish();
  const t = performance.now();
  for (let i = 0; i < n; i++) f();
  await rec.finish();
  console.log(name, ((performance.now() - t) / n).toFixed(1), "ms");
}
await time("attention fwd ttt k=6", () => attention(rec, o, q, K, V, opts));
await time("attention bwd ttt k=6", () => attentionBackward(rec, dq, dK, dV, d, q, K, V, o, opts));
await time("linear fwd lm_head", () => linear(rec, y, x, w));
await time("linearBackward lm_head", () => linearBackward(rec, dx, dw, y, x, w));
await time("linear fwd down", () => linear(rec, x, xa, wd));
await time("linearBackward down", () => linearBackward(rec, dxa, dwd, x, xa, wd));
for (let r = 0; r < 3; r++) {
  await time("bwd wg128", () => attentionBackward(rec, dq, dK, dV, d, q, K, V, o, { ...opts, workgroupSize: 128 }));
  await time("bwd wg64", () => attentionBackward(rec, dq, dK, dV, d, q, K, V, o, { ...opts, workgroupSize: 64 }));
}
