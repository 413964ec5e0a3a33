/**
 * T>0 tree acceptance (`acceptSample`, kernels/accept.wgsl, and `acceptSampleRef`) must be lossless:
 * the emitted tokens are distributed exactly as sampling from the target token by token. Tests,
 * strongest first:
 * 1. the multi-cycle horizon test of the reference (lossless_check.ts: joint of the first H ≥ depth + 1
 *    tokens over cycles with the real uniform stream, χ² at α = 1e-3 + support). Each of five plausible
 *    bugs injected into a copy of the reference fails it (`deno run -A
 *    packages/core/src/speculative/accept_mutants.ts` re-runs the injection; results in that file);
 * 2. a statistical test of the GPU kernel itself: thousands of cycles in one submit, χ² per tree node,
 *    on rows whose children cover the support, rows with a long tail, duplicate and zero-probability
 *    children;
 * 3. deterministic regressions: the p = 0 emission repro, the residual draw's lost tail, duplicate
 *    siblings, a NaN draft row's NONE token, and the WebGPU writable-aliasing rule;
 * 4. the GPU kernel replays the reference exactly (path, tokens, ring, state).
 * The power of each statistical test (smallest shift it detects) is stated at the test.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { acceptSample, commitPath, type SampleAcceptBuffers } from "./accept.ts";
import { acceptSampleRef } from "./accept_ref.ts";
import { HORIZON_CONFIGS, horizonCheck } from "./lossless_check.ts";
import { STATE, STATE_WORDS } from "./state.ts";
import { rng, testGpu } from "../testing/mod.ts";
import { chiSquareTest } from "../testing/stats.ts";
import { BufferArena } from "../gpu/arena.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { sampleUniform } from "../ops/select.ts";
import { copyRows } from "../ops/elementwise.ts";

/** Random distribution rows with a few zeros (as top-k/top-p filtering leaves them). */
function randomProbs(rows: number, V: number, seed: number): Float32Array {
  const r = rng(seed);
  const p = new Float32Array(rows * V);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let v = 0; v < V; v++) {
      const w = r() < 0.15 ? 0 : r() ** 2;
      p[i * V + v] = w;
      s += w;
    }
    for (let v = 0; v < V; v++) p[i * V + v] = Math.fround(p[i * V + v] / s);
  }
  return p;
}

/** GPU buffers for one or more acceptSample cycles of a tree (state: mid-generation, not done). */
function cycleBuffers(
  arena: BufferArena,
  tokens: readonly number[],
  parents: readonly number[],
  probs: Float32Array,
  dp: number,
  o: { committed?: number; cycles?: number; ringSize?: number; logCap?: number } = {},
): SampleAcceptBuffers {
  const N = tokens.length, V = probs.length / N;
  const state = new Uint32Array(STATE_WORDS);
  state[STATE.committed] = o.committed ?? 20;
  state[STATE.outLen] = 3;
  state[STATE.cycles] = o.cycles ?? 0;
  state[STATE.promptLen] = 10;
  state[STATE.maxTokens] = 0x7fffffff;
  const ringSize = o.ringSize ?? 64, histSize = 2 * dp + 1 + (o.logCap ?? 0);
  return {
    probs: arena.upload(probs, [N, V], "f32", "probs"),
    tokens: arena.upload(new Uint32Array(tokens), [N], "u32", "tokens"),
    parents: arena.upload(new Int32Array(parents), [N], "i32", "parents"),
    state: arena.upload(state, [STATE_WORDS], "u32", "state"),
    ring: arena.upload(new Uint32Array(ringSize), [ringSize], "u32", "ring"),
    path: arena.alloc([dp], "u32", "path"),
    seq: arena.alloc([dp + 1], "u32", "seq"),
    hist: arena.upload(new Uint32Array(histSize), [histSize], "u32", "hist"),
    eos: arena.upload(new Uint32Array([0xfffffffe]), [1], "u32", "eos"),
  };
}

