/**
 * Kernel layouts with an unused slot: an entry point of a multi-entry module may leave a storage slot
 * out of its layout (`"unused"`, the op passes `null`), and the recorder rejects a tensor/null mismatch.
 */
import { deepEqual, throws } from "node:assert/strict";
import { testGpu } from "../testing/mod.ts";
import { BufferArena } from "./arena.ts";
import { Recorder } from "./recorder.ts";
import { ShapeError } from "../errors.ts";

const WGSL = `
struct P { n: u32 }
@group(0) @binding(0) var<storage, read_write> a: array<u32>;
@group(0) @binding(1) var<storage, read_write> unused_here: array<u32>;
@group(0) @binding(2) var<storage, read_write> b: array<u32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < p.n) {
    b[g.x] = a[g.x] * 2u;
  }
}
@compute @workgroup_size(1)
fn other() {
  unused_here[0] = 1u;
}
`;

Deno.test("a storage slot declared unused is left out of the layout; null must match it", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 12, "unused-slot");
  const a = arena.upload(new Uint32Array([1, 2, 3, 4, 5]), [5], "u32", "a");
  const b = arena.alloc([5], "u32", "b");
  const k = rec.kernels.get({
    name: "unused_slot",
    code: WGSL,
    storage: ["rw", "unused", "rw"],
    params: "u",
  });
  rec.dispatch(k, [a, null, b], [5], [1]);
  deepEqual(Array.from(await rec.read(b)), [2, 4, 6, 8, 10]);
  throws(() => rec.dispatch(k, [a, a, b], [5], [1]), ShapeError);
  throws(() => rec.dispatch(k, [a, null, null], [5], [1]), ShapeError);
  await rec.finish();
  arena.destroy();
});

Deno.test("Recorder checkAliasing rejects overlapping writable bindings (the WebGPU/Dawn rule)", async () => {
  const { gpu, rec } = await testGpu();
  const strict = new Recorder(gpu, rec.kernels, { checkAliasing: true });
  const arena = new BufferArena(gpu, 1 << 12, "aliasing");
  const a = arena.upload(new Uint32Array([1, 2, 3, 4]), [4], "u32", "a");
  const b = arena.alloc([4], "u32", "b");
  const k = rec.kernels.get({
    name: "unused_slot",
    code: WGSL,
    storage: ["rw", "unused", "rw"],
    params: "u",
  });
  throws(() => strict.dispatch(k, [a, null, a], [4], [1]), /bindings 0 \(a\) and 2 \(a\) overlap/);
  strict.dispatch(k, [a, null, b], [4], [1]); // same buffer, disjoint ranges: allowed
  deepEqual(Array.from(await strict.read(b)), [2, 4, 6, 8]);
  strict.destroy();
  arena.destroy();
});
