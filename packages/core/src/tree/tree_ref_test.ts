import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { ShapeError } from "../errors.ts";
import {
  buildDraftTree,
  type DraftTree,
  packTreeMask,
  resolveTreeConfig,
  topkIndices,
  type TreeConfig,
  treePaths,
} from "./tree_ref.ts";
import { logSoftmaxRef } from "../reference/ops.ts";
import { randn } from "../testing/mod.ts";

const arr = (a: ArrayLike<number>) => Array.from(a);

Deno.test("topkIndices: descending, equal values by lower index", () => {
  deepEqual(arr(topkIndices(new Float32Array([1, 3, 3, 2, 3]), 3)), [1, 2, 4]);
  deepEqual(arr(topkIndices(new Float32Array([0, 5, 1, 5, 9, 5]), 4, 1, 5)), [3, 0, 2, 4]);
  deepEqual(arr(topkIndices(new Float32Array([-Infinity, -1, -Infinity]), 3)), [1, 0, 2]);
  throws(() => topkIndices(new Float32Array([0, NaN]), 1), ShapeError);
});

Deno.test("buildDraftTree: hand-built tree (k 2, depth 1, total 4) with a tie and d2t", () => {
  const calls: [number, number[], number[]][] = [];
  const tree = buildDraftTree({
    initialLogProbs: new Float32Array([-1, -0.5, -3, -2]),
    root: 99,
    d2t: new Int32Array([10, 10, 10, 10]),
    config: { totalTokens: 4, depth: 1, topK: 2 },
    expand: (level, rows, toks) => {
      calls.push([level, arr(rows), arr(toks)]);
      // row 0 (token 11, score −0.5): children 0 (−0.25), 2 (−1); row 1 (token 10, score −1): 1 (−0.125),
      // then 2 and 3 tie at −2 → 2 (lower index).
      return new Float32Array([-0.25, -4, -1, -5, -3, -0.125, -2, -2]);
    },
  });
  deepEqual(calls, [[0, [0, 0], [11, 10]]]);
  deepEqual(arr(tree.candidates.scores), [-0.5, -1, -0.75, -1.5, -1.125, -3]);
  deepEqual(arr(tree.candidates.tokens), [11, 10, 10, 12, 11, 12]);
  deepEqual(arr(tree.candidates.parents), [-1, -1, 0, 0, 1, 1]);
  deepEqual(arr(tree.nodeCandidates), [-1, 0, 1, 2]);
  deepEqual(arr(tree.tokens), [99, 11, 10, 10]);
  deepEqual(arr(tree.parents), [-1, 0, 0, 1]);
  deepEqual(arr(tree.depth), [0, 1, 1, 2]);
  deepEqual(arr(tree.mask), [1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1]);
  equal(tree.numLeaves, 2);
  equal(tree.maxDepth, 2);
  deepEqual(arr(tree.retrieve), [0, 2, -1, 0, 1, 3]);
  deepEqual(treePaths(tree), [[0, 2], [0, 1, 3]]);
  deepEqual(arr(packTreeMask(tree)), [0b1, 0b11, 0b101, 0b1011]);
  equal(tree.expansions.length, 1);
  deepEqual(arr(tree.expansions[0].mask), [1, 0, 0, 1]);
  equal(tree.expansions[0].position, 0);
});

Deno.test("buildDraftTree: second expansion sees the next frontier, its parent rows and masks", () => {
  const seen: { rows: number[]; toks: number[] }[] = [];
  const lp1 = new Float32Array([-0.25, -4, -1, -5, -3, -0.125, -2, -2]); // as above
  const tree = buildDraftTree({
    initialLogProbs: new Float32Array([-1, -0.5, -3, -2]),
    root: 7,
    d2t: new Int32Array([5, 0, -2, 1]), // 0→5, 1→1, 2→0, 3→4
    config: { totalTokens: 6, depth: 2, topK: 2 },
    expand: (_level, rows, toks) => {
      seen.push({ rows: arr(rows), toks: arr(toks) });
      return lp1;
    },
  });
  // Level 1 frontier: candidates 0 (d1 → 1), 1 (d0 → 5). Expansion 0 → cu [−0.75, −1.5, −1.125, −3];
  // next frontier = flat 0 (row 0, d0 → 5) and flat 2 (row 1, d1 → 1).
  deepEqual(seen, [{ rows: [0, 0], toks: [1, 5] }, { rows: [0, 1], toks: [5, 1] }]);
  deepEqual(arr(tree.expansions[1].mask), [1, 0, 1, 0, 0, 1, 0, 1]); // (2, 4): parent row + self
  deepEqual(arr(tree.expansions[1].candidates), [2, 4]);
  // Expansion 1: row 0 (score −0.75) → −1, −1.75; row 1 (−1.125) → −1.25, −3.125.
  deepEqual(arr(tree.candidates.scores.subarray(6)), [-1, -1.75, -1.25, -3.125]);
  deepEqual(arr(tree.candidates.parents.subarray(6)), [2, 2, 4, 4]);
  // Top 5 of [−.5, −1, −.75, −1.5, −1.125, −3, −1, −1.75, −1.25, −3.125]: 0, 2, 1, 6 (tie −1: 1 first), 4.
  deepEqual(arr(tree.nodeCandidates), [-1, 0, 1, 2, 4, 6]);
  deepEqual(arr(tree.parents), [-1, 0, 0, 1, 2, 3]);
  deepEqual(arr(tree.depth), [0, 1, 1, 2, 2, 3]);
  deepEqual(treePaths(tree), [[0, 2, 4], [0, 1, 3, 5]]);
});