/** One GPU cycle: the emitted tokens [accepted drafts.., bonus] read back from `seq`. */
async function gpuCycle(
  rec: Recorder,
  arena: BufferArena,
  tokens: readonly number[],
  parents: readonly number[],
  probs: Float32Array,
  dp: number,
  seed: number,
  cycles = 0,
): Promise<{ nodes: number[]; emitted: number[] }> {
  const b = cycleBuffers(arena, tokens, parents, probs, dp, { cycles });
  acceptSample(rec, b, dp, 0, seed);
  const st = await rec.read(b.state) as Uint32Array;
  const L = st[STATE.lastAccept];
  const path = Array.from(await rec.read(b.path) as Uint32Array).slice(0, L + 1);
  const seq = Array.from(await rec.read(b.seq) as Uint32Array);
  return { nodes: path, emitted: seq.slice(1, L + 2) };
}

Deno.test("T>0 acceptance is lossless over a multi-cycle horizon (reference, real uniform stream, exact joint)", () => {
  // Power (n = 1e5, α = 1e-3; 50 % power at noncentrality λ, by simulation): config 0 (109 cells, df
  // 108) λ = 52, Σ Δ²/p = 5.2e-4 — moving 0.0016 of probability between two cells of 0.01 (the typical
  // cell is 0.009) or 0.0036 between two 0.05 cells; config 1 (261 cells, df 243
  // after pooling) Σ Δ²/p = 7.4e-4 —
  // 0.0019 between two 0.01 cells. Seven injected bugs (the review's five, no renormalisation, residual
  // keeping the rejected tokens) give χ² ≥ 18 000 against critical values 159 / 317 (accept_mutants.ts).
  for (const c of HORIZON_CONFIGS) {
    const r = horizonCheck(acceptSampleRef, c);
    console.log(`  ${JSON.stringify(c)}: ${r.summary}; ${r.cells} cells, τ−1 = ${r.meanAccepted.toFixed(2)}`);
    ok(r.pass, `${JSON.stringify(c)}: ${r.summary}`);
    ok(r.meanAccepted > 1, `drafts accepted per cycle ${r.meanAccepted}: the deep levels are not exercised`);
    ok(r.crossedCycle > 0.5, `only ${r.crossedCycle} of the samples crossed a cycle boundary`);
  }
});

// Statistical test of the kernel: tree over V = 1000 (not a multiple of 256):
//   node 0 root (tok 42): support {7, 9, 500}, all three drafted → the children cover the support
//   node 1 (tok 7): long tail: 0.3 / 0.2 on tokens 0 / 1, 0.5 Zipf over 2..999 (every 7th zero);
//     children tok 0 (node 4), tok 1 (node 5), tok 0 again (node 6, a duplicate: never accepted)
//   node 2 (tok 9): support {3, 11}; children tok 5 (node 7, p = 0: never accepted), tok 3 (node 8)
//   node 3 (tok 500), 4, 6, 7, 8, 9: leaves; node 5 (tok 1): child tok 2 (node 9, depth 3)
const STAT_PARENTS = [-1, 0, 0, 0, 1, 1, 1, 2, 2, 5];
const STAT_TOKENS = [42, 7, 9, 500, 0, 1, 0, 5, 3, 2];

function statRows(V: number): Float32Array {
  const N = STAT_TOKENS.length, r = rng(2024);
  const p = new Float64Array(N * V);
  const set = (n: number, w: (v: number) => number) => {
    let s = 0;
    for (let v = 0; v < V; v++) s += p[n * V + v] = w(v);
    for (let v = 0; v < V; v++) p[n * V + v] /= s;
  };
  set(0, (v) => ({ 7: 0.45, 9: 0.35, 500: 0.2 } as Record<number, number>)[v] ?? 0);
  const zipf = (v: number) => (v % 7 === 0 ? 0 : 1 / (v - 1) ** 1.2);
  let zs = 0;
  for (let v = 2; v < V; v++) zs += zipf(v);
  set(1, (v) => (v === 0 ? 0.3 : v === 1 ? 0.2 : 0.5 * zipf(v) / zs));
  set(2, (v) => (v === 3 ? 0.6 : v === 11 ? 0.4 : 0));
  set(3, () => r());
  const perm = Array.from({ length: V }, (_, i) => i).sort(() => r() - 0.5);
  set(4, (v) => (v === 998 ? 0 : 1 / (perm[v] + 1))); // Zipf in a random order; 998 impossible
  set(5, (v) => (v === 2 ? 0.7 : v >= 300 && v < 500 ? 0.3 / 200 : 0));
  set(6, (v) => (v === 998 ? 1 : 0)); // the duplicate's row: reaching it would emit 998 after (7, 0)
  set(7, (v) => (v === 997 ? 1 : 0));
  set(8, (v) => ([17, 170, 401, 650, 999].includes(v) ? 1 + v / 100 : 0));
  set(9, () => r() ** 3);
  return Float32Array.from(p);
}

