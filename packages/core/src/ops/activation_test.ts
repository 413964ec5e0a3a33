import { throws } from "node:assert/strict";
import { swiglu } from "./activation.ts";
import { assertAllClose, randn, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { swigluRef } from "../reference/ops.ts";
import { ShapeError } from "../errors.ts";

Deno.test("swiglu over fused gate/up matches swigluRef on odd shapes", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 21, "acts");
  for (const [M, I] of [[1, 1], [3, 7], [2, 300], [1, 8197], [4, 256]]) {
    const gu = randn(M * 2 * I, M * 13 + I, 4); // scale 4: reaches exp under/overflow-ish tails
    const gate = new Float32Array(M * I), up = new Float32Array(M * I);
    for (let m = 0; m < M; m++) {
      gate.set(gu.subarray(m * 2 * I, m * 2 * I + I), m * I);
      up.set(gu.subarray(m * 2 * I + I, (m + 1) * 2 * I), m * I);
    }
    const tgu = arena.upload(gu, [M, 2 * I], "f32", "gateUp");
    const out = arena.alloc([M, I], "f32", "out");
    swiglu(rec, out, tgu);
    assertAllClose(await rec.readF32(out), swigluRef(gate, up), {
      name: `swiglu ${M}x${I}`,
      rtol: 1e-5,
      atol: 1e-6,
    });
    arena.reset();
  }
  // Extremes: silu(-200) → -0 (no NaN), silu(200) = 200.
  const ext = arena.upload(new Float32Array([-200, 200, 3, 0.5]), [1, 4], "f32", "ext");
  const o = arena.alloc([1, 2], "f32", "o");
  swiglu(rec, o, ext);
  assertAllClose(await rec.readF32(o), [-0 * 3, 200 * 0.5], { name: "swiglu extremes", atol: 1e-6 });
  arena.destroy();
});

Deno.test("swiglu rejects an odd last dimension and a wrong output shape", async () => {
  const { gpu, rec } = await testGpu();
  const a = new BufferArena(gpu, 1 << 16, "a");
  throws(
    () => swiglu(rec, a.alloc([2, 3], "f32", "o"), a.alloc([2, 7], "f32", "gu7")),
    (e) => e instanceof ShapeError && e.message.includes("gu7"),
  );
  throws(
    () => swiglu(rec, a.alloc([2, 4], "f32", "o24"), a.alloc([2, 6], "f32", "gu")),
    (e) => e instanceof ShapeError && e.message.includes("o24"),
  );
  a.destroy();
});
