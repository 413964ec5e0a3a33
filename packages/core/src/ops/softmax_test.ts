import { ok } from "node:assert/strict";
import { logSoftmax, softmax } from "./softmax.ts";
import { assertAllClose, randn, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { logSoftmaxRef, softmaxRef } from "../reference/ops.ts";

Deno.test("softmax / logSoftmax with temperature match the references, also in place", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 21, "acts");
  for (const [M, N] of [[1, 1], [3, 7], [2, 300], [2, 8197], [3, 256]]) {
    for (const T of [1, 0.7]) {
      const x = randn(M * N, M * 101 + N, 3);
      const tx = arena.upload(x, [M, N], "f32", "x");
      const out = arena.alloc([M, N], "f32", "out");
      softmax(rec, out, tx, { temperature: T });
      assertAllClose(await rec.readF32(out), softmaxRef(x, N, T), {
        name: `softmax ${M}x${N} T=${T}`,
        rtol: 1e-5,
        atol: 1e-7,
      });
      logSoftmax(rec, out, tx, { temperature: T });
      assertAllClose(await rec.readF32(out), logSoftmaxRef(x, N, T), {
        name: `logSoftmax ${M}x${N} T=${T}`,
        rtol: 1e-5,
        atol: 1e-5,
      });
      softmax(rec, tx, tx, { temperature: T }); // in place
      assertAllClose(await rec.readF32(tx), softmaxRef(x, N, T), {
        name: `softmax in place ${M}x${N}`,
        rtol: 1e-5,
        atol: 1e-7,
      });
      arena.reset();
    }
  }
  arena.destroy();
});

Deno.test("softmax handles -inf (masked) logits without NaN", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "acts");
  const N = 300;
  const x = randn(2 * N, 5);
  for (let i = 0; i < 2 * N; i += 3) x[i] = -Infinity;
  x[N] = -Infinity; // row 1 starts masked
  const tx = arena.upload(x, [2, N], "f32", "x");
  const out = arena.alloc([2, N], "f32", "out");
  softmax(rec, out, tx);
  assertAllClose(await rec.readF32(out), softmaxRef(x, N), {
    name: "masked softmax",
    rtol: 1e-5,
    atol: 1e-7,
  });
  logSoftmax(rec, out, tx);
  const got = await rec.readF32(out), want = logSoftmaxRef(x, N);
  const masked = (_: number, i: number) => x[i] === -Infinity;
  ok(got.every((v, i) => masked(v, i) ? v === -Infinity : Number.isFinite(v)), "-inf exactly where masked");
  assertAllClose(got.filter((v, i) => !masked(v, i)), want.filter((v, i) => !masked(v, i)), {
    name: "masked logSoftmax",
    rtol: 1e-5,
    atol: 1e-5,
  });
  arena.destroy();
});