Deno.test("acceptSample on the GPU is lossless: χ² per tree node over 4000 cycles recorded in one submit", async () => {
  // Power (α = 1e-4 per node, Bonferroni over 10 nodes; 50 % power, by simulation): root (n = 4000,
  // df 2) Σ Δ²/p = 4.4e-3 — moving 0.029 between the 0.45 and 0.35 cells; node 2 (n ≈ 1440, df 1)
  // 0.05 between its 0.6 / 0.4 cells; node 1 (n ≈ 1770, 69 pooled cells) Σ Δ²/p = 0.03 — 0.06 between
  // tokens 0 and 1; deeper nodes (n 230–870) Σ Δ²/p 0.02–0.19. It checks the kernel itself (a bug
  // shared with the reference passes the replay tests); the horizon test above carries the power.
  const { gpu, rec } = await testGpu();
  const V = 1000, N = STAT_TOKENS.length, dp = 4, K = 4000, seed = 77;
  const rows = statRows(V);
  const arena = new BufferArena(gpu, 1 << 22, "accept-sample-stats");
  const b = cycleBuffers(arena, STAT_TOKENS, STAT_PARENTS, rows, dp, {
    committed: 0,
    ringSize: K * (dp + 1) + 8,
    logCap: K,
  });
  const pristine = arena.upload(rows, [N, V], "f32", "pristine");
  for (let c = 0; c < K; c++) {
    copyRows(rec, b.probs, { offset: 0, stride: N * V }, pristine, { offset: 0, stride: N * V }, 1, N * V);
    acceptSample(rec, b, dp, 0, seed);
  }
  const ring = await rec.read(b.ring) as Uint32Array;
  const hist = await rec.read(b.hist) as Uint32Array;
  const st = await rec.read(b.state) as Uint32Array;
  equal(st[STATE.cycles], K);
  // Split the ring by cycle (the per-cycle log holds each cycle's accepted length) and attribute
  // each emitted token to the node it follows; a token maps to the first child carrying it.
  const next = Array.from({ length: N }, () => new Map<number, number>());
  const arrivals = new Array(N).fill(0);
  let at = 1;
  for (let c = 0; c < K; c++) {
    const L = hist[2 * dp + 1 + c];
    let node = 0;
    for (let j = 0; j <= L; j++) {
      const t = ring[at++];
      arrivals[node]++;
      next[node].set(t, (next[node].get(t) ?? 0) + 1);
      if (j < L) {
        const child = STAT_PARENTS.findIndex((p, i) => p === node && STAT_TOKENS[i] === t);
        ok(child > 0, `cycle ${c}: accepted token ${t} is not a child of node ${node}`);
        node = child;
      }
    }
  }
  equal(at, st[STATE.committed] + 1, "ring length = Σ (L + 1)");
  equal(arrivals[6], 0, "the duplicate sibling was accepted");
  equal(arrivals[7], 0, "a child with p = 0 was accepted");
  for (let n = 0; n < N; n++) {
    if (arrivals[n] === 0) continue;
    const probs = new Map<number, number>();
    for (let v = 0; v < V; v++) probs.set(v, rows[n * V + v]);
    const r = chiSquareTest(next[n], probs, arrivals[n], { alpha: 1e-4 });
    console.log(`  node ${n} (${arrivals[n]} arrivals): ${r.summary}`);
    ok(r.pass, `node ${n}: ${r.summary}`);
  }
  ok(arrivals[9] > 150, `depth 3 reached only ${arrivals[9]} times`);
  arena.destroy();
});

