import { deepEqual, equal, throws } from "node:assert/strict";
import { BufferArena } from "../gpu/arena.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { ShapeError } from "../errors.ts";
import { packMask } from "../ops/attention.ts";
import { logSoftmaxRef } from "../reference/ops.ts";
import { randn, rng, testGpu } from "../testing/mod.ts";
import {
  buildDraftTree,
  type DraftTree,
  packTreeMask,
  resolveTreeConfig,
  type TreeConfig,
} from "./tree_ref.ts";
import { gatherRows, readTree, TreeBuffers, treeFinalize, treeLevel } from "./tree_ops.ts";

const arr = (a: ArrayLike<number>) => Array.from(a);

/** Log-prob tables per level: level 0 (1, Vd), level ≥ 1 (k, Vd); `ties` rounds logits to integers. */
function tables(cfg: TreeConfig, Vd: number, seed: number, ties: boolean): Float32Array[] {
  const { topK: k, depth: D } = resolveTreeConfig(cfg);
  return Array.from({ length: D + 1 }, (_, l) => {
    const z = randn((l === 0 ? 1 : k) * Vd, seed * 131 + l, 3);
    return logSoftmaxRef(ties ? z.map((v) => Math.round(v)) : z, Vd);
  });
}

/** A non-identity d2t: draft id d → a distinct target id in [0, 4Vd), some offsets negative. */
function makeD2t(Vd: number, seed: number): Int32Array {
  const r = rng(seed);
  const targets = Array.from({ length: 4 * Vd }, (_, i) => i);
  for (let i = targets.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [targets[i], targets[j]] = [targets[j], targets[i]];
  }
  return new Int32Array(Vd).map((_, d) => targets[d] - d); // not monotone (EAGLE's is): any table works
}

interface Run {
  tree: DraftTree;
  tb: TreeBuffers;
  lps: Tensor[];
  root: Tensor;
}

function setup(
  gpu: GpuDevice,
  arena: BufferArena,
  cfg: TreeConfig,
  Vd: number,
  seed: number,
  ties: boolean,
  d2tSeed = seed,
) {
  const tabs = tables(cfg, Vd, seed, ties);
  const d2tHost = makeD2t(Vd, d2tSeed);
  const rootTok = 1000 + seed;
  const tree = buildDraftTree({
    initialLogProbs: tabs[0],
    root: rootTok,
    d2t: d2tHost,
    config: cfg,
    expand: (l) => tabs[l + 1],
  });
  const d2t = arena.upload(d2tHost, [Vd], "i32", "d2t");
  const tb = new TreeBuffers(gpu, { ...cfg, draftVocab: Vd }, d2t);
  const lps = tabs.map((t, l) => arena.upload(t, [l === 0 ? 1 : tb.config.topK, Vd], "f32", `lp${l}`));
  const root = arena.upload(new Uint32Array([7, rootTok, 9]), [3], "u32", "ring");
  return { tree, tb, lps, root } satisfies Run;
}

async function checkFinal(rec: Recorder, run: Run, label: string): Promise<void> {
  const { tree, tb } = run;
  const g = await readTree(rec, tb);
  const N = tree.tokens.length;
  deepEqual(arr(g.candidates.scores), arr(tree.candidates.scores), `${label}: candidate scores`);
  deepEqual(arr(g.candidates.tokens), arr(tree.candidates.tokens), `${label}: candidate tokens`);
  deepEqual(arr(g.candidates.parents), arr(tree.candidates.parents), `${label}: candidate parents`);
  deepEqual(arr(g.nodeCandidates), arr(tree.nodeCandidates), `${label}: node set and order`);
  deepEqual(arr(g.nodeScores), arr(tree.nodeScores), `${label}: node scores`);
  deepEqual(arr(g.tokens), arr(tree.tokens), `${label}: tokens`);
  deepEqual(arr(g.parents), arr(tree.parents), `${label}: parents`);
  deepEqual(arr(g.depth), arr(tree.depth), `${label}: depths`);
  deepEqual(arr(g.maskBits), arr(packTreeMask(tree)), `${label}: mask`);
  equal(g.numLeaves, tree.numLeaves, `${label}: leaves`);
  equal(g.maxDepth, tree.maxDepth, `${label}: max depth`);
  deepEqual(arr(g.retrieve), arr(tree.retrieve), `${label}: retrieve`);
  const W = tb.config.pathWidth;
  for (let r = 0; r < N - 1; r++) {
    for (let j = 0; j < W; j++) {
      if (r >= tree.numLeaves || j > tree.maxDepth) equal(g.retrieveFull[r * W + j], -1, `${label}: padding`);
    }
  }
}

