import { throws } from "node:assert/strict";
import { ShapeError } from "../errors.ts";
import { rmsNorm } from "./norm.ts";
import { assertAllClose, randn, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { rmsNormRef } from "../reference/ops.ts";

const SHAPES: [number, number][] = [[1, 1], [3, 7], [2, 300], [1, 8197], [5, 256]];

const KERNELS = ["workgroup", "lanes"] as const;

Deno.test("rmsNorm (f32 weights, both kernels) matches rmsNormRef, also in place", async () => {
  const { gpu, rec } = await testGpu();
  const acts = new BufferArena(gpu, 1 << 20, "acts");
  const weights = new BufferArena(gpu, 1 << 20, "weights");
  for (
    const [kernel, [M, H]] of KERNELS.flatMap((k) => [...SHAPES, [17, 33]].map((sh) => [k, sh] as const))
  ) {
    const x = randn(M * H, M * 31 + H, 2), w = randn(H, H + 5);
    const tx = acts.upload(x, [M, H], "f32", "x"), tw = weights.upload(w, [H], "f32", "w");
    const out = acts.alloc([M, H], "f32", "out");
    rmsNorm(rec, out, tx, tw, 1e-5, { kernel });
    const ref = rmsNormRef(x, w, 1e-5);
    assertAllClose(await rec.readF32(out), ref, {
      name: `rmsNorm ${kernel} ${M}x${H}`,
      rtol: 1e-5,
      atol: 1e-6,
    });
    rmsNorm(rec, tx, tx, tw, 1e-5, { kernel }); // in place
    assertAllClose(await rec.readF32(tx), ref, {
      name: `rmsNorm ${kernel} in place ${M}x${H}`,
      rtol: 1e-5,
      atol: 1e-6,
    });
    acts.reset();
    weights.reset();
  }
  acts.destroy();
  weights.destroy();
});

Deno.test("rmsNorm with f16 weights (shader-f16), and a weight sharing the activation buffer", async () => {
  const { gpu, rec } = await testGpu();
  const acts = new BufferArena(gpu, 1 << 20, "acts");
  const weights = new BufferArena(gpu, 1 << 20, "weights");
  for (const [kernel, [M, H]] of KERNELS.flatMap((k) => SHAPES.map((sh) => [k, sh] as const))) {
    const x = randn(M * H, M + H * 7);
    const w16 = new Float16Array(randn(H, H + 9));
    const w = Float32Array.from(w16); // the values the kernel sees
    const tx = acts.upload(x, [M, H], "f32", "x");
    const out = acts.alloc([M, H], "f32", "out");
    const ref = rmsNormRef(x, w, 1e-6);
    if (gpu.features.f16) {
      const tw = weights.upload(new Uint16Array(w16.buffer), [H], "f16", "w16");
      rmsNorm(rec, out, tx, tw, 1e-6, { kernel });
      assertAllClose(await rec.readF32(out), ref, {
        name: `rmsNorm f16 ${kernel} ${M}x${H}`,
        rtol: 1e-5,
        atol: 1e-6,
      });
    }
    // A weight in the activation arena gets the read_write variant instead of a usage conflict.
    const twShared = acts.upload(w, [H], "f32", "w-shared");
    rmsNorm(rec, out, tx, twShared, 1e-6, { kernel });
    assertAllClose(await rec.readF32(out), ref, {
      name: `rmsNorm shared ${kernel} ${M}x${H}`,
      rtol: 1e-5,
      atol: 1e-6,
    });
    acts.reset();
    weights.reset();
  }
  acts.destroy();
  weights.destroy();
});

Deno.test("rmsNorm rejects mismatched shapes and dtypes, naming the tensor", async () => {
  const { gpu, rec } = await testGpu();
  const a = new BufferArena(gpu, 1 << 16, "a");
  const x = a.alloc([2, 8], "f32", "x"), w = a.alloc([7], "f32", "w7"), out = a.alloc([2, 8], "f32", "out");
  throws(() => rmsNorm(rec, out, x, w, 1e-5), (e) => e instanceof ShapeError && e.message.includes("w7"));
  throws(
    () => rmsNorm(rec, a.alloc([2, 7], "f32", "out27"), x, a.alloc([8], "f32"), 1e-5),
    (e) => e instanceof ShapeError && e.message.includes("out27"),
  );
  throws(
    () => rmsNorm(rec, out, x, a.alloc([8], "u32", "wu"), 1e-5),
    (e) => e instanceof ShapeError && e.message.includes("wu"),
  );
  a.destroy();
});
