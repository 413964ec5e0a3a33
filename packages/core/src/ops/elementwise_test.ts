import { deepEqual as assertEquals } from "node:assert/strict";
import { add, copyRows } from "./elementwise.ts";
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
    add(rec, ta, ta, tb); // in place
    assertAllClose(await rec.readF32(ta), addRef(a, b), { name: `add in place n=${n}`, rtol: 0, atol: 0 });
  }
  arena.destroy();
});

Deno.test("copyRows copies a strided block and leaves the rest of dst untouched", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 20, "test");
  const rows = 5, cols = 7, sStride = 9, dStride = 30;
  const src = randn(rows * sStride + 3, 1);
  const ts = arena.upload(src, [src.length], "f32", "src");
  const init = randn(rows * dStride, 2);
  const td = arena.upload(init, [init.length], "f32", "dst");
  copyRows(rec, td, { offset: 11, stride: dStride }, ts, { offset: 2, stride: sStride }, rows, cols);
  const expected = init.slice();
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) expected[11 + r * dStride + c] = src[2 + r * sStride + c];
  }
  assertEquals(Array.from(await rec.readF32(td)), Array.from(expected));
  arena.destroy();
});

Deno.test("copyRows rejects a block that overruns its tensor, naming it", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "test");
  const t = arena.alloc([10], "f32", "small");
  let msg = "";
  try {
    copyRows(rec, t, { offset: 0, stride: 5 }, t, { offset: 0, stride: 5 }, 3, 5);
  } catch (e) {
    msg = (e as Error).message;
  }
  assertEquals(msg.includes("small"), true, msg);
  arena.destroy();
});
