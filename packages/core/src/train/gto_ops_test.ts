import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { BufferArena } from "../gpu/arena.ts";
import { ShapeError } from "../errors.ts";
import { logSoftmaxRef } from "../reference/ops.ts";
import { assertAllClose, randn, rng, testGpu } from "../testing/mod.ts";
import { buildDraftTree, type DraftTree, resolveTreeConfig } from "../tree/tree_ref.ts";
import { TreeBuffers, treeFinalize, treeLevel } from "../tree/tree_ops.ts";
import {
  acceptedPath,
  clippedSurrogate,
  debiasRewards,
  evaluateTree,
  groupAdvantages,
  pathRatio,
  type RewardAggregate,
  type StdKind,
} from "./gto_ref.ts";
import {
  GtoRewardBuffers,
  recordGtoCoefficients,
  recordHardWeights,
  recordPathLogProbs,
  recordTreePositions,
  recordTreeRewards,
} from "./gto_ops.ts";

const NONE = 0xffffffff;
const STOP = 0xfffffffe;

/** P random trees grown on the GPU (TreeBuffers) and by buildDraftTree from the same tables. */
async function growTrees(P: number, N: number, D: number, k: number, Vd: number, V: number, seed: number) {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "acts");
  const cfg = { totalTokens: N, depth: D, topK: k };
  const d2tHost = new Int32Array(Vd).map((_, d) => ((d * 7 + seed) % V) - d); // distinct targets in [0, V)
  const d2t = arena.upload(d2tHost, [Vd], "i32", "d2t");
  const tb = new TreeBuffers(gpu, { ...cfg, draftVocab: Vd, trees: P }, d2t);
  const { topK } = resolveTreeConfig(cfg);
  const tabs = Array.from({ length: P }, (_, p) =>
    Array.from({ length: D + 1 }, (_, l) => {
      const z = randn((l === 0 ? 1 : topK) * Vd, seed * 1000 + p * 31 + l, 2);
      return logSoftmaxRef(p % 2 ? z.map((v) => Math.round(v)) : z, Vd); // odd trees: ties
    }));
  const roots = Array.from({ length: P }, (_, p) => (p * 13 + 1) % V);
  const refs: DraftTree[] = tabs.map((t, p) =>
    buildDraftTree({
      initialLogProbs: t[0],
      root: roots[p],
      d2t: d2tHost,
      config: cfg,
      expand: (l) => t[l + 1],
    })
  );
  for (let l = 0; l <= D; l++) {
    const R = l === 0 ? 1 : k;
    const lp = new Float32Array(P * R * Vd);
    tabs.forEach((t, p) => lp.set(t[l], p * R * Vd));
    treeLevel(rec, tb, arena.upload(lp, [P * R, Vd], "f32", `lp${l}`), l);
  }
  treeFinalize(rec, tb, { meta: arena.upload(new Uint32Array(roots), [P], "u32", "roots"), index: 0 });
  return { gpu, rec, arena, tb, refs };
}

/** Continuations: a branch's own tokens (then NONE or a wrong token), a one-step match, or random. */
function continuations(refs: DraftTree[], W: number, V: number, seed: number): Uint32Array {
  const r = rng(seed);
  const cont = new Uint32Array(refs.length * (W - 1)).fill(NONE);
  refs.forEach((t, p) => {
    const row = cont.subarray(p * (W - 1), (p + 1) * (W - 1));
    const leaf = Math.floor(r() * t.numLeaves);
    const path: number[] = [];
    for (let j = 1; j <= t.maxDepth; j++) {
      const node = t.retrieve[leaf * (t.maxDepth + 1) + j];
      if (node >= 0) path.push(t.tokens[node]);
    }
    const kind = p % 4;
    // p ≡ 0, 3 (mod 8): the text ended there (STOP caps greedy acceptance); otherwise it was cut (NONE).
    const end = (n: number) => (p % 8 === 0 || p % 8 === 3) && n < W - 1 ? row[n] = STOP : 0;
    if (kind === 0) {
      row.set(path); // full branch, then the sequence ends
      end(path.length);
    } else if (kind === 1) {
      row.set([...path.slice(0, 1), (path[1] ?? 0) + 1].map((x) => x % V).slice(0, W - 1));
    } else if (kind === 2) { for (let j = 0; j < W - 1; j++) row[j] = Math.floor(r() * V); }
    else {
      row.set(path.slice(0, path.length - 1)); // truncated by the sequence end
      end(path.length - 1);
    }
  });
  return cont;
}

