/**
 * The opt-in per-dispatch profiler: counts and names per scope are exact, results are unchanged by
 * profiling (each dispatch in its own pass), `perUnit` scales and folds rows, and a recorder that is
 * not profiling rejects `stopProfile`.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { testGpu } from "../testing/mod.ts";
import { BufferArena } from "./arena.ts";
import { perUnit } from "./profiler.ts";

const WGSL = `
@group(0) @binding(0) var<storage, read_write> a: array<u32>;
@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) g: vec3u) {
  a[g.x] = a[g.x] * 3u + 1u;
}
`;

Deno.test("Recorder profile: per-(scope, kernel) dispatch counts, ms ≥ 0, results unchanged", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 12, "profile");
  const init = new Uint32Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const a = arena.upload(init, [8], "u32", "a");
  const b = arena.upload(init, [8], "u32", "b");
  const k1 = rec.kernels.get({ name: "triple_one", code: WGSL, storage: ["rw"] });
  const k2 = rec.kernels.get({ name: "triple_two", code: WGSL + "\n// another kernel\n", storage: ["rw"] });
  // Unprofiled: 3 × k1 then 2 × k2 on a.
  for (let i = 0; i < 3; i++) rec.dispatch(k1, [a], [], [1]);
  for (let i = 0; i < 2; i++) rec.dispatch(k2, [a], [], [1]);
  const plain = Array.from(await rec.read(a));
  if (!gpu.features.timestamp) {
    // No timestamp-query: profiling must refuse with a message naming the adapter.
    let msg = "";
    try {
      rec.startProfile();
    } catch (e) {
      msg = String(e);
    }
    ok(msg.includes("timestamp-query"), msg);
    arena.destroy();
    return;
  }
  rec.startProfile();
  equal(rec.profiling, true);
  rec.profileScope("first");
  for (let i = 0; i < 3; i++) rec.dispatch(k1, [b], [], [1]);
  rec.profileScope("second");
  for (let i = 0; i < 2; i++) rec.dispatch(k2, [b], [], [1]);
  rec.submit(); // several submits are summed
  rec.dispatch(k2, [b], [], [1]);
  const p = await rec.stopProfile();
  equal(rec.profiling, false);
  equal(p.dispatches, 6);
  const rows = p.kernels.map((k) => `${k.scope}/${k.name}:${k.dispatches}`).sort();
  deepEqual(rows, ["first/triple_one:3", "second/triple_two:3"]);
  ok(p.kernels.every((k) => k.ms >= 0));
  ok(p.spanMs >= p.kernelMs * 0.999, `span ${p.spanMs} < kernel ${p.kernelMs}`);
  // b got one more k2 than a: apply it to a's result on the CPU.
  const expected = plain.map((x) => x * 3 + 1);
  deepEqual(Array.from(await rec.read(b)), expected);
  await rejects(() => rec.stopProfile(), /not profiling/);
  const scaled = perUnit(p, 3, 1);
  equal(scaled.kernels.length, 2);
  equal(scaled.kernels[1].name, "(1 others)");
  equal(scaled.dispatches, 2);
  equal(scaled.kernels[0].dispatches + scaled.kernels[1].dispatches, 2);
  arena.destroy();
});
