import { ok, throws } from "node:assert/strict";
import { embedding } from "./embedding.ts";
import { assertAllClose, randn, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { embeddingRef } from "../reference/ops.ts";
import { ShapeError } from "../errors.ts";

Deno.test("embedding gathers rows from ids at idsOffset (f32 and f16 tables)", async () => {
  const { gpu, rec } = await testGpu();
  const acts = new BufferArena(gpu, 1 << 20, "acts");
  const weights = new BufferArena(gpu, 1 << 21, "weights");
  for (const [V, H, T, off] of [[5, 1, 1, 0], [50, 7, 9, 3], [33, 300, 4, 11], [3, 8197, 2, 1]]) {
    const table = randn(V * H, V + H);
    const ring = Uint32Array.from({ length: off + T + 2 }, (_, i) => (i * 7919 + 3) % V);
    const tids = acts.upload(ring, [ring.length], "u32", "ring");
    const out = acts.alloc([T, H], "f32", "out");
    const want = embeddingRef(table, ring.subarray(off, off + T), H);
    embedding(rec, out, weights.upload(table, [V, H], "f32", "table"), tids, { idsOffset: off });
    assertAllClose(await rec.readF32(out), want, { name: `embedding f32 V=${V} H=${H}`, rtol: 0, atol: 0 });
    if (gpu.features.f16) {
      const t16 = new Float16Array(table);
      embedding(rec, out, weights.upload(new Uint16Array(t16.buffer), [V, H], "f16", "table16"), tids, {
        idsOffset: off,
      });
      const want16 = embeddingRef(Float32Array.from(t16), ring.subarray(off, off + T), H);
      assertAllClose(await rec.readF32(out), want16, {
        name: `embedding f16 V=${V} H=${H}`,
        rtol: 0,
        atol: 0,
      });
    }
    acts.reset();
    weights.reset();
  }
  acts.destroy();
  weights.destroy();
});

Deno.test("embedding writes a NaN row for an out-of-range id (no silent clamp)", async () => {
  const { gpu, rec } = await testGpu();
  const acts = new BufferArena(gpu, 1 << 16, "acts");
  const weights = new BufferArena(gpu, 1 << 16, "weights");
  const V = 10, H = 6;
  const table = randn(V * H, 1);
  const ids = acts.upload(new Uint32Array([4, 10, 9, 0xffffffff]), [4], "u32", "ids");
  const out = acts.alloc([4, H], "f32", "out");
  embedding(rec, out, weights.upload(table, [V, H], "f32", "table"), ids);
  const got = await rec.readF32(out);
  assertAllClose(got.subarray(0, H), table.subarray(4 * H, 5 * H), { name: "row 0", atol: 0 });
  assertAllClose(got.subarray(2 * H, 3 * H), table.subarray(9 * H, 10 * H), { name: "row 2", atol: 0 });
  for (const r of [1, 3]) ok(got.subarray(r * H, (r + 1) * H).every(Number.isNaN), `row ${r} should be NaN`);
  throws(
    () => embedding(rec, out, weights.upload(table, [V, H], "f32", "t"), ids, { idsOffset: 1 }),
    (e) => e instanceof ShapeError && e.message.includes("ids"),
  );
  acts.destroy();
  weights.destroy();
});