Deno.test("gto kernels: node log-probs, branch L, rewards, Ŝ and greedy length equal gto_ref", async () => {
  let capped = 0; // trees whose greedy walk was cut where the text ended
  for (
    const [P, N, D, k, Vd, V, chunks] of [[3, 60, 7, 10, 40, 301, 1], [17, 16, 3, 4, 20, 97, 3], [
      5,
      2,
      1,
      1,
      5,
      33,
      5,
    ]]
  ) {
    const { gpu, rec, arena, tb, refs } = await growTrees(P, N, D, k, Vd, V, P + N);
    const W = tb.config.pathWidth;
    const gb = new GtoRewardBuffers(gpu, { trees: P, totalTokens: N });
    const logitsHost = randn(P * N * V, 77 + P, 3);
    // Every third tree: the target's argmax after each node is that node's first child (long greedy walks).
    refs.forEach((t, p) => {
      if (p % 3 !== 0) return;
      for (let j = N - 1; j >= 1; j--) logitsHost[(p * N + t.parents[j]) * V + t.tokens[j]] += 20;
    });
    let walked = 0, greedy = 0;
    const contHost = continuations(refs, W, V, 5 + P);
    const cont = arena.upload(contHost, [P, W - 1], "u32", "cont");
    const eta = P === 17 ? 2.5 : 1;
    // Verification in chunks of whole trees (tree0 offsets), as the trainer does.
    const per = Math.ceil(P / chunks);
    for (let t0 = 0; t0 < P; t0 += per) {
      const c = Math.min(per, P - t0);
      const lg = arena.upload(
        logitsHost.subarray(t0 * N * V, (t0 + c) * N * V),
        [c * N, V],
        "f32",
        `logits${t0}`,
      );
      recordTreeRewards(rec, gb, tb, lg, cont, { eta, tree0: t0 });
    }
    const [nodes, branches, stats] = await Promise.all([
      rec.read(gb.nodes),
      rec.readF32(gb.branches),
      rec.readF32(gb.treeStats),
    ]);
    const nodeF = new Float32Array(nodes.buffer, nodes.byteOffset, nodes.length);
    refs.forEach((tree, p) => {
      const label = `P ${P} N ${N} tree ${p}`;
      const c = Array.from(contHost.subarray(p * (W - 1), (p + 1) * (W - 1)));
      const stop = c.indexOf(STOP);
      const tLogits = logitsHost.subarray(p * N * V, (p + 1) * N * V);
      const ev = evaluateTree(tree, tLogits, V, eta, stop < 0 ? Infinity : stop);
      if (ev.greedyLength < evaluateTree(tree, tLogits, V, eta).greedyLength) capped++;
      const lp = Array.from({ length: N }, (_, j) => nodeF[2 * (p * N + j)]);
      assertAllClose(lp, ev.logProbs, { atol: 2e-6, rtol: 1e-6, name: `${label} log p_T` });
      deepEqual(
        Array.from({ length: N }, (_, j) => nodes[2 * (p * N + j) + 1]),
        Array.from(ev.greedyOk),
        label,
      );
      const L = new Float64Array(N - 1);
      L.set(ev.L);
      assertAllClose(branches.subarray(p * (N - 1), (p + 1) * (N - 1)), L, {
        atol: 1e-6,
        rtol: 1e-6,
        name: `${label} L`,
      });
      const row = stats.subarray(p * 8, p * 8 + 8);
      assertAllClose([row[0], row[1], row[2]], [ev.rewards.lse, ev.rewards.max, ev.rewards.mean], {
        atol: 1e-6,
        rtol: 1e-6,
        name: `${label} rewards`,
      });
      const end = c.findIndex((x) => x === NONE || x === STOP);
      const S = acceptedPath(tree, end < 0 ? c : c.slice(0, end));
      equal(row[3], S.length, `${label} l`);
      walked += S.length > 1 ? 1 : 0;
      greedy += ev.greedyLength > 1 ? 1 : 0;
      equal(row[4], S.length ? tree.nodeScores[S[S.length - 1]] : 0, `${label} log M(Ŝ) = node score`);
      equal(row[5], ev.greedyLength, `${label} greedy length`);
      equal(row[6], tree.numLeaves, `${label} branches`);
      equal(row[7], S.length ? S[S.length - 1] : 0, `${label} last node`);
    });
    if (N > 2) ok(walked > 0 && greedy > 0, `P ${P}: some data and greedy paths longer than 1`);
    throws(
      () => recordTreeRewards(rec, gb, tb, arena.alloc([N + 1, V], "f32", "bad"), cont),
      /bad must be \(count/,
    );
    throws(
      () => recordTreeRewards(rec, gb, tb, arena.alloc([N, V], "f32", "ok"), cont, { tree0: P }),
      /outside/,
    );
    gb.destroy();
    tb.destroy();
    arena.destroy();
  }
  ok(capped > 0, "some greedy walks ran past the end of the text and were capped");
});

Deno.test("gto_coeff equals gto_ref: debias, group advantages, ratio, clip, coefficients", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "acts");
  const P = 16;
  const r = rng(9);
  const statsM = new Float32Array(P * 8), statsM0 = new Float32Array(P * 8), logM0 = new Float32Array(P);
  for (let i = 0; i < P; i++) {
    for (let c = 0; c < 3; c++) {
      statsM[i * 8 + c] = 1 + 3 * r();
      statsM0[i * 8 + c] = 1 + 3 * r();
    }
    const l = i % 5; // includes l = 0
    statsM[i * 8 + 3] = l;
    statsM[i * 8 + 4] = l ? -l * r() : 0;
    logM0[i] = l ? statsM[i * 8 + 4] + (r() - 0.5) * 2 * l : 0; // ratios well outside [0.8, 1.2] too
  }
  // Group 2 (rows 8..11 with m = 4): equal debiased rewards.
  for (let i = 8; i < 12; i++) for (let c = 0; c < 3; c++) statsM[i * 8 + c] = statsM0[i * 8 + c] + 0.3;
  const tm = arena.upload(statsM, [P, 8], "f32", "treesM");
  const t0 = arena.upload(statsM0, [P, 8], "f32", "treesM0");
  const lm0 = arena.upload(logM0, [P], "f32", "logM0");
  const out = arena.alloc([P, 8], "f32", "coef");
  const cases: [number, RewardAggregate, boolean, StdKind, number, number][] = [
    [4, "lse", true, "sample", 0.2, P],
    [8, "max", true, "population", 0.1, 3 * P],
    [1, "mean", false, "sample", 0.3, P],
    [16, "lse", false, "sample", 0, P],
  ];
  for (const [m, agg, debias, std, eps, total] of cases) {
    recordGtoCoefficients(rec, out, tm, debias ? t0 : null, lm0, {
      groupSize: m,
      aggregate: agg,
      stdFloor: 1e-4,
      std,
      clipEps: eps,
      totalPrefixes: total,
    });
    const got = await rec.readF32(out);
    const col = { lse: 0, max: 1, mean: 2 }[agg];
    const R = debiasRewards(
      Array.from({ length: P }, (_, i) => statsM[i * 8 + col]),
      debias ? Array.from({ length: P }, (_, i) => statsM0[i * 8 + col]) : null,
    );
    const A = groupAdvantages(R, m, 1e-4, std);
    const l = Array.from({ length: P }, (_, i) => statsM[i * 8 + 3]);
    const s = l.map((li, i) => pathRatio(statsM[i * 8 + 4], logM0[i], li));
    // The GPU averages over `total` prefixes: scale the reference's 1/P to 1/total.
    const ref = clippedSurrogate(s, A, l, eps);
    const label = `m ${m} ${agg} debias ${debias} ${std} ε ${eps}`;
    const colOf = (c: number) => Array.from({ length: P }, (_, i) => got[i * 8 + c]);
    assertAllClose(colOf(0), R, { atol: 1e-6, rtol: 1e-6, name: `${label} R` });
    assertAllClose(colOf(1), A, { atol: 2e-5, rtol: 2e-5, name: `${label} A` });
    assertAllClose(colOf(2), s, { atol: 1e-6, rtol: 1e-6, name: `${label} s` });
    assertAllClose(colOf(3), Array.from(ref.coeffs, (c) => c * P / total), {
      atol: 1e-6,
      rtol: 2e-5,
      name: `${label} coefficient`,
    });
    assertAllClose(colOf(4), ref.terms, { atol: 1e-6, rtol: 2e-5, name: `${label} term` });
    deepEqual(colOf(5), Array.from(ref.clipped), `${label} clipped`);
    deepEqual(colOf(6), l, `${label} l`);
    if (debias && m === 4) deepEqual(colOf(1).slice(8, 12), [0, 0, 0, 0], "equal rewards: A = 0 exactly");
    for (let i = 0; i < P; i++) if (l[i] === 0) equal(got[i * 8 + 3], 0, "l = 0: no gradient");
  }
  throws(() => recordGtoCoefficients(rec, out, tm, t0, lm0, { groupSize: 3 }), /divisor/);
  throws(() => recordGtoCoefficients(rec, out, tm, t0, lm0, { totalPrefixes: 0 }), /totalPrefixes/);
  throws(() => recordGtoCoefficients(rec, out, tm, t0, arena.alloc([P + 1], "f32", "x")), ShapeError);
  arena.destroy();
});

