import { add } from "./elementwise.ts";
import { assertAllClose, randn, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { addRef } from "../reference/ops.ts";

Deno.test("add matches the reference on sizes that are not multiples of the workgroup", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "test");
  for (const n of [1, 255, 257, 1000, 70_001]) {
    const a = randn(n, n), b = randn(n, n + 1);
    const ta = arena.upload(a, [n], "f32", "a"), tb = arena.upload(b, [n], "f32", "b");
    const out = arena.alloc([n], "f32", "out");
    add(rec, out, ta, tb);
    assertAllClose(await rec.readF32(out), addRef(a, b), { name: `add n=${n}`, rtol: 0, atol: 0 });
  }
  arena.destroy();
});
