/**
 * The auto tree's pure model on synthetic tables: τ of small trees against hand-computed sums, the
 * perfect-acceptance bound, cost interpolation, acceptance counting from a hand-made trace, and the
 * choice — plain decoding on CPU-like costs, a deep tree on GPU-like costs with a good draft.
 * @module
 */
import assert from "node:assert/strict";
import { resolveTreeConfig } from "../tree/config.ts";
import {
  type AcceptanceProfile,
  candidateTrees,
  chooseTree,
  countAcceptance,
  emptyCounts,
  estimateAcceptance,
  interpolate,
  monotone,
  perfectAcceptance,
  predictCycleMs,
  predictTau,
  type TreeCostTable,
} from "./auto_tree.ts";

const close = (a: number, b: number, msg?: string) =>
  assert.ok(Math.abs(a - b) < 1e-9, `${a} vs ${b} ${msg ?? ""}`);

Deno.test("predictTau: hand-computed trees", () => {
  const acc: AcceptanceProfile = { p: [[0.5, 0.2], [0.6, 0.1]] };
  // Depth 0: the root's two children only: 1 + 0.5 + 0.2.
  close(predictTau(acc, { totalTokens: 3, depth: 0, topK: 2 }), 1.7);
  close(predictTau(acc, { totalTokens: 2, depth: 0, topK: 2 }), 1.5);
  // Depth 1: candidates 0.5, 0.2 | 0.5·0.6 = 0.3, 0.5·0.1 = 0.05, 0.2·0.6 = 0.12, 0.2·0.1 = 0.02;
  // the best three are 0.5, 0.3, 0.2.
  close(predictTau(acc, { totalTokens: 4, depth: 1, topK: 2 }), 2.0);
  // All six: 1 + 1.19.
  close(predictTau(acc, { totalTokens: 7, depth: 1, topK: 2 }), 2.19);
  // Depth 2, k = 1: a chain 0.5, 0.3, 0.18 (depth 3 reuses the last row).
  close(predictTau(acc, { totalTokens: 4, depth: 2, topK: 1 }), 1 + 0.5 + 0.3 + 0.18);
  // Frontier = the best k of the last level only: depth 2, k = 2, all 2 + 4 + 4 candidates.
  // Level 2 expands 0.3 and 0.12: 0.18, 0.03, 0.072, 0.012.
  close(
    predictTau(acc, { totalTokens: 11, depth: 2, topK: 2 }),
    1 + 0.5 + 0.2 + 0.3 + 0.05 + 0.12 + 0.02 + 0.18 + 0.03 + 0.072 + 0.012,
  );
});

Deno.test("perfectAcceptance: τ = min(N, depth + 2)", () => {
  for (const t of [[2, 0, 1], [8, 3, 2], [4, 6, 3], [64, 6, 8], [5, 3, 1]]) {
    const tree = { totalTokens: t[0], depth: t[1], topK: t[2] };
    close(predictTau(perfectAcceptance(), tree), Math.min(t[0], t[1] + 2), JSON.stringify(tree));
  }
});

Deno.test("interpolate and predictCycleMs", () => {
  const pts = [{ x: 1, y: 2 }, { x: 5, y: 10 }, { x: 9, y: 12 }];
  close(interpolate(pts, 3), 6);
  close(interpolate(pts, 7), 11);
  close(interpolate(pts, 13), 14, "extended past the end");
  close(interpolate(pts, 0), 2, "held flat below the first point");
  const costs: TreeCostTable = {
    plainStepMs: 2,
    verify: [{ n: 8, ms: 4 }, { n: 32, ms: 10 }],
    drafting: [{ k: 2, baseMs: 1, perLevelMs: 0.5 }, { k: 4, baseMs: 2, perLevelMs: 1 }],
    bookkeepingMs: 0.25,
  };
  // verify(16) = 4 + 6·8/24 = 6; base(3) = 1.5, level(3) = 0.75; 1.5 + 3·0.75 + 6 + 0.25.
  close(predictCycleMs(costs, { totalTokens: 16, depth: 3, topK: 3 }), 10);
  // verify(4) between the plain step (N = 1, 2 ms) and N = 8 (4 ms): 2 + 2·3/7.
  close(predictCycleMs(costs, { totalTokens: 4, depth: 0, topK: 2 }), 1 + 2 + 6 / 7 + 0.25);
});

Deno.test("candidateTrees: every shape is one the tree construction accepts", () => {
  const all = candidateTrees();
  assert.ok(all.length > 100);
  for (const t of all) resolveTreeConfig(t); // throws on an invalid shape
  assert.ok(all.some((t) => t.totalTokens === 64 && t.depth === 6 && t.topK === 8));
  assert.ok(
    !all.some((t) => t.totalTokens === 64 && t.topK === 1),
    "k = 1 chains hold at most depth + 2 nodes",
  );
});