Deno.test("recordTreePositions: prefix + depth (verification) and prefix + e (expansion)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "acts");
  const pre = arena.upload(new Uint32Array([0, 0, 7, 30, 12]), [5], "u32", "prefixes");
  const depths = arena.upload(
    new Int32Array([9, 9, 0, 1, 1, 2, 0, 1, 2, 3, 0, 1, 1, 1]),
    [14],
    "i32",
    "depths",
  );
  const out = arena.alloc([8], "u32", "pos");
  recordTreePositions(rec, out, { meta: pre, index: 3 }, {
    perTree: 4,
    offsets: { tensor: depths, offset: 6 },
  });
  deepEqual(Array.from(await rec.read(out)), [30, 31, 32, 33, 12, 13, 13, 13]);
  const out2 = arena.alloc([6], "u32", "pos2");
  recordTreePositions(rec, out2, { meta: pre, index: 2 }, { perTree: 2, add: 5 });
  deepEqual(Array.from(await rec.read(out2)), [12, 12, 35, 35, 17, 17]);
  throws(() => recordTreePositions(rec, out, { meta: pre, index: 4 }, { perTree: 4 }), /outside prefixes/);
  throws(() => recordTreePositions(rec, out, { meta: pre, index: 0 }, { perTree: 3 }), /divide/);
  arena.destroy();
});

