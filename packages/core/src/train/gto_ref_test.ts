import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { ShapeError } from "../errors.ts";
import { buildDraftTree, treePaths } from "../tree/tree_ref.ts";
import { logSoftmaxRef } from "../reference/ops.ts";
import { randn } from "../testing/mod.ts";
import {
  acceptedPath,
  branchLengths,
  clippedSurrogate,
  debiasRewards,
  evaluateTree,
  greedyAcceptedPath,
  groupAdvantages,
  nodeTargetLogProbs,
  pathRatio,
  treeBranches,
  treeReward,
  treeRewards,
} from "./gto_ref.ts";

const close = (a: number, b: number, tol = 1e-12, what = "") =>
  ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tol ${tol})`);

// root ─ a(.9) ─ b(.5) ─ c(.2)
const CHAIN = { tokens: [7, 1, 2, 3], parents: [-1, 0, 1, 2] };
const chainLp = [0, Math.log(0.9), Math.log(0.5), Math.log(0.2)];

Deno.test("gto_ref: a chain p = .9/.5/.2 has L = .9 + .45 + .09", () => {
  const br = treeBranches(CHAIN);
  deepEqual(br, [[0, 1, 2, 3]]);
  const L = branchLengths(br, chainLp);
  close(L[0], 0.9 + 0.45 + 0.09, 1e-15, "L");
  const r = treeRewards(L);
  close(r.lse, L[0], 1e-15, "one branch: lse = L");
  close(r.max, L[0], 0, "max");
  close(r.mean, L[0], 0, "mean");
});

// root ─ a(.8) ─ c(.5)
//      └ b(.4) ─ d(.25)
//              └ e(1)
const FORK = { tokens: [9, 1, 2, 3, 4, 5], parents: [-1, 0, 0, 1, 2, 2] };
const forkLp = [0, 0.8, 0.4, 0.5, 0.25, 1].map(Math.log);

Deno.test("gto_ref: two-level tree: branches, L and the log-sum-exp reward by hand", () => {
  const br = treeBranches(FORK);
  deepEqual(br, [[0, 1, 3], [0, 2, 4], [0, 2, 5]]);
  const L = branchLengths(br, forkLp);
  const want = [0.8 + 0.4, 0.4 + 0.1, 0.4 + 0.4];
  want.forEach((w, i) => close(L[i], w, 1e-15, `L[${i}]`));
  const lse = Math.log(Math.exp(1.2) + Math.exp(0.5) + Math.exp(0.8));
  close(treeReward(L, "lse", 1), lse, 1e-14, "lse η=1");
  close(treeReward(L, "lse", 2), Math.log(Math.exp(2.4) + Math.exp(1) + Math.exp(1.6)) / 2, 1e-14, "lse η=2");
  close(treeReward(L, "max"), 1.2, 1e-15, "max");
  close(treeReward(L, "mean"), 2.5 / 3, 1e-15, "mean");
  // η → ∞: lse → max (within log(N_b)/η); η → 0: lse − log(N_b)/η → mean.
  close(treeReward(L, "lse", 1e6), 1.2, Math.log(3) / 1e6 + 1e-12, "η → ∞");
  const eta = 1e-6;
  close(treeReward(L, "lse", eta) - Math.log(3) / eta, 2.5 / 3, 1e-5, "η → 0");
  throws(() => treeRewards(L, 0), /eta/);
  throws(() => treeRewards([], 1), ShapeError);
});

Deno.test("gto_ref: node probabilities are softmax(z_parent)[token] over the full vocabulary", () => {
  const V = 5;
  const logits = randn(FORK.tokens.length * V, 3, 2);
  const tree = { tokens: [9 % V, 1, 2, 3, 4, 0], parents: FORK.parents };
  const { logProbs, greedyOk, argmax } = nodeTargetLogProbs(tree, logits, V);
  for (let j = 1; j < 6; j++) {
    const p = tree.parents[j];
    let den = 0;
    for (let v = 0; v < V; v++) den += Math.exp(logits[p * V + v]);
    close(Math.exp(logProbs[j]), Math.exp(logits[p * V + tree.tokens[j]]) / den, 1e-15, `p[${j}]`);
    const row = Array.from(logits.subarray(p * V, p * V + V));
    equal(argmax[p], row.indexOf(Math.max(...row)));
    equal(greedyOk[j], argmax[p] === tree.tokens[j] ? 1 : 0);
  }
  equal(logProbs[0], 0);
  throws(() => nodeTargetLogProbs(tree, logits.subarray(1), V), /logits have/);
  throws(() => nodeTargetLogProbs({ tokens: [1, 2], parents: [-1, 1] }, new Float32Array(10), V), /parent/);
});

Deno.test("gto_ref: branches equal tree_ref's retrieve paths on random trees", () => {
  for (const seed of [1, 2, 3]) {
    const k = 4, Vd = 30;
    const tabs = Array.from(
      { length: 4 },
      (_, l) => logSoftmaxRef(randn((l ? k : 1) * Vd, seed * 7 + l, 2), Vd),
    );
    const tree = buildDraftTree({
      initialLogProbs: tabs[0],
      root: 3,
      d2t: new Int32Array(Vd),
      config: { totalTokens: 20, depth: 3, topK: k },
      expand: (l) => tabs[l + 1],
    });
    deepEqual(treeBranches(tree), treePaths(tree), `seed ${seed}`);
  }
});

Deno.test("gto_ref: debiased group advantages; equal rewards give A = 0; m = 1 gives A = R", () => {
  deepEqual(Array.from(debiasRewards([3, 1], [1, 1])), [2, 0]);
  deepEqual(Array.from(debiasRewards([3, 1], null)), [3, 1]);
  const A = groupAdvantages([1, 2, 3, 4, 5, 5, 5, 5], 4, 1e-4, "sample");
  const sd = Math.sqrt(5 / 3);
  [-1.5, -0.5, 0.5, 1.5].forEach((d, i) => close(A[i], d / (sd + 1e-4), 1e-15, `A[${i}]`));
  deepEqual(Array.from(A.subarray(4)), [0, 0, 0, 0], "equal rewards");
  const Ap = groupAdvantages([1, 2, 3, 4], 4, 0, "population");
  close(Ap[0], -1.5 / Math.sqrt(1.25), 1e-15, "population std");
  deepEqual(Array.from(groupAdvantages([0.3, -2], 1)), [0.3, -2], "m = 1");
  throws(() => groupAdvantages([1, 2, 3], 2), /divisor/);
});

Deno.test("gto_ref: data-path and greedy acceptance", () => {
  // FORK tokens: root 9; children 1 (node 1), 2 (node 2); 3 under 1; 4, 5 under 2.
  deepEqual(acceptedPath(FORK, [2, 5, 8]), [2, 5]);
  deepEqual(acceptedPath(FORK, [2, 4]), [2, 4]);
  deepEqual(acceptedPath(FORK, [2]), [2], "truncated at the sequence end");
  deepEqual(acceptedPath(FORK, [3, 1]), [], "no matching child: l = 0");
  deepEqual(acceptedPath(FORK, []), []);
  // argmax after each node: root → 1, node 1 → 3, node 3 → 0.
  deepEqual(greedyAcceptedPath(FORK, [1, 3, 0, 0, 0, 0]), [1, 3]);
  deepEqual(greedyAcceptedPath(FORK, [6, 3, 0, 0, 0, 0]), []);
  deepEqual(greedyAcceptedPath(FORK, [1, 3, 0, 0, 0, 0], 1), [1], "capped where the text ended");
  deepEqual(greedyAcceptedPath(FORK, [1, 3, 0, 0, 0, 0], 0), []);
});

Deno.test("gto_ref: ratio and clipped surrogate; l = 0 gives s = 1 and no gradient", () => {
  equal(pathRatio(-3, -1, 0), 1);
  close(pathRatio(-3, -1, 2), Math.exp(-1), 1e-15, "s");
  close(pathRatio(-1.5, -1.5, 3), 1, 0, "M = M₀");
  const zero = clippedSurrogate([1], [2.5], [0]);
  equal(zero.coeffs[0], 0, "l = 0: no gradient");
  close(zero.loss, -2.5, 0, "l = 0 still contributes its value");
  // Clipping on both signs → zero gradient; inside the range the unclipped gradient.
  const eps = 0.2;
  const r = clippedSurrogate([1.5, 0.5, 1.1, 0.9, 0.5, 1.5], [2, -2, 2, -2, 2, -2], [3, 3, 3, 3, 2, 2], eps);
  deepEqual(Array.from(r.clipped), [1, 1, 0, 0, 0, 0]);
  deepEqual(Array.from(r.coeffs.subarray(0, 2)), [0, 0], "clipped: zero gradient");
  const P = 6;
  close(r.coeffs[2], -2 * 1.1 / (P * 3), 1e-15, "A > 0 inside");
  close(r.coeffs[3], 2 * 0.9 / (P * 3), 1e-15, "A < 0 inside");
  close(r.coeffs[4], -2 * 0.5 / (P * 2), 1e-15, "A > 0, s < 1 − ε: unclipped is the min");
  close(r.coeffs[5], 2 * 1.5 / (P * 2), 1e-15, "A < 0, s > 1 + ε: unclipped is the min");
  const terms = [1.2 * 2, 0.8 * -2, 1.1 * 2, 0.9 * -2, 0.5 * 2, 1.5 * -2];
  terms.forEach((t, i) => close(r.terms[i], t, 1e-15, `term ${i}`));
  close(r.loss, -terms.reduce((a, b) => a + b) / P, 1e-15, "loss");
});

Deno.test("gto_ref: surrogate coefficients are the finite-difference gradient w.r.t. log M(Ŝ)", () => {
  const logM = [-2.1, -0.4, -3.3, -1.0, 0, -0.7];
  const logM0 = [-2.0, -0.9, -3.0, -1.4, 0, -0.7];
  const l = [3, 1, 4, 2, 0, 2];
  const A = [1.3, -0.7, -1.1, 0.4, 2, -0.2];
  const loss = (lm: number[]) =>
    clippedSurrogate(lm.map((v, i) => pathRatio(v, logM0[i], l[i])), A, l, 0.2).loss;
  const { coeffs } = clippedSurrogate(logM.map((v, i) => pathRatio(v, logM0[i], l[i])), A, l, 0.2);
  const h = 1e-6;
  for (let i = 0; i < logM.length; i++) {
    const up = logM.slice(), dn = logM.slice();
    up[i] += h;
    dn[i] -= h;
    const fd = l[i] === 0 ? 0 : (loss(up) - loss(dn)) / (2 * h);
    close(coeffs[i], fd, 1e-8, `coeff ${i}`);
  }
});

Deno.test("gto_ref: evaluateTree ties the pieces together", () => {
  const V = 4;
  // Logits rows after each node of CHAIN: chosen so p(node j | parent) = .9, .5, .2 exactly in f64.
  const row = (p: number, tok: number) => {
    const r = new Array(V).fill(Math.log((1 - p) / (V - 1)));
    r[tok] = Math.log(p);
    return r;
  };
  const logits = [...row(0.9, 1), ...row(0.5, 2), ...row(0.2, 3), ...row(0.25, 0)];
  const ev = evaluateTree(CHAIN, logits, V);
  close(ev.L[0], 1.44, 1e-14, "L");
  equal(ev.greedyLength, 2, "greedy: .9 and .5 are argmax, .2 is not");
  deepEqual(Array.from(ev.greedyOk), [0, 1, 1, 0]);
});
