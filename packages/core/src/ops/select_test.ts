import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { argmax, filteredProbs, sample, type SampleOptions, sampleUniform, topk } from "./select.ts";
import { assertAllClose, randn, rng, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import type { Recorder } from "../gpu/recorder.ts";
import { argmaxRef, softmaxRef, topkRef } from "../reference/ops.ts";
import { ShapeError } from "../errors.ts";

/** χ² critical values at α = 0.001 for df = 1..15. */
const CHI2_CRIT_001 = [
  NaN,
  10.828,
  13.816,
  16.266,
  18.467,
  20.515,
  22.458,
  24.322,
  26.124,
  27.877,
  29.588,
  31.264,
  32.909,
  34.528,
  36.123,
  37.697,
];

/** Logits with many exact ties (values on a coarse grid). */
function tiedLogits(n: number, seed: number): Float32Array {
  return randn(n, seed).map((v) => Math.round(v * 2) / 2);
}

Deno.test("argmax matches argmaxRef (lowest index on ties) and writes at outOffset", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 21, "acts");
  const shapes: [number, number, "workgroup" | "lanes"][] = [[1, 1], [3, 7], [4, 300], [2, 8197]].map((
    [M, N],
  ) => [M, N, "workgroup"]);
  // The software kernel (N % 4 == 0): one and many rows, ties across lanes and inside a vec4.
  for (const [M, N] of [[1, 4], [4, 300], [3, 8], [17, 8192]]) shapes.push([M, N, "lanes"]);
  for (const [M, N, kernel] of shapes) {
    for (const x of [randn(M * N, M + N), tiedLogits(M * N, N)]) {
      if (N >= 300) x[N + 299] = x[N + 7] = 100; // row 1: a tie across threads, lower index wins
      if (N === 8) x[2] = x[3] = x[6] = 50; // row 0: a tie inside a vec4 and across lanes
      if (M > 3) x[3 * N + 5] = NaN; // a NaN is skipped
      const off = 5;
      const tx = arena.upload(x, [M, N], "f32", "x");
      const ring = arena.upload(new Uint32Array(off + M + 3).fill(77), [off + M + 3], "u32", "ring");
      argmax(rec, ring, tx, { outOffset: off, kernel });
      const got = Array.from(await rec.read(ring));
      deepEqual(got.slice(off, off + M), Array.from(argmaxRef(x, N)), `argmax ${kernel} ${M}x${N}`);
      deepEqual(got.slice(0, off).concat(got.slice(off + M)), new Array(off + 3).fill(77), "ring untouched");
      arena.reset();
    }
  }
  arena.destroy();
});

Deno.test("topk matches topkRef (descending, ties by lower index)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 21, "acts");
  for (const [M, N, k] of [[1, 1, 1], [3, 7, 7], [2, 300, 5], [2, 300, 64], [1, 8197, 17]]) {
    for (const x of [randn(M * N, M * N + k), tiedLogits(M * N, k)]) {
      const tx = arena.upload(x, [M, N], "f32", "x");
      const ids = arena.alloc([M, k], "u32", "ids"), vals = arena.alloc([M, k], "f32", "vals");
      topk(rec, ids, vals, tx, k);
      const gi = await rec.read(ids), gv = await rec.readF32(vals);
      for (let m = 0; m < M; m++) {
        const ref = topkRef(x.subarray(m * N, (m + 1) * N), k);
        deepEqual(
          Array.from(gi.subarray(m * k, (m + 1) * k)),
          Array.from(ref.ids),
          `topk ids ${M}x${N} k=${k} row ${m}`,
        );
        assertAllClose(gv.subarray(m * k, (m + 1) * k), ref.values, {
          name: `topk values row ${m}`,
          atol: 0,
          rtol: 0,
        });
      }
      arena.reset();
    }
  }
  throws(
    () =>
      topk(rec, arena.alloc([1, 8], "u32"), arena.alloc([1, 8], "f32"), arena.alloc([1, 7], "f32", "x7"), 8),
    (
      e,
    ) => e instanceof ShapeError && e.message.includes("k must"),
  );
  arena.destroy();
});