Deno.test("recordHardWeights / recordPathLogProbs: weights on Ŝ's TTT rows, path log-probs gathered back", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "acts");
  // 3 prefixes on TTT rows 5, 0, 9 (of 12 rows, stride 16), l = 2, 0, 3; coefficient column 3.
  const src = new Float32Array(3 * 8);
  [[2, -0.5], [0, 4], [3, 0.25]].forEach(([l, c], p) => {
    src[p * 8 + 6] = l;
    src[p * 8 + 3] = c;
  });
  const rowMap = new Int32Array(12).fill(-1);
  [5, 0, 9].forEach((t, p) => rowMap[t] = p);
  const steps = 4, stride = 16;
  const out = arena.alloc([steps * stride], "f32", "w");
  const tm = arena.upload(rowMap, [12], "i32", "rowMap"), ts = arena.upload(src, [3, 8], "f32", "coef");
  recordHardWeights(rec, out, tm, ts, {
    steps,
    stride,
    rows: 12,
    lengthCol: 6,
    valueCol: 3,
    alpha: -2,
    beta: 0,
  });
  const want = new Float32Array(steps * stride);
  for (const k of [0, 1]) want[k * stride + 5] = 1; // −2 · −0.5
  for (const k of [0, 1, 2]) want[k * stride + 9] = -0.5; // −2 · 0.25
  deepEqual(Array.from(await rec.readF32(out)), Array.from(want));
  recordHardWeights(rec, out, tm, ts, {
    steps,
    stride,
    rows: 12,
    lengthCol: 6,
    valueCol: 3,
    alpha: 0,
    beta: 1,
  });
  const ones = await rec.readF32(out);
  equal(ones.reduce((a, b) => a + b, 0), 5, "unit weights on the 2 + 3 path rows");
  // Gather: hard losses −log q on those rows.
  const hl = new Float32Array(steps * stride).map((_, i) => 0.1 * (i % 7) + 0.01);
  const lp = arena.alloc([3], "f32", "logM");
  recordPathLogProbs(
    rec,
    lp,
    arena.upload(new Uint32Array([5, 0, 9]), [3], "u32", "rows"),
    arena.upload(hl, [steps * stride], "f32", "hl"),
    {
      steps,
      stride,
    },
  );
  const sum = (t: number) => -[0, 1, 2, 3].reduce((s, k) => s + hl[k * stride + t], 0);
  assertAllClose(await rec.readF32(lp), [sum(5), sum(0), sum(9)], { atol: 1e-6, name: "path log-probs" });
  throws(
    () =>
      recordHardWeights(rec, out, tm, ts, {
        steps: 5,
        stride,
        rows: 12,
        lengthCol: 6,
        valueCol: 3,
        alpha: 1,
        beta: 0,
      }),
    /do not fit/,
  );
  arena.destroy();
});
