/**
 * A whole GTO step (`gto.ts`) on the bundled tiny target with random drafts: at M = M₀ the rewards
 * cancel exactly (R ≡ 0, A ≡ 0, no coefficient) and the update is bit for bit the ω = 0 control's;
 * with M ≠ M₀ the surrogate contributes (non-zero coefficients, a different update) and the metrics
 * are finite.
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { loadModelDir } from "../io/model_dir.ts";
import { type Eagle3Checkpoint, initEagle3Checkpoint } from "../io/eagle3.ts";
import { TINY_DIR } from "../io/_testing.ts";
import { LlamaModel } from "../model/llama.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { randn, testGpu } from "../testing/mod.ts";
import { GtoObjective } from "./gto.ts";
import { rootSpanLength, sampleGroupRoots } from "./gto_groups.ts";
import { inspectTrees } from "./gto_inspect.ts";

const dir = await loadModelDir(TINY_DIR);
const TREE = { totalTokens: 16, depth: 3, topK: 4 };
const S = 32;

function ckpt(seed: number, scale = 1): Eagle3Checkpoint {
  const c = initEagle3Checkpoint(dir, { draftVocabSize: 400, seed, initStd: 0.08 });
  let s = seed * 100;
  for (const [name, w] of Object.entries(c.tensors)) {
    if (name.endsWith("norm.weight")) w.set(randn(w.length, s++, 0.2).map((x) => 1 + x));
  }
  c.tensors["lm_head.weight"] = c.tensors["lm_head.weight"].map((x) => 4 * scale * x);
  return c;
}

function batch(override?: number[]) {
  const texts = [
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "The cat sat on the mat and then it slept.",
  ];
  const ids = new Array(2 * S).fill(0), lossMask = new Array(2 * S).fill(0);
  const lengths: number[] = [], promptLens = [4, 3];
  texts.forEach((t, b) => {
    const tok = (b === 0 && override ? override : dir.tokenizer.encode(t)).slice(0, S);
    lengths.push(tok.length);
    tok.forEach((x, i) => {
      ids[b * S + i] = x;
      lossMask[b * S + i] = i >= promptLens[b] ? 1 : 0;
    });
  });
  return { batch: 2, seqLen: S, ids, lossMask, lengths, promptLens };
}

async function oneStep(
  mCkpt: Eagle3Checkpoint,
  m0Ckpt: Eagle3Checkpoint,
  omega: number,
  o: { ids0?: number[]; stdFloor?: number; debias?: boolean; metrics?: boolean } = {},
) {
  const { gpu, rec } = await testGpu();
  const target = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 256, maxBatch: 64 });
  const opts = { maxSeqLen: 256, maxBatch: 64 };
  const draft = Eagle3Draft.fromCheckpoint(gpu, mCkpt, opts);
  const draft0 = Eagle3Draft.fromCheckpoint(gpu, m0Ckpt, opts);
  const gto = GtoObjective.create(gpu, target, draft, draft0, {
    maxBatch: 2,
    maxSeqLen: S,
    groups: 2,
    groupSize: 2,
    omega,
    tree: TREE,
    seed: 3,
    stdFloor: o.stdFloor,
    debias: o.debias,
  });
  try {
    await gto.step(rec, batch(o.ids0), 0, { lr: 1e-3, maxGradNorm: 0.5 }, { metrics: o.metrics });
    const metrics = o.metrics === false ? null : await gto.readMetrics(rec);
    const ttt = await gto.ttt.readMetrics(rec);
    const after = await draft.toCheckpoint(rec);
    return { metrics, ttt, after };
  } finally {
    gto.destroy();
    draft0.destroy();
    draft.destroy();
    target.destroy();
  }
}

Deno.test("GTO step at M = M₀: R ≡ 0, A ≡ 0, and the update equals the ω = 0 control bit for bit", async () => {
  const c = ckpt(5);
  const gto = await oneStep(c, c, 0.5);
  const control = await oneStep(c, c, 0);
  equal(gto.metrics!.meanR, 0);
  equal(gto.metrics!.meanAbsA, 0);
  equal(gto.metrics!.lossGto, 0);
  equal(gto.metrics!.rewardM, gto.metrics!.rewardM0);
  ok(gto.metrics!.prefixes > 0, "some prefixes were trained on");
  deepEqual(gto.ttt.plosses, control.ttt.plosses);
  equal(gto.ttt.gradNorm, control.ttt.gradNorm);
  for (const [name, w] of Object.entries(gto.after.tensors)) {
    deepEqual(w, control.after.tensors[name as keyof typeof control.after.tensors], `${name}`);
  }
});

Deno.test("GTO step with M ≠ M₀ and a non-empty Ŝ: the surrogate changes the update, not the token loss", async () => {
  const m = ckpt(5), m0 = ckpt(5);
  for (const [name, w] of Object.entries(m0.tensors)) {
    const z = randn(w.length, name.length * 7, 0.01);
    w.set(w.map((v, i) => v * (1 + z[i])));
  }
  // Make the data after sequence 0's first root its M-tree's deepest branch (no leakage: the tree at
  // that root does not change), so Ŝ is that branch.
  const base = batch();
  const tokens0 = base.ids.slice(0, base.lengths[0]);
  const r0 = sampleGroupRoots({
    promptLen: base.promptLens[0],
    length: rootSpanLength(base.lengths[0], false, TREE.depth + 2), // no eos at the end: a cut sequence
    groups: 2,
    groupSize: 2,
    seed: 3,
    step: 0,
    sequence: 0,
  })[0];
  const { gpu, rec } = await testGpu();
  const target = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 256, maxBatch: 64 });
  const draft = Eagle3Draft.fromCheckpoint(gpu, m, { maxSeqLen: 256, maxBatch: 64 });
  const rep = await inspectTrees(rec, target, draft, tokens0, { roots: [r0], tree: TREE });
  draft.destroy();
  target.destroy();
  const t = rep.trees[0];
  let leaf = 0;
  t.nodes.forEach((n, i) => (n.depth > t.nodes[leaf].depth ? leaf = i : 0));
  const branch: number[] = [];
  for (let i = leaf; i > 0; i = t.nodes[i].parent) branch.unshift(t.nodes[i].token);
  const ids0 = tokens0.slice();
  ids0.splice(r0 + 1, branch.length, ...branch);
  const gto = await oneStep(m, m0, 0.5, { ids0, stdFloor: 1e-9 });
  const control = await oneStep(m, m0, 0, { ids0, stdFloor: 1e-9 });
  const x = gto.metrics!;
  for (const [k, v] of Object.entries(x)) ok(Number.isFinite(v), `${k} = ${v}`);
  ok(x.meanLength > 0, `mean l ${x.meanLength}: Ŝ is non-empty somewhere`);
  ok(x.meanAbsA > 0, "advantages are not all zero");
  deepEqual(gto.ttt.plosses, control.ttt.plosses, "the token loss itself is the same");
  ok(
    Object.entries(gto.after.tensors).some(([n, w]) =>
      JSON.stringify(Array.from(w)) !==
        JSON.stringify(Array.from(control.after.tensors[n as keyof typeof control.after.tensors]))
    ),
    "the GTO term changes the update",
  );
});

Deno.test("GTO step without debiasing: R = r(M), no M₀ trees", async () => {
  const c = ckpt(5);
  const metrics = (await oneStep(c, c, 0.5, { debias: false })).metrics!;
  ok(Number.isNaN(metrics.rewardM0), "M₀'s trees were not built");
  ok(Math.abs(metrics.meanR - metrics.rewardM) <= 1e-6 * Math.abs(metrics.rewardM), "mean R = mean r(M)");
  ok(metrics.meanR !== 0);
});

Deno.test("GTO ω = 0 without metrics skips the trees: the same update bit for bit, no metrics", async () => {
  const m = ckpt(5), m0 = ckpt(6);
  const full = await oneStep(m, m0, 0);
  const fast = await oneStep(m, m0, 0, { metrics: false });
  ok(full.metrics && full.metrics.prefixes > 0, "the full control step measured its trees");
  equal(fast.metrics, null);
  deepEqual(fast.ttt, full.ttt, "token losses, accuracies and gradient norm");
  for (const [name, w] of Object.entries(full.after.tensors)) {
    deepEqual(fast.after.tensors[name as keyof typeof full.after.tensors], w, `${name}`);
  }
});