/** CPU replay of the documented sampler semantics in f64: the kept set and the token drawn for u. */
function replay(
  row: Float32Array,
  o: { temperature: number; topK?: number; topP?: number },
  u: number,
): { id: number; kept: boolean[]; probs: number[]; margin: number } {
  const N = row.length;
  const z = Array.from(row, (v) => Math.fround(v / o.temperature));
  const mx = Math.max(...z);
  const w = z.map((v) => Math.exp(v - mx));
  const desc = z.map((_, i) => i).sort((a, b) => z[b] - z[a] || a - b);
  let kept = z.map(() => true);
  const topK = o.topK ?? 0;
  if (topK > 0 && topK < N) {
    const thr = z[desc[topK - 1]];
    kept = z.map((v) => v >= thr);
  }
  if ((o.topP ?? 1) < 1) {
    const total = w.reduce((s, v, i) => s + (kept[i] ? v : 0), 0);
    let acc = 0, thr = -Infinity;
    for (const i of desc) {
      if (!kept[i]) continue;
      acc += w[i];
      if (acc >= o.topP! * total) {
        thr = z[i];
        break;
      }
    }
    kept = kept.map((k, i) => k && z[i] >= thr);
  }
  const W = w.reduce((s, v, i) => s + (kept[i] ? v : 0), 0);
  const probs = w.map((v, i) => (kept[i] ? v / W : 0));
  let acc = 0, id = -1, margin = Infinity;
  for (let i = 0; i < N; i++) {
    if (!kept[i]) continue;
    acc += probs[i];
    margin = Math.min(margin, Math.abs(acc - u));
    if (id < 0 && acc > u) id = i;
  }
  return { id, kept, probs, margin };
}

async function drawRows(
  rec: Recorder,
  arena: BufferArena,
  logits: Float32Array,
  M: number,
  N: number,
  opts: SampleOptions,
): Promise<Uint32Array> {
  const tx = arena.upload(logits, [M, N], "f32", "logits");
  const out = arena.alloc([M], "u32", "ids");
  sample(rec, out, tx, opts);
  return await rec.read(out) as Uint32Array;
}

/** M copies of one row, sampled in one dispatch; returns the counts per id. */
async function histogram(
  rec: Recorder,
  arena: BufferArena,
  row: Float32Array,
  M: number,
  opts: SampleOptions,
): Promise<number[]> {
  const N = row.length;
  const x = new Float32Array(M * N);
  for (let m = 0; m < M; m++) x.set(row, m * N);
  const ids = await drawRows(rec, arena, x, M, N, opts);
  const counts = new Array(N).fill(0);
  for (const id of ids) {
    ok(id < N, `sampled id ${id} out of range`);
    counts[id]++;
  }
  return counts;
}

function chiSquare(counts: number[], probs: number[], M: number): { chi2: number; df: number } {
  let chi2 = 0, df = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) {
      equal(counts[i], 0, `id ${i} has probability 0 but was sampled ${counts[i]} times`);
      continue;
    }
    const e = probs[i] * M;
    chi2 += (counts[i] - e) ** 2 / e;
    df++;
  }
  return { chi2, df };
}

Deno.test("sample: a tiny temperature gives the argmax", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 21, "acts");
  for (const [M, N] of [[5, 1], [8, 7], [16, 300], [3, 8197]]) {
    const x = randn(M * N, 3 * M + N);
    const ids = await drawRows(rec, arena, x, M, N, { temperature: 1e-4, seed: 1, step: 0 });
    deepEqual(Array.from(ids), Array.from(argmaxRef(x, N)), `sample T→0 ${M}x${N}`);
    arena.reset();
  }
  arena.destroy();
});

Deno.test("sample: χ² goodness of fit against softmax(x/T), 4000 rows in one dispatch", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 21, "acts");
  const M = 4000;
  for (const [N, T] of [[8, 1], [13, 0.7], [16, 1.5]]) {
    const row = randn(N, 40 + N, 1);
    const counts = await histogram(rec, arena, row, M, { temperature: T, seed: 1234, step: 7 });
    const probs = Array.from(softmaxRef(row, N, T));
    const { chi2, df } = chiSquare(counts, probs, M);
    ok(chi2 < CHI2_CRIT_001[df], `χ²=${chi2.toFixed(2)} ≥ ${CHI2_CRIT_001[df]} (df ${df}) for N=${N} T=${T}`);
    arena.reset();
  }
  arena.destroy();
});

