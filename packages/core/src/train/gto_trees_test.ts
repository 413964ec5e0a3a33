/**
 * The batched GTO tree pipeline (`gto_trees.ts`: P trees per dispatch, segmented attention for the
 * draft's expansions and the target's verification, reward kernels) against the CPU oracle
 * `referenceTreeAt` (reference target + draft + buildDraftTree + path forwards) on the bundled tiny
 * target with a random draft whose logits are spread wide (so f32-vs-f64 rounding cannot flip a
 * top-k choice); and the no-leakage property: changing every token after a tree's root changes
 * nothing in that tree, its target probabilities or its rewards.
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { loadModelDir } from "../io/model_dir.ts";
import { initEagle3Checkpoint } from "../io/eagle3.ts";
import { TINY_DIR } from "../io/_testing.ts";
import { BufferArena } from "../gpu/arena.ts";
import { LlamaModel } from "../model/llama.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { LlamaRef } from "../reference/llama_ref.ts";
import { Eagle3Ref } from "../reference/eagle3_ref.ts";
import { featureTaps } from "../speculative/verify.ts";
import { readTree } from "../tree/tree_ops.ts";
import { assertAllClose, randn, testGpu } from "../testing/mod.ts";
import { referenceTreeAt } from "./gto_pipeline_ref.ts";
import { acceptedPath } from "./gto_ref.ts";
import { GtoTreeBatch } from "./gto_trees.ts";

const dir = await loadModelDir(TINY_DIR);
const V = dir.config.vocabSize;

/** A random draft (Vd 300) with lm_head scaled ×6: wide logit gaps, so no near-tie top-k choices. */
function peakyDraft() {
  const ckpt = initEagle3Checkpoint(dir, { draftVocabSize: 300, seed: 21, initStd: 0.08 });
  let s = 1;
  for (const [name, w] of Object.entries(ckpt.tensors)) {
    if (name.endsWith("norm.weight")) w.set(randn(w.length, s++, 0.2).map((x) => 1 + x));
  }
  ckpt.tensors["lm_head.weight"] = ckpt.tensors["lm_head.weight"].map((x) => 6 * x);
  return ckpt;
}

interface Run {
  nodes: { tokens: number[]; parents: number[]; scores: number[]; lp: number[] }[];
  stats: Float32Array;
}

async function runBatch(
  tokens: number[],
  roots: number[],
  tree: { totalTokens: number; depth: number; topK: number },
  o: { internal?: boolean; verifyChunk?: number } = {},
) {
  const { gpu, rec } = await testGpu();
  const ckpt = peakyDraft();
  const S = tokens.length, P = roots.length, N = tree.totalTokens;
  const target = await LlamaModel.load(gpu, dir, {
    weightDtype: "f32",
    maxSeqLen: 512,
    maxBatch: Math.max(S, P * N),
  });
  const draft = Eagle3Draft.fromCheckpoint(gpu, ckpt, {
    maxSeqLen: 512,
    maxBatch: Math.max(S, P * tree.topK),
  });
  const batch = new GtoTreeBatch(gpu, draft, { trees: P, maxSeqLen: S, tree, verifyChunk: o.verifyChunk });
  const kv = target.createKvCache(S + P * N);
  const arena = new BufferArena(gpu, 1 << 22, "gto-trees-test");
  try {
    const ids = arena.upload(Uint32Array.from(tokens), [S], "u32", "ids");
    const F = ckpt.config.auxLayerIds.length * dir.config.hiddenSize;
    const feats = arena.alloc([S, F], "f32", "features");
    target.forward(rec, kv, ids, 0, S, 0, {
      logits: "none",
      capture: featureTaps(ckpt.config.auxLayerIds, dir.config.hiddenSize, feats),
    });
    batch.setRoots(tokens, roots);
    batch.recordGrow(rec, draft, feats, ids);
    if (o.internal) await batch.verifyInternal(rec, target, kv);
    else batch.recordVerify(rec, target, kv);
    const stats = await rec.readF32(batch.rewards.treeStats);
    const nodeBits = await rec.read(batch.rewards.nodes);
    const nodeF = new Float32Array(nodeBits.buffer, nodeBits.byteOffset, nodeBits.length);
    const out: Run = { nodes: [], stats };
    for (let p = 0; p < P; p++) {
      const g = await readTree(rec, batch.tb, p);
      out.nodes.push({
        tokens: Array.from(g.tokens),
        parents: Array.from(g.parents),
        scores: Array.from(g.nodeScores),
        lp: Array.from({ length: N }, (_, j) => nodeF[2 * (p * N + j)]),
      });
    }
    return { run: out, ckpt };
  } finally {
    arena.destroy();
    kv.destroy();
    batch.destroy();
    draft.destroy();
    target.destroy();
  }
}

