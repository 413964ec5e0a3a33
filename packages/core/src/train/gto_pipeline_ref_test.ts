import { equal, ok } from "node:assert/strict";
import { loadModelDir } from "../io/model_dir.ts";
import { initEagle3Checkpoint } from "../io/eagle3.ts";
import { TINY_DIR } from "../io/_testing.ts";
import { LlamaRef } from "../reference/llama_ref.ts";
import { Eagle3Ref } from "../reference/eagle3_ref.ts";
import { assertAllClose, randn } from "../testing/mod.ts";
import { referenceTreeAt } from "./gto_pipeline_ref.ts";

Deno.test("referenceTreeAt: a well-formed tree on tiny; root logits = the causal forward's; rewards in range", async () => {
  const dir = await loadModelDir(TINY_DIR);
  const target = new LlamaRef(dir.config, (name) => dir.weights.f32(name));
  const ckpt = initEagle3Checkpoint(dir, { draftVocabSize: 300, seed: 5, initStd: 0.08 });
  let s = 1;
  for (const [name, w] of Object.entries(ckpt.tensors)) {
    if (name.endsWith("norm.weight")) w.set(randn(w.length, s++, 0.2).map((x) => 1 + x));
  }
  const draft = new Eagle3Ref(ckpt, 64);
  const tokens = dir.tokenizer.encode("def add(a, b):\n    return a + b\n");
  const r = 6, cfg = { totalTokens: 16, depth: 3, topK: 4 };
  const { tree, logits, evaluation: ev } = referenceTreeAt(target, draft, tokens, r, cfg);
  equal(tree.tokens[0], tokens[r]);
  equal(tree.tokens.length, 16);
  const V = dir.config.vocabSize;
  target.reset();
  const full = target.forward(tokens.slice(0, r + 1));
  assertAllClose(logits.subarray(0, V), full.logits.subarray(r * V, (r + 1) * V), {
    atol: 1e-6,
    rtol: 1e-6,
    name: "root logits",
  });
  for (const L of ev.L) ok(L >= 0 && L <= tree.maxDepth, `L ${L}`);
  ok(ev.rewards.lse >= ev.rewards.max && ev.rewards.max >= ev.rewards.mean, "lse ≥ max ≥ mean");
  ok(ev.greedyLength <= tree.maxDepth);
  for (let j = 1; j < 16; j++) ok(ev.logProbs[j] <= 0 && Number.isFinite(ev.logProbs[j]), `node ${j}`);
});