Deno.test("sample: top-k=3 only returns the top-3 ids, with their renormalised distribution", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 21, "acts");
  const M = 4000, N = 12;
  const row = randn(N, 77, 0.8);
  const opts = { temperature: 0.9, topK: 3, seed: 99, step: 3 };
  const counts = await histogram(rec, arena, row, M, opts);
  const top3 = new Set(topkRef(row, 3).ids);
  counts.forEach((c, i) =>
    ok(top3.has(i) || c === 0, `id ${i} is not in the top 3 but was drawn ${c} times`)
  );
  const { probs } = replay(row, opts, 0);
  const { chi2, df } = chiSquare(counts, probs, M);
  equal(df, 2);
  ok(chi2 < CHI2_CRIT_001[df], `top-k χ²=${chi2.toFixed(2)}`);
  // Ties at the threshold are all kept: top-2 of [5, 5, 5, 1, ...] keeps the three 5s.
  const tied = new Float32Array(N).fill(1);
  tied[2] = tied[6] = tied[9] = 5;
  const tc = await histogram(rec, arena, tied, 600, { temperature: 1, topK: 2, seed: 5, step: 0 });
  ok(tc[2] > 0 && tc[6] > 0 && tc[9] > 0 && tc[2] + tc[6] + tc[9] === 600, `tied top-k counts ${tc}`);
  arena.destroy();
});

Deno.test("sample: top-p keeps the smallest set with mass ≥ p, renormalised", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 21, "acts");
  const M = 4000, N = 10;
  const row = new Float32Array([2.0, 0.1, 1.2, -1.0, 1.6, 0.4, -0.3, 0.9, 2.3, -2.0]);
  for (const opts of [{ temperature: 1, topP: 0.7 }, { temperature: 0.8, topP: 0.9, topK: 5 }]) {
    const o = { ...opts, seed: 2024, step: 11 };
    const counts = await histogram(rec, arena, row, M, o);
    const { probs, kept } = replay(row, o, 0);
    ok(kept.filter(Boolean).length < N, "the test should actually filter");
    const { chi2, df } = chiSquare(counts, probs, M); // asserts 0 counts outside the nucleus
    ok(chi2 < CHI2_CRIT_001[df], `top-p ${JSON.stringify(opts)} χ²=${chi2.toFixed(2)} (df ${df})`);
    arena.reset();
  }
  arena.destroy();
});

Deno.test("sample: each row's token equals a CPU replay with u = sampleUniform(seed, step, row)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "acts");
  const cases: [number, number, Omit<SampleOptions, "seed" | "step">][] = [
    [64, 7, { temperature: 1 }],
    [48, 300, { temperature: 0.8, topK: 40 }],
    [48, 300, { temperature: 1.2, topP: 0.8 }],
    [8, 8197, { temperature: 1, topK: 50, topP: 0.9 }],
    [32, 257, { temperature: 0.6, topK: 1 }],
  ];
  const r = rng(3);
  for (const [M, N, o] of cases) {
    const seed = Math.floor(r() * 2 ** 32), step = Math.floor(r() * 1000);
    const x = randn(M * N, M + N, 2);
    const opts = { ...o, seed, step, outOffset: 2 };
    const tx = arena.upload(x, [M, N], "f32", "logits");
    const out = arena.alloc([M + 4], "u32", "ring");
    sample(rec, out, tx, opts);
    const got = await rec.read(out);
    let compared = 0;
    for (let m = 0; m < M; m++) {
      const want = replay(x.subarray(m * N, (m + 1) * N), opts, sampleUniform(seed, step, m));
      if (want.margin < 1e-5) continue; // u within rounding of a CDF step: either neighbour is right
      compared++;
      equal(got[2 + m], want.id, `row ${m} of ${M}x${N} ${JSON.stringify(o)}`);
    }
    ok(compared >= M - 1, `only ${compared} of ${M} rows compared`);
    // Same (seed, step) reproduces; another step draws differently somewhere.
    sample(rec, out, tx, opts);
    deepEqual(await rec.read(out), got, "reproducible");
    arena.reset();
  }
  arena.destroy();
});