function randomTables(cfg: TreeConfig, Vd: number, seed: number, ties: boolean): Float32Array[] {
  const { topK: k, depth: D } = resolveTreeConfig(cfg);
  return Array.from({ length: D + 1 }, (_, l) => {
    const rows = l === 0 ? 1 : k;
    const z = randn(rows * Vd, seed * 1000 + l, 3);
    return logSoftmaxRef(ties ? z.map((v) => Math.round(v)) : z, Vd);
  });
}

function checkInvariants(tree: DraftTree, N: number): void {
  equal(tree.tokens.length, N);
  for (let i = 1; i < N; i++) {
    const p = tree.parents[i];
    ok(p >= 0 && p < i, `node ${i}: parent ${p}`);
    equal(tree.depth[i], tree.depth[p] + 1);
    equal(tree.candidates.parents[tree.nodeCandidates[i]], p === 0 ? -1 : tree.nodeCandidates[p]);
    ok(tree.nodeScores[i] <= tree.nodeScores[p] || p === 0);
    for (let j = 0; j < N; j++) {
      let anc = j === i;
      for (let a = i; a > 0 && !anc; a = tree.parents[a]) anc = tree.parents[a] === j;
      equal(tree.mask[i * N + j], anc ? 1 : 0, `mask[${i}, ${j}]`);
    }
  }
  const paths = treePaths(tree);
  equal(paths.length, tree.numLeaves);
  const parentSet = new Set(arr(tree.parents));
  const leaves = arr(tree.tokens).map((_, i) => i).filter((i) => !parentSet.has(i));
  deepEqual(paths.map((p) => p[p.length - 1]), leaves);
  for (const p of paths) {
    for (let j = 1; j < p.length; j++) equal(tree.parents[p[j]], p[j - 1]);
  }
  equal(tree.maxDepth, Math.max(...arr(tree.depth)));
}

Deno.test("buildDraftTree: random tables give well-formed trees for several shapes", () => {
  for (const [N, D, k] of [[60, 7, 10], [16, 3, 4], [2, 1, 1], [3, 0, 2], [40, 2, 5]]) {
    for (const ties of [false, true]) {
      const cfg = { totalTokens: N, depth: D, topK: k };
      const Vd = 50;
      const tables = randomTables(cfg, Vd, N + D + k, ties);
      const d2t = new Int32Array(Vd).map((_, i) => (i * 7) % 13 - 6);
      const tree = buildDraftTree({
        initialLogProbs: tables[0],
        root: 3,
        d2t,
        config: cfg,
        expand: (l, rows, toks) => {
          equal(rows.length, k);
          equal(toks.length, k);
          return tables[l + 1];
        },
      });
      checkInvariants(tree, N);
      equal(tree.expansions.length, D);
    }
  }
});

Deno.test("resolveTreeConfig and buildDraftTree reject bad options, naming them", () => {
  deepEqual(resolveTreeConfig(), { totalTokens: 60, depth: 7, topK: 10, candidates: 710, pathWidth: 9 });
  const bad: [TreeConfig, RegExp][] = [
    [{ topK: 0 }, /topK/],
    [{ topK: 65 }, /topK/],
    [{ topK: 2.5 }, /topK/],
    [{ depth: -1 }, /depth/],
    [{ depth: 1.5 }, /depth/],
    [{ totalTokens: 1 }, /totalTokens/],
    [{ totalTokens: 257 }, /totalTokens/],
    [{ totalTokens: 14, depth: 1, topK: 3 }, /exceeds the 12 candidates/],
  ];
  for (const [cfg, re] of bad) {
    throws(() => resolveTreeConfig(cfg), (e: Error) => e instanceof ShapeError && re.test(e.message));
  }
  resolveTreeConfig({ totalTokens: 13, depth: 1, topK: 3 }); // exactly all candidates
  throws(() => resolveTreeConfig({ topK: 10 }, 9), /draft vocabulary/);
  const base = {
    initialLogProbs: new Float32Array(4),
    root: 0,
    d2t: new Int32Array(4),
    config: { totalTokens: 3, depth: 1, topK: 2 },
    expand: () => new Float32Array(8),
  };
  buildDraftTree(base);
  throws(() => buildDraftTree({ ...base, d2t: new Int32Array(3) }), /d2t/);
  throws(() => buildDraftTree({ ...base, expand: () => new Float32Array(7) }), /expand\(0\)/);
});