const CONFIGS: [number, number, number, number][] = [ // totalTokens, depth, topK, Vd
  [60, 7, 10, 300],
  [16, 3, 4, 97],
  [2, 1, 1, 5],
  [3, 0, 2, 20],
  [64, 2, 6, 70],
  [31, 3, 3, 40], // every candidate selected
  [100, 3, 6, 50], // 4 mask words
  [256, 4, 8, 33], // the largest tree
];

Deno.test("treeLevel/treeFinalize (one submit, no readback) equal buildDraftTree exactly", async () => {
  const { gpu, rec } = await testGpu();
  for (const [N, D, k, Vd] of CONFIGS) {
    for (const ties of [false, true]) {
      const arena = new BufferArena(gpu, 1 << 20, "acts");
      const cfg = { totalTokens: N, depth: D, topK: k };
      const run = setup(gpu, arena, cfg, Vd, N * 10 + D + k + (ties ? 1 : 0), ties);
      for (let l = 0; l <= D; l++) treeLevel(rec, run.tb, run.lps[l], l);
      treeFinalize(rec, run.tb, { meta: run.root, index: 1 });
      const label = `(${N},${D},${k}) Vd ${Vd}${ties ? " ties" : ""}`;
      await checkFinal(rec, run, label);
      // Per-expansion draft masks (all kept).
      for (let e = 0; e < D; e++) {
        const x = run.tree.expansions[e];
        const bits = await rec.read(run.tb.draftMasks[e]);
        deepEqual(arr(bits), arr(packMask(x.mask, k, k * (e + 1))), `${label}: draft mask ${e}`);
      }
      run.tb.destroy();
      arena.destroy();
    }
  }
});

Deno.test("treeLevel writes each expansion's frontier tokens, out ids and gatherRows inputs", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 20, "acts");
  const cfg = { totalTokens: 30, depth: 4, topK: 5 };
  const Vd = 64, H = 12;
  const run = setup(gpu, arena, cfg, Vd, 5, true);
  const k = 5;
  const src = arena.upload(randn(k * H, 3), [k, H], "f32", "outHidden");
  const hidden = arena.alloc([k, H], "f32", "inputHidden");
  const srcHost = await rec.readF32(src);
  for (let l = 0; l <= cfg.depth; l++) {
    treeLevel(rec, run.tb, run.lps[l], l);
    if (l === cfg.depth) break;
    const x = run.tree.expansions[l];
    deepEqual(arr(await rec.read(run.tb.outIds)), arr(x.parentRows), `out ids ${l}`);
    deepEqual(arr(await rec.read(run.tb.frontierTokens)), arr(x.tokens), `frontier tokens ${l}`);
    gatherRows(rec, hidden, src, run.tb.outIds);
    const got = await rec.readF32(hidden);
    const want = new Float32Array(k * H);
    for (let r = 0; r < k; r++) {
      want.set(srcHost.subarray(x.parentRows[r] * H, x.parentRows[r] * H + H), r * H);
    }
    deepEqual(arr(got), arr(want), `gather ${l}`);
  }
  treeFinalize(rec, run.tb, { meta: run.root, index: 1 });
  await checkFinal(rec, run, "per-level submits");
  // Reuse the same buffers for a second, different tree: everything is overwritten.
  const run2 = setup(gpu, arena, cfg, Vd, 6, false, 5); // same d2t as run
  run2.tb.destroy();
  for (let l = 0; l <= cfg.depth; l++) treeLevel(rec, run.tb, run2.lps[l], l);
  treeFinalize(rec, run.tb, { meta: run2.root, index: 1 });
  await checkFinal(rec, { ...run2, tb: run.tb }, "reused buffers");
  run.tb.destroy();
  arena.destroy();
});