Deno.test("sample reaches the tail: each draw lands where u falls on the CDF (V = 131072, tail 2.3e-8 per token)", async () => {
  // Row: p(0) = 0.997, every other token 2.3e-8 (tail mass 0.003). Inside the chosen 512-token chunk
  // the walk used to start from the chunk's CDF offset (≈ 0.997), where each 2.3e-8 weight is below
  // ulp/2 and is absorbed, so every tail draw fell back to the chunk's last token (up to 511 tokens,
  // 1.2e-5 of probability, from where u points). The walk now runs relative to the chunk start.
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 21, "tail");
  const N = 131072, seed = 4242;
  const tail = Math.fround(Math.log(2.3e-8 / 0.997));
  const row = new Float32Array(N).fill(tail);
  row[0] = 0;
  const w = Array.from(row, (z) => Math.exp(z));
  const total = w.reduce((a, b) => a + b, 0);
  const steps: number[] = [];
  for (let s = 0; steps.length < 8; s++) if (sampleUniform(seed, s, 0) > 0.9971) steps.push(s);
  const x = arena.upload(row, [1, N], "f32", "logits");
  const out = arena.alloc([steps.length], "u32", "ids");
  steps.forEach((step, i) => sample(rec, out, x, { temperature: 1, seed, step, outOffset: i }));
  const ids = await rec.read(out);
  const bad: string[] = [];
  steps.forEach((step, i) => {
    const goal = sampleUniform(seed, step, 0) * total;
    let lo = 0;
    for (let j = 0; j < ids[i]; j++) lo += w[j];
    const hi = lo + w[ids[i]];
    const err = (goal < lo ? lo - goal : goal > hi ? goal - hi : 0) / total;
    if (!(err < 1e-6)) bad.push(`step ${step}: drew ${ids[i]}, CDF off by ${err.toExponential(2)}`);
  });
  deepEqual(bad, []);
  arena.destroy();
});

Deno.test("sample rejects bad options", async () => {
  const { gpu, rec } = await testGpu();
  const a = new BufferArena(gpu, 1 << 16, "a");
  const x = a.alloc([2, 8], "f32", "x"), out = a.alloc([2], "u32", "out");
  const bad: Partial<SampleOptions>[] = [{ temperature: 0 }, { topP: 0 }, { topP: 1.5 }, { topK: -1 }, {
    seed: -1,
  }, {
    outOffset: 1,
  }];
  for (const b of bad) {
    throws(
      () => sample(rec, out, x, { temperature: 1, seed: 0, step: 0, ...b }),
      ShapeError,
      JSON.stringify(b),
    );
  }
  a.destroy();
});

Deno.test("filteredProbs writes the sampler's kept, renormalised distribution", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "probs");
  type Case = { temperature: number; topK?: number; topP?: number; kernel?: "workgroup" | "lanes" };
  const cases: [number, number, Case][] = [
    [3, 300, { temperature: 0.8, kernel: "workgroup" }],
    [4, 257, { temperature: 1, topK: 7 }],
    [2, 8197, { temperature: 1.2, topP: 0.8 }],
    [3, 100, { temperature: 0.7, topK: 20, topP: 0.9 }],
    // The software kernel (no filter, N % 4 == 0); top-k ≥ N is no filter either.
    [3, 300, { temperature: 0.8, kernel: "lanes" }],
    [17, 8192, { temperature: 1, kernel: "lanes" }],
    [2, 4, { temperature: 0.5, topK: 9, kernel: "lanes" }],
  ];
  for (const [M, N, o] of cases) {
    arena.reset();
    const x = randn(M * N, M * N, 2);
    const tx = arena.upload(x, [M, N], "f32", "logits");
    const out = arena.alloc([M, N], "f32", "probs");
    filteredProbs(rec, out, tx, o);
    const got = await rec.readF32(out);
    const exp = new Float32Array(M * N);
    for (let m = 0; m < M; m++) exp.set(replay(x.subarray(m * N, (m + 1) * N), o, 0).probs, m * N);
    assertAllClose(got, exp, { rtol: 1e-4, atol: 1e-7, name: `probs M=${M} N=${N} ${JSON.stringify(o)}` });
  }
  arena.destroy();
});
