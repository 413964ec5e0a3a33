// Optimizer ops vs CPU references: the GPU global norm equals the f64 sum of squares; three AdamW
// steps (weight decay, gradient clipping from the GPU norm) follow torch's formula; the lr schedule.
import { ok, throws } from "node:assert/strict";
import { assertAllClose, randn, testGpu } from "../testing/mod.ts";
import { BufferArena, writeTensor } from "../gpu/arena.ts";
import { ShapeError } from "../errors.ts";
import { adamw, globalNormSq } from "./optim.ts";
import { lrSchedule } from "../train/schedule.ts";
import { adamwRef, clipScaleRef } from "./reference_bwd.ts";

function sumSq(...as: Float32Array[]): number {
  let s = 0;
  for (const a of as) for (const x of a) s += x * x;
  return s;
}

Deno.test("globalNormSq over a list and over one flat buffer equals the CPU sum of squares", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "grads");
  const gs = [randn(1, 1), randn(300, 2), randn(70_001, 3, 0.1)];
  const ts = gs.map((g, i) => arena.upload(g, [g.length], "f32", `g${i}`));
  const out = arena.alloc([1], "f32", "normSq");
  globalNormSq(rec, out, ts);
  const expected = sumSq(...gs);
  assertAllClose(await rec.readF32(out), [expected], { name: "normSq list", rtol: 1e-5 });
  globalNormSq(rec, out, ts[1], { accumulate: true });
  assertAllClose(await rec.readF32(out), [expected + sumSq(gs[1])], {
    name: "normSq accumulate",
    rtol: 1e-5,
  });
  throws(() => globalNormSq(rec, arena.alloc([2], "f32", "bad"), ts), ShapeError);
  arena.destroy();
});

Deno.test("adamw: 3 steps with weight decay and GPU-side clipping follow torch's AdamW", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "train");
  const sizes = [5, 257, 1000];
  const p64 = sizes.map((n, i) => Float64Array.from(randn(n, 10 + i)));
  const m64 = sizes.map((n) => new Float64Array(n)), v64 = sizes.map((n) => new Float64Array(n));
  const tp = p64.map((p, i) => arena.upload(Float32Array.from(p), [p.length], "f32", `p${i}`));
  const tg = sizes.map((n, i) => arena.alloc([n], "f32", `g${i}`));
  const tm = sizes.map((n, i) => arena.upload(new Float32Array(n), [n], "f32", `m${i}`));
  const tv = sizes.map((n, i) => arena.upload(new Float32Array(n), [n], "f32", `v${i}`));
  const normSq = arena.alloc([1], "f32", "normSq");
  const maxNorm = 5, sched = { warmup: 2, total: 10, peak: 1e-2, min: 1e-3 };
  for (let step = 1; step <= 3; step++) {
    // gradients large enough that step 1 and 3 clip (‖g‖ ≈ 20) and step 2 does not (‖g‖ ≈ 2)
    const gs = sizes.map((n, i) => randn(n, 100 * step + i, step === 2 ? 0.06 : 0.6));
    gs.forEach((g, i) => writeTensor(gpu, tg[i], g));
    const lr = lrSchedule(step - 1, sched);
    globalNormSq(rec, normSq, tg);
    adamw(rec, tp, tg, tm, tv, { lr, weightDecay: 0.1, step, clipScaleFrom: normSq, maxNorm });
    const nsq = sumSq(...gs);
    const scale = clipScaleRef(nsq, maxNorm);
    ok(step === 2 ? scale === 1 : scale < 0.5, `step ${step}: clip scale ${scale}`);
    gs.forEach((g, i) =>
      adamwRef(p64[i], g, m64[i], v64[i], { lr, weightDecay: 0.1, step, gradScale: scale })
    );
    for (let i = 0; i < sizes.length; i++) {
      assertAllClose(await rec.readF32(tp[i]), p64[i], {
        name: `param ${i} step ${step}`,
        rtol: 1e-5,
        atol: 1e-6,
      });
      assertAllClose(await rec.readF32(tm[i]), m64[i], {
        name: `m ${i} step ${step}`,
        rtol: 1e-4,
        atol: 1e-7,
      });
      assertAllClose(await rec.readF32(tv[i]), v64[i], {
        name: `v ${i} step ${step}`,
        rtol: 1e-4,
        atol: 1e-9,
      });
    }
  }
  // without clipping, a single flat tensor
  const p = randn(33, 7), g = randn(33, 8);
  const t = arena.upload(p, [33], "f32", "flat"), tgr = arena.upload(g, [33], "f32", "flatg");
  const z1 = arena.upload(new Float32Array(33), [33], "f32", "m"),
    z2 = arena.upload(new Float32Array(33), [33], "f32", "v");
  adamw(rec, t, tgr, z1, z2, { lr: 1e-3, step: 1 });
  const pr = Float64Array.from(p);
  adamwRef(pr, g, new Float64Array(33), new Float64Array(33), { lr: 1e-3, step: 1 });
  assertAllClose(await rec.readF32(t), pr, { name: "flat adamw", rtol: 1e-6, atol: 1e-7 });
  throws(() => adamw(rec, t, tgr, z1, z2, { lr: 1e-3, step: 0 }), ShapeError);
  throws(() => adamw(rec, t, tgr, z1, z2, { lr: 1e-3, step: 1, clipScaleFrom: normSq }), /maxNorm/);
  arena.destroy();
});

Deno.test("lrSchedule: linear warmup from the first step, cosine decay to the floor", () => {
  const o = { warmup: 4, total: 14, peak: 1, min: 0.1 };
  assertAllClose([0, 1, 3].map((s) => lrSchedule(s, o)), [0.25, 0.5, 1], { name: "warmup", rtol: 1e-12 });
  assertAllClose([lrSchedule(8, o), lrSchedule(13, o), lrSchedule(50, o)], [0.55, 0.1, 0.1], {
    name: "cosine",
    rtol: 1e-12,
  });
  ok(lrSchedule(5, o) < 1 && lrSchedule(5, o) > lrSchedule(6, o));
  throws(() => lrSchedule(0, { warmup: 5, total: 5, peak: 1 }), ShapeError);
});