Deno.test("gatherRows writes NaN rows for out-of-range indices", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "acts");
  const src = arena.upload(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], "f32", "src");
  const idx = arena.upload(new Uint32Array([1, 5, 0, 1]), [4], "u32", "idx");
  const dst = arena.alloc([4, 3], "f32", "dst");
  gatherRows(rec, dst, src, idx);
  deepEqual(arr(await rec.readF32(dst)), [4, 5, 6, NaN, NaN, NaN, 1, 2, 3, 4, 5, 6]);
  throws(() => gatherRows(rec, dst, src, idx.rows(3)), /idx has 3 entries/);
  throws(() => gatherRows(rec, arena.alloc([4, 2], "f32", "bad"), src, idx), ShapeError);
  throws(() => gatherRows(rec, src, src, idx.rows(2)), /overlaps/);
  arena.destroy();
});

Deno.test("TreeBuffers / treeLevel / treeFinalize reject bad inputs, naming them", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "acts");
  const d2t = arena.upload(new Int32Array(16), [16], "i32", "d2t");
  throws(
    () => new TreeBuffers(gpu, { totalTokens: 60, depth: 7, topK: 10, draftVocab: 8 }, d2t),
    /draft vocab/,
  );
  throws(() => new TreeBuffers(gpu, { totalTokens: 30, depth: 1, topK: 4, draftVocab: 16 }, d2t), /exceeds/);
  throws(
    () => new TreeBuffers(gpu, { draftVocab: 16, topK: 4 }, arena.alloc([16], "u32", "d2tU")),
    /d2tU: expected dtype i32/,
  );
  const tb = new TreeBuffers(gpu, { totalTokens: 8, depth: 2, topK: 3, draftVocab: 16 }, d2t);
  const lp = arena.alloc([3, 16], "f32", "lp");
  throws(() => treeLevel(rec, tb, lp, 0), /lp: expected shape \[1,16\]/);
  throws(() => treeLevel(rec, tb, lp, 3), /level/);
  throws(() => treeLevel(rec, tb, lp.rows(1), 1), /lp: expected shape \[3,16\]/);
  const ring = arena.alloc([4], "u32", "ring");
  throws(() => treeFinalize(rec, tb, { meta: ring, index: 4 }), /root index 4 outside ring/);
  throws(() => treeFinalize(rec, tb, { meta: lp, index: 0 }), ShapeError);
  tb.destroy();
  arena.destroy();
});

