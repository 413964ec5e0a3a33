import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { topkLogSoftmax, topkRowCache } from "./topk.ts";
import { topk } from "./select.ts";
import { logSoftmax } from "./softmax.ts";
import { assertAllClose, randn, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { logSoftmaxRef, topkRef } from "../reference/ops.ts";
import { ShapeError } from "../errors.ts";

/** Logits with many exact ties (values on a coarse grid), plus −∞ entries. */
function tiedLogits(n: number, seed: number): Float32Array {
  const x = randn(n, seed, 3).map((v) => Math.round(v * 2) / 2);
  for (let i = 5; i < n; i += 11) x[i] = -Infinity;
  return x;
}

// Odd shapes: N = 1, tiny rows, rows not a multiple of 256, rows spanning several threads' slots,
// k up to 64, and N = 9000 (too long for workgroup memory on every adapter: the uncached variant).
const SHAPES: [number, number, number][] = [[1, 1, 1], [3, 7, 7], [2, 300, 5], [5, 1000, 10], [2, 2049, 64], [
  1,
  9000,
  17,
]];

Deno.test("topkLogSoftmax: values all-close to the f64 log-softmax, ids its top-k (ties by lower index)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "acts");
  for (const [M, N, k] of SHAPES) {
    for (const T of [1, 0.7]) {
      for (const x of [randn(M * N, M * N + k, 4), tiedLogits(M * N, k)]) {
        const tx = arena.upload(x, [M, N], "f32", "x");
        const ids = arena.alloc([M, k], "u32", "ids"), vals = arena.alloc([M, k], "f32", "vals");
        topkLogSoftmax(rec, ids, vals, tx, k, { temperature: T });
        const gi = await rec.read(ids), gv = await rec.readF32(vals);
        const lp = logSoftmaxRef(x, N, T); // f64, rounded once to f32
        for (let m = 0; m < M; m++) {
          const row = lp.subarray(m * N, (m + 1) * N);
          const ref = topkRef(row, k);
          const name = `${M}x${N} k=${k} T=${T} row ${m}`;
          const got = gv.subarray(m * k, (m + 1) * k);
          const fin = (a: Float32Array) => a.filter((_, j) => Number.isFinite(ref.values[j]));
          deepEqual(Array.from(got).map(Number.isFinite), Array.from(ref.values).map(Number.isFinite), name);
          assertAllClose(fin(got), fin(ref.values), { name, atol: 2e-6, rtol: 2e-6 });
          for (let j = 0; j < k; j++) {
            const g = gi[m * k + j];
            // Ids must agree except between entries whose f64 log-probs differ by less than the
            // f32 rounding of the GPU's lse (near-ties the two may order differently).
            if (g !== ref.ids[j]) {
              ok(
                Math.abs(row[g] - ref.values[j]) <= 4e-6 * Math.max(1, Math.abs(ref.values[j])),
                `${name} id ${j}`,
              );
            }
          }
        }
        arena.reset();
      }
    }
  }
  arena.destroy();
});

Deno.test("topkLogSoftmax equals logSoftmax → topk bit for bit (cached and uncached rows, NaN rows)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "acts");
  for (const [M, N, k] of SHAPES) {
    const inputs = [randn(M * N, 7 * N + k, 2), tiedLogits(M * N, N)];
    if (N >= 300) {
      const x = randn(M * N, N, 1);
      x[3] = NaN; // row 0 has a NaN: log-softmax is NaN everywhere, no ids
      for (let i = N; i < M * N; i += 2) x[i] = NaN; // row 1: half NaN
      inputs.push(x);
    }
    for (const x of inputs) {
      const tx = arena.upload(x, [M, N], "f32", "x");
      const lp = arena.alloc([M, N], "f32", "lp");
      const ids0 = arena.alloc([M, k], "u32", "ids0"), vals0 = arena.alloc([M, k], "f32", "vals0");
      logSoftmax(rec, lp, tx);
      topk(rec, ids0, vals0, lp, k);
      const want = [await rec.read(ids0), new Uint32Array((await rec.read(vals0)).buffer)];
      for (
        const [cache, workgroupSize, kernel] of [
          ["auto", 16, "workgroup"],
          ["never", 16, "workgroup"],
          ["auto", 8, "workgroup"],
          ["auto", 256, "workgroup"],
          ["never", 64, "workgroup"],
          ["never", undefined, "lanes"],
        ] as const
      ) {
        const ids = arena.alloc([M, k], "u32", "ids"), vals = arena.alloc([M, k], "f32", "vals");
        topkLogSoftmax(rec, ids, vals, tx, k, { cache, workgroupSize, kernel });
        const got = [await rec.read(ids), new Uint32Array((await rec.read(vals)).buffer)];
        const name = `${M}x${N} k=${k} cache=${cache} wg=${workgroupSize} ${kernel}`;
        deepEqual(Array.from(got[0]), Array.from(want[0]), `ids ${name}`);
        deepEqual(Array.from(got[1]), Array.from(want[1]), `value bits ${name}`);
      }
      arena.reset();
    }
  }
  arena.destroy();
});

Deno.test("topkLogSoftmax: row cache only when it fits; bad k / temperature / shapes throw", async () => {
  const { gpu, rec } = await testGpu();
  const limit = gpu.limits.maxComputeWorkgroupStorageSize;
  equal(topkRowCache(rec, 1000, 16), 1024);
  equal(topkRowCache(rec, 9000, 16) > 0, 9216 * 4 + 2112 <= limit);
  const arena = new BufferArena(gpu, 1 << 16, "acts");
  const x = arena.alloc([2, 7], "f32", "x7");
  const bad = (f: () => void, msg: string) =>
    throws(f, (e) => e instanceof ShapeError && e.message.includes(msg));
  bad(() => topkLogSoftmax(rec, arena.alloc([2, 8], "u32"), arena.alloc([2, 8], "f32"), x, 8), "k must");
  bad(
    () =>
      topkLogSoftmax(rec, arena.alloc([2, 3], "u32"), arena.alloc([2, 3], "f32"), x, 3, { temperature: 0 }),
    "temperature",
  );
  bad(
    () => topkLogSoftmax(rec, arena.alloc([1, 3], "u32", "ids13"), arena.alloc([2, 3], "f32"), x, 3),
    "ids13",
  );
  arena.destroy();
});