Deno.test("regression: a token with p = 0 is never emitted when every child is rejected by f32 rounding", async () => {
  // Row p(7) = 1 − 2⁻²², p(9) = 2⁻²³ (f32 sum 1 − 2⁻²³), children 7 and 9: u₀ = 1 − 2⁻²³ rejects 7,
  // u₁ = 0.607 rejects 9 (0.607·2⁻²² ≥ 2⁻²³), and the residual row is all zero. The emitted token must
  // be 7 or 9 (it used to be token 0, whose p is 0).
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "p0");
  const seed = 3044609, V = 16, tokens = [5, 7, 9], parents = [-1, 0, 0];
  equal(sampleUniform(seed, 0, 0), 1 - 2 ** -23, "repro precondition: u₀");
  ok(sampleUniform(seed, 0, 1) * 2 ** -22 >= 2 ** -23, "repro precondition: u₁ rejects token 9");
  const probs = new Float32Array(3 * V);
  probs[7] = 1 - 2 ** -22;
  probs[9] = 2 ** -23;
  probs[V + 3] = probs[2 * V + 4] = 1;
  const ref = acceptSampleRef(tokens, parents, probs, V, 2, (d) => sampleUniform(seed, 0, d));
  const gpuRes = await gpuCycle(rec, arena, tokens, parents, probs, 2, seed);
  const bad = [["reference", ref.bonus], ["GPU", gpuRes.emitted[0]]].filter(([, t]) =>
    !(probs[t as number] > 0)
  );
  deepEqual(bad, [], `emitted a token with p = 0: ${JSON.stringify(bad)}`);
  deepEqual(gpuRes.emitted, [...ref.tokens.slice(1), ref.bonus], "GPU = reference");
  arena.destroy();
});

/** The review's tail row: p(0) = 0.997, every other token 2.3e-8 (tail mass 0.003), V = 131072. */
function tailRow(V: number): Float32Array {
  const p = new Float32Array(V).fill(2.3e-8);
  p[0] = 0.997;
  return p;
}

/** |F(i) − goal| in probability: how far the drawn token's CDF interval is from u·total (f64). */
function cdfError(row: Float32Array, i: number, u: number): number {
  let total = 0;
  for (const w of row) total += w;
  let lo = 0;
  for (let j = 0; j < i; j++) lo += row[j];
  const goal = u * total, hi = lo + row[i];
  return (goal < lo ? lo - goal : goal > hi ? goal - hi : 0) / total;
}

Deno.test("regression: the residual/bonus draw reaches the tail (V = 131072, tail 2.3e-8 per token)", async () => {
  // With one thread summing V weights in f32, every weight after the mode was absorbed (≤ ulp/2), so
  // no tail token was ever drawn. Each draw must land within 1e-6 of u·total on the f64 CDF (it was
  // off by the whole tail: token 0). Seeds are chosen so that u falls in the tail.
  const { gpu, rec } = await testGpu();
  const V = 131072;
  const row = tailRow(V);
  const bad: string[] = [];
  // Reference with fixed u.
  for (const u of [0.99705, 0.998, 0.9991, 0.99995]) {
    const ref = acceptSampleRef([0], [-1], row, V, 1, () => u);
    const err = cdfError(row, ref.bonus, u);
    if (!(err < 1e-6)) bad.push(`reference: u = ${u} drew ${ref.bonus}, CDF off by ${err.toExponential(2)}`);
  }
  // GPU: the first 6 seeds whose u(seed, 0, 0) lands in the tail.
  const seeds: number[] = [];
  for (let s = 1; seeds.length < 6; s++) if (sampleUniform(s, 0, 0) > 0.9971) seeds.push(s);
  const arena = new BufferArena(gpu, 1 << 21, "tail");
  for (const seed of seeds) {
    arena.reset();
    const u = sampleUniform(seed, 0, 0);
    const { emitted } = await gpuCycle(rec, arena, [0], [-1], row, 1, seed);
    const ref = acceptSampleRef([0], [-1], row, V, 1, (d) => sampleUniform(seed, 0, d));
    const err = cdfError(row, emitted[0], u);
    if (!(err < 1e-6)) {
      bad.push(`GPU: seed ${seed} (u = ${u}) drew ${emitted[0]}, CDF off by ${err.toExponential(2)}`);
    }
    if (emitted[0] !== ref.bonus) bad.push(`seed ${seed}: GPU ${emitted[0]} ≠ reference ${ref.bonus}`);
  }
  arena.destroy();
  deepEqual(bad, []);
});