Deno.test("countAcceptance / estimateAcceptance on a hand-made trace", () => {
  // Root 0; children 1, 2 (ranks 1, 2); node 2's children 3, 4; node 1's child 5.
  const trace = {
    tokens: [10, 11, 12, 13, 14, 15],
    parents: [-1, 0, 0, 2, 2, 1],
    depths: [0, 1, 1, 2, 2, 2],
    accepted: [0, 2, 4], // rank 2 at depth 1, then rank 2 at depth 2, then nothing at depth 3
    bonus: 7,
    newTokens: [12, 14, 7],
  };
  const c = emptyCounts(3, 2);
  countAcceptance(c, trace);
  assert.deepEqual(c.offered, [[1, 1], [1, 1], [0, 0]]);
  assert.deepEqual(c.accepted, [[0, 1], [0, 1], [0, 0]]);
  // A second cycle accepting nothing: the root's two children offered, none taken.
  countAcceptance(c, { ...trace, accepted: [0], newTokens: [7] });
  assert.deepEqual(c.offered, [[2, 2], [1, 1], [0, 0]]);
  const p = estimateAcceptance(c, 4).p;
  close(p[0][0], 0 / 6);
  close(p[0][1], 1 / 6);
  close(p[1][1], (1 + 4 / 6) / 5, "depth 2 leans on depth 1");
  close(p[2][1], p[1][1], "unobserved: the level above");
});

/** A draft accepting its top candidate with probability a at every depth, rank 2 with a/4. */
const goodDraft = (a: number): AcceptanceProfile => ({ p: [[a, a / 4, a / 16, a / 32]] });

Deno.test("chooseTree: plain decoding wins on CPU-like costs (verification ≫ a plain step)", () => {
  const cpu: TreeCostTable = { // loaded llvmpipe, tiny (calibrate.ts, this machine)
    plainStepMs: 5,
    verify: [{ n: 4, ms: 30 }, { n: 8, ms: 60 }, { n: 16, ms: 130 }, { n: 32, ms: 150 }],
    drafting: [{ k: 2, baseMs: 20, perLevelMs: 2.3 }, { k: 4, baseMs: 19, perLevelMs: 2 }],
    bookkeepingMs: 10,
  };
  const r = chooseTree(cpu, goodDraft(0.8));
  assert.equal(r.choice.tree, null);
  close(r.choice.tokPerSec, 200);
  assert.ok(r.bestTree.tokPerSec < 100, JSON.stringify(r.bestTree));
  // Even a perfect draft cannot pay here.
  assert.equal(chooseTree(cpu, perfectAcceptance(), { minGain: 1 }).choice.tree, null);
});

Deno.test("chooseTree: a deep tree wins on GPU-like costs (flat verification) with a good draft", () => {
  const gpu: TreeCostTable = {
    plainStepMs: 1,
    verify: [{ n: 4, ms: 1.05 }, { n: 16, ms: 1.1 }, { n: 64, ms: 1.3 }],
    drafting: [{ k: 2, baseMs: 0.15, perLevelMs: 0.08 }, { k: 8, baseMs: 0.2, perLevelMs: 0.1 }],
    bookkeepingMs: 0.05,
  };
  const r = chooseTree(gpu, goodDraft(0.85));
  assert.ok(r.choice.tree !== null);
  assert.ok(r.choice.tree!.depth >= 4, JSON.stringify(r.choice));
  assert.ok(r.choice.tokPerSec > 2 * r.plain.tokPerSec, JSON.stringify(r.choice));
  // A weak draft on the same adapter: a shallow tree (or none), never a deep one.
  const weak = chooseTree(gpu, goodDraft(0.2));
  assert.ok(weak.choice.tree === null || weak.choice.tree.depth <= 2, JSON.stringify(weak.choice));
  // minGain: a tree that is barely faster than plain decoding is not taken.
  const barely = chooseTree(gpu, goodDraft(0.85), { minGain: r.choice.tokPerSec / r.plain.tokPerSec + 0.01 });
  assert.equal(barely.choice.tree, null);
});

Deno.test("monotone: noisy cost series never fall with more work", () => {
  const noisy = [{ x: 32, y: 150 }, { x: 4, y: 30 }, { x: 16, y: 160 }, { x: 8, y: 20 }];
  assert.deepEqual(monotone(noisy).map((p) => p.y), [30, 30, 160, 160]);
  // k = 4 measured cheaper than k = 2 must not extrapolate k = 6 drafting to ~0.
  const costs: TreeCostTable = {
    plainStepMs: 7,
    verify: [{ n: 4, ms: 15 }],
    drafting: [{ k: 2, baseMs: 27, perLevelMs: 0 }, { k: 4, baseMs: 5, perLevelMs: 14 }],
    bookkeepingMs: 0,
  };
  // base(6) = 27 (flat), verify(2) = 7 + 8/3.
  close(predictCycleMs(costs, { totalTokens: 2, depth: 0, topK: 6 }), 27 + 7 + 8 / 3);
});