const TOKENS = dir.tokenizer.encode("def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n");
const TREE = { totalTokens: 16, depth: 3, topK: 4 };

Deno.test("GtoTreeBatch: P batched trees equal the CPU oracle (tree, node scores, p_T, rewards, Ŝ), all nodes or internal only", async () => {
  const roots = [3, 4, 9, 14, TOKENS.length - 2];
  for (
    const [mode, o] of [["all nodes", {}], ["internal only", { internal: true }], [
      "internal only, chunks of 4 trees",
      { internal: true, verifyChunk: 4 },
    ]] as const
  ) {
    await checkAgainstOracle(roots, mode, o);
  }
});

async function checkAgainstOracle(
  roots: number[],
  mode: string,
  o: { internal?: boolean; verifyChunk?: number },
) {
  const { run, ckpt } = await runBatch(TOKENS, roots, TREE, o);
  const targetRef = new LlamaRef(dir.config, (name) => dir.weights.f32(name));
  const draftRef = new Eagle3Ref(ckpt, TOKENS.length + TREE.depth * TREE.topK + 8);
  roots.forEach((r, p) => {
    const ref = referenceTreeAt(targetRef, draftRef, TOKENS, r, TREE);
    const got = run.nodes[p];
    const label = `${mode}, root ${r}`;
    deepEqual(got.tokens, Array.from(ref.tree.tokens), `${label}: tokens`);
    deepEqual(got.parents, Array.from(ref.tree.parents), `${label}: parents`);
    assertAllClose(got.scores, ref.tree.nodeScores, {
      atol: 2e-4,
      rtol: 1e-4,
      name: `${label}: node scores`,
    });
    assertAllClose(got.lp, ref.evaluation.logProbs, { atol: 2e-4, rtol: 1e-4, name: `${label}: log p_T` });
    const row = run.stats.subarray(p * 8, p * 8 + 8);
    const rw = ref.evaluation.rewards;
    assertAllClose([row[0], row[1], row[2]], [rw.lse, rw.max, rw.mean], {
      atol: 2e-4,
      rtol: 1e-4,
      name: label,
    });
    const S = acceptedPath(ref.tree, TOKENS.slice(r + 1, r + 1 + TREE.depth + 1));
    equal(row[3], S.length, `${label}: l`);
    equal(row[5], ref.evaluation.greedyLength, `${label}: greedy length`);
  });
}

Deno.test("GtoTreeBatch: no leakage — tokens after a root change nothing in its tree or reward", async () => {
  const roots = [5, 11, 17];
  const a = await runBatch(TOKENS, roots, TREE, { internal: true });
  // Change every token after root 11 (tree 1): trees 0 and 1 must be bitwise unchanged. The new
  // continuation of tree 1 is its own deepest branch, so its data-path acceptance Ŝ becomes that branch.
  const t1 = a.run.nodes[1];
  let leaf = 0;
  const depth = (i: number): number => (i === 0 ? 0 : 1 + depth(t1.parents[i]));
  for (let i = 1; i < t1.tokens.length; i++) if (depth(i) > depth(leaf)) leaf = i;
  const branch: number[] = [];
  for (let i = leaf; i > 0; i = t1.parents[i]) branch.unshift(t1.tokens[i]);
  const changed = TOKENS.map((t, i) => (i > 11 ? (t * 7 + 13) % V : t));
  changed.splice(12, branch.length, ...branch);
  const b = await runBatch(changed, roots, TREE, { internal: true });
  equal(b.run.stats[8 + 3], branch.length, "tree 1: Ŝ = the branch that became the data");
  equal(b.run.stats[8 + 4], t1.scores[leaf], "tree 1: log M(Ŝ) = the node score of Ŝ's last node");
  equal(b.run.stats[8 + 7], leaf, "tree 1: Ŝ ends at that leaf");
  for (const p of [0, 1]) {
    deepEqual(b.run.nodes[p], a.run.nodes[p], `tree ${p}: tokens, parents, scores, p_T`);
    deepEqual(
      Array.from(b.run.stats.subarray(p * 8, p * 8 + 3)),
      Array.from(a.run.stats.subarray(p * 8, p * 8 + 3)),
      `tree ${p}: rewards`,
    );
    equal(b.run.stats[p * 8 + 5], a.run.stats[p * 8 + 5], `tree ${p}: greedy length`);
  }
  ok(
    JSON.stringify(b.run.nodes[2]) !== JSON.stringify(a.run.nodes[2]),
    "tree 2 (root after the change) does change: the test can see a difference",
  );
});