Deno.test("regression: duplicate sibling tokens — the second copy is never accepted; GPU = reference", async () => {
  const { gpu, rec } = await testGpu();
  const V = 8, dp = 3;
  const tokens = [1, 3, 3, 4, 2], parents = [-1, 0, 0, 0, 1];
  const probs = randomProbs(tokens.length, V, 5);
  probs[3] = 0.5; // p(3) at the root (the row need not sum to 1 for this check)
  // u₀ = 0.99 rejects node 1 (token 3); u₁ = 0 would accept anything with p > 0: the duplicate's p
  // must already be 0 (it was zeroed with the first copy), so node 2 is rejected too.
  const us = [0.99, 0, 0.5, 0.5, 0.5];
  const ref = acceptSampleRef(tokens, parents, probs, V, dp, (d) => us[d]);
  ok(!ref.nodes.includes(2), `reference accepted the duplicate: nodes ${ref.nodes}`);
  const arena = new BufferArena(gpu, 1 << 16, "dup");
  for (let seed = 1; seed <= 24; seed++) {
    arena.reset();
    const g = await gpuCycle(rec, arena, tokens, parents, probs, dp, seed, seed);
    const r = acceptSampleRef(tokens, parents, probs, V, dp, (d) => sampleUniform(seed, seed, d));
    deepEqual(g.nodes, r.nodes, `seed ${seed}: path`);
    deepEqual(g.emitted, [...r.tokens.slice(1), r.bonus], `seed ${seed}: tokens`);
    ok(!g.nodes.includes(2), `seed ${seed}: duplicate accepted`);
  }
  arena.destroy();
});

Deno.test("regression: a NONE draft token (NaN draft row) is never accepted nor read out of its row", async () => {
  // tokens[2] = 0xffffffff under node 1: row 1 offset + NONE wraps to row 0's last entry (0.6 here),
  // which used to accept NONE 60 % of the time and emit it.
  const { gpu, rec } = await testGpu();
  const V = 16, dp = 3, NONE = 0xffffffff;
  const tokens = [1, 5, NONE], parents = [-1, 0, 1];
  const probs = new Float32Array(3 * V);
  probs[5] = 0.4;
  probs[V - 1] = 0.6;
  probs[V + 2] = probs[V + 6] = 0.5;
  probs[2 * V + 3] = 1;
  const arena = new BufferArena(gpu, 1 << 16, "none");
  let reached = 0;
  for (let seed = 1; seed <= 24; seed++) {
    arena.reset();
    const g = await gpuCycle(rec, arena, tokens, parents, probs, dp, seed);
    const r = acceptSampleRef(tokens, parents, probs, V, dp, (d) => sampleUniform(seed, 0, d));
    for (const t of g.emitted) ok(t < V, `seed ${seed}: emitted ${t}`);
    deepEqual(g.emitted, [...r.tokens.slice(1), r.bonus], `seed ${seed}: GPU = reference`);
    if (g.nodes.includes(1)) reached++;
  }
  ok(reached >= 3, `node 1 reached ${reached} times`);
  arena.destroy();
});

Deno.test("acceptSample and commitPath bind no GPU range twice as writable (WebGPU/Dawn reject aliasing)", async () => {
  // Both entry points share accept.wgsl's binding slots and leave some unused; a placeholder tensor
  // bound there again (the state at slot 3 for accept_sample, tokens at 2 and 3 for commit_path)
  // was accepted by wgpu but fails WebGPU validation in Dawn (gpuweb #2441).
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "alias");
  const b = cycleBuffers(arena, [1, 2], [-1, 0], new Float32Array(2 * 8).fill(0.125), 2);
  const bound: (readonly (Tensor | null)[])[] = [];
  const dispatch = rec.dispatch;
  rec.dispatch = (k, tensors, params, groups) => {
    bound.push(tensors);
    dispatch.call(rec, k, tensors, params, groups);
  };
  try {
    acceptSample(rec, b, 2, 0, 1);
    commitPath(rec, { ...b, result: arena.upload(new Uint32Array([0, 3]), [2], "u32", "result") }, 0);
  } finally {
    rec.dispatch = dispatch;
  }
  await rec.finish();
  equal(bound.length, 2);
  for (const tensors of bound) {
    const t = tensors.filter((x): x is Tensor => x !== null);
    for (let i = 0; i < t.length; i++) {
      for (let j = i + 1; j < t.length; j++) {
        const overlap = t[i].buffer === t[j].buffer && t[i].offset < t[j].offset + t[j].bindingSize &&
          t[j].offset < t[i].offset + t[i].bindingSize;
        ok(!overlap, `bindings ${i} (${t[i].name}) and ${j} (${t[j].name}) overlap`);
      }
    }
  }
  arena.destroy();
});