Deno.test("P trees per dispatch equal buildDraftTree per tree, bit for bit (P ∈ {1, 3, 17}, ties)", async () => {
  const { gpu, rec } = await testGpu();
  const shapes: [number, number, number, number][] = [[60, 7, 10, 300], [16, 3, 4, 37], [31, 3, 3, 40]];
  for (const [N, D, k, Vd] of shapes) {
    for (const P of [1, 3, 17]) {
      const arena = new BufferArena(gpu, 1 << 22, "acts");
      const cfg = { totalTokens: N, depth: D, topK: k };
      const d2tHost = makeD2t(Vd, N + P);
      const d2t = arena.upload(d2tHost, [Vd], "i32", "d2t");
      const tb = new TreeBuffers(gpu, { ...cfg, draftVocab: Vd, trees: P }, d2t);
      // Tree p: its own tables (every other tree with integer ties) and root.
      const tabs = Array.from({ length: P }, (_, p) => tables(cfg, Vd, 1000 * P + 17 * p + N, p % 2 === 1));
      const roots = Array.from({ length: P }, (_, p) => 5000 + 3 * p);
      const refs = tabs.map((t, p) =>
        buildDraftTree({
          initialLogProbs: t[0],
          root: roots[p],
          d2t: d2tHost,
          config: cfg,
          expand: (l) => t[l + 1],
        })
      );
      const H = 3;
      const hidden = arena.alloc([P * k, H], "f32", "hidden");
      for (let l = 0; l <= D; l++) {
        const R = l === 0 ? 1 : k;
        const lp = new Float32Array(P * R * Vd);
        tabs.forEach((t, p) => lp.set(t[l], p * R * Vd));
        treeLevel(rec, tb, arena.upload(lp, [P * R, Vd], "f32", `lp${l}`), l);
        if (l === D) break;
        // outIds are global rows of the (P·R, H) output: gatherRows picks tree p's parent rows.
        const srcHost = Float32Array.from({ length: P * R * H }, (_, i) => i);
        gatherRows(rec, hidden, arena.upload(srcHost, [P * R, H], "f32", `out${l}`), tb.outIds);
        const [ids, toks, mask, got] = await Promise.all([
          rec.read(tb.outIds),
          rec.read(tb.frontierTokens),
          rec.read(tb.draftMasks[l]),
          rec.readF32(hidden),
        ]);
        const words = Math.ceil(k * (l + 1) / 32);
        refs.forEach((ref, p) => {
          const x = ref.expansions[l];
          const label = `(${N},${D},${k}) P ${P} tree ${p} level ${l}`;
          deepEqual(
            arr(ids.slice(p * k, p * k + k)),
            arr(x.parentRows.map((r) => p * R + r)),
            `${label} outIds`,
          );
          deepEqual(arr(toks.slice(p * k, p * k + k)), arr(x.tokens), `${label} tokens`);
          deepEqual(
            arr(mask.slice(p * k * words, (p + 1) * k * words)),
            arr(packMask(x.mask, k, k * (l + 1))),
            `${label} draft mask`,
          );
          for (let r = 0; r < k; r++) {
            equal(got[(p * k + r) * H], (p * R + x.parentRows[r]) * H, `${label} gather`);
          }
        });
      }
      const ring = arena.upload(new Uint32Array([1, 2, ...roots]), [P + 2], "u32", "roots");
      treeFinalize(rec, tb, { meta: ring, index: 2 });
      for (let p = 0; p < P; p++) {
        const g = await readTree(rec, tb, p);
        const tree = refs[p];
        const label = `(${N},${D},${k}) P ${P} tree ${p}`;
        deepEqual(arr(g.candidates.scores), arr(tree.candidates.scores), `${label}: candidate scores`);
        deepEqual(arr(g.candidates.tokens), arr(tree.candidates.tokens), `${label}: candidate tokens`);
        deepEqual(arr(g.candidates.parents), arr(tree.candidates.parents), `${label}: candidate parents`);
        deepEqual(arr(g.nodeCandidates), arr(tree.nodeCandidates), `${label}: node set and order`);
        deepEqual(arr(g.nodeScores), arr(tree.nodeScores), `${label}: node scores`);
        deepEqual(arr(g.tokens), arr(tree.tokens), `${label}: tokens`);
        deepEqual(arr(g.parents), arr(tree.parents), `${label}: parents`);
        deepEqual(arr(g.depth), arr(tree.depth), `${label}: depths`);
        deepEqual(arr(g.maskBits), arr(packTreeMask(tree)), `${label}: mask`);
        equal(g.numLeaves, tree.numLeaves, `${label}: leaves`);
        equal(g.maxDepth, tree.maxDepth, `${label}: max depth`);
        deepEqual(arr(g.retrieve), arr(tree.retrieve), `${label}: retrieve`);
      }
      throws(() => treeFinalize(rec, tb, { meta: ring, index: 3 }), /root index 3/);
      throws(() => treeLevel(rec, tb, arena.alloc([P, Vd], "f32", "lpBad"), 1), /lpBad: expected shape/);
      tb.destroy();
      arena.destroy();
    }
  }
});