// Tree: root 0 with children 1, 2, 3 (tokens 0, 2, 4); node 2 has children 4, 5 (tokens 1, 3); node 4 has child 6.
const PARENTS = [-1, 0, 0, 0, 2, 2, 4];
const TOKENS = [9, 0, 2, 4, 1, 3, 0];

Deno.test("acceptSample on the GPU replays the reference exactly (path, tokens, ring, state)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 20, "accept-sample");
  const V = 300, dp = 4;
  const lengths = new Set<number>();
  for (let seed = 1; seed <= 16; seed++) {
    arena.reset();
    const probs = randomProbs(TOKENS.length, V, seed);
    // On odd seeds put most of each row's mass on its drafted children, so long paths get accepted.
    if (seed % 2) {
      for (let c = 1; c < TOKENS.length; c++) probs[PARENTS[c] * V + TOKENS[c]] += 2;
      for (let i = 0; i < TOKENS.length; i++) {
        const row = probs.subarray(i * V, (i + 1) * V);
        const s = row.reduce((a, b) => a + b, 0);
        row.forEach((v, j) => (row[j] = Math.fround(v / s)));
      }
    }
    const cycles = seed * 3, committed = 20;
    const ref = acceptSampleRef(TOKENS, PARENTS, probs, V, dp, (d) => sampleUniform(seed, cycles, d));
    const b = cycleBuffers(arena, TOKENS, PARENTS, probs, dp, { committed, cycles });
    acceptSample(rec, b, dp, 1, seed);
    const L = ref.nodes.length - 1;
    const path = await rec.read(b.path) as Uint32Array;
    const seq = await rec.read(b.seq) as Uint32Array;
    const ring = await rec.read(b.ring) as Uint32Array;
    const st = await rec.read(b.state) as Uint32Array;
    deepEqual(Array.from(path.subarray(0, L + 1)), ref.nodes, `seed ${seed}: path`);
    deepEqual(Array.from(seq.subarray(0, L + 2)), [...ref.tokens, ref.bonus], `seed ${seed}: seq`);
    deepEqual(Array.from(ring.subarray(committed + 1, committed + L + 2)), [
      ...ref.tokens.slice(1),
      ref.bonus,
    ]);
    equal(st[STATE.committed], committed + L + 1);
    equal(st[STATE.outLen], 3 + L + 1);
    equal(st[STATE.lastAccept], L);
    equal(st[STATE.root], ref.bonus, `seed ${seed}: next root`);
    lengths.add(L);
  }
  ok(lengths.size >= 3, `accepted lengths seen: ${[...lengths]}`);
  arena.destroy();
});

Deno.test("acceptSample at a real vocabulary size (8192) replays the reference, padding included", async () => {
  // Regression: with a runtime-indexed private array for the rejected tokens, llvmpipe never drew
  // some tokens and skipped the padding loops (the fix zeroes rejected p(x) in the probs row).
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "accept-sample-8192");
  const V = 8192, dp = 4;
  const tokens = [2947, 22, 468, 28, 28, 468], parents = [-1, 0, 0, 0, 1, 1];
  const probs = new Float32Array(tokens.length * V);
  probs[422] = 0.256;
  probs[2947] = 0.288;
  probs[4599] = 0.456;
  probs[22] = 0; // the drafted children have no mass: all rejected, bonus from the root row
  for (let r = 1; r < tokens.length; r++) probs[r * V + 5] = 1;
  const seen = new Set<number>();
  for (let seed = 1; seed <= 24; seed++) {
    arena.reset();
    const b = cycleBuffers(arena, tokens, parents, probs, dp, { committed: 10 });
    acceptSample(rec, b, dp, 0, seed);
    const ref = acceptSampleRef(tokens, parents, probs, V, dp, (d) => sampleUniform(seed, 0, d));
    const seq = await rec.read(b.seq) as Uint32Array;
    const L = ref.nodes.length - 1;
    deepEqual(Array.from(seq), [...ref.tokens, ...new Array(dp + 1 - L - 1).fill(ref.bonus)], `seed ${seed}`);
    seen.add(ref.bonus);
  }
  ok(seen.has(2947) && seen.has(422) && seen.has(4599), `bonus tokens seen: ${[...seen]}`);
  arena.destroy();
});
