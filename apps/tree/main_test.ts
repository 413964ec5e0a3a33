/**
 * `deno task tree`: the JSON report on the bundled tiny target with a random draft checked against
 * the CPU oracle (`referenceTreeAt`: reference target + draft + buildDraftTree + path forwards), the
 * readable rendering, and one-line errors.
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { initEagle3Checkpoint, loadModelDir, saveEagle3Checkpoint, type TreeReport } from "@gto/core";
import { Eagle3Ref, LlamaRef, referenceTreeAt } from "@gto/core/reference";
import { randn, runCli } from "@gto/core/testing";

const CLI = new URL("./main.ts", import.meta.url).pathname;
const TINY = decodeURIComponent(new URL("../../models/tiny", import.meta.url).pathname);
const dir = await loadModelDir(TINY);

async function randomDraftDir() {
  const ckpt = initEagle3Checkpoint(dir, { draftVocabSize: 300, seed: 8, initStd: 0.08 });
  let s = 1;
  for (const [name, w] of Object.entries(ckpt.tensors)) {
    if (name.endsWith("norm.weight")) w.set(randn(w.length, s++, 0.2).map((x) => 1 + x));
  }
  ckpt.tensors["lm_head.weight"] = ckpt.tensors["lm_head.weight"].map((x) => 6 * x);
  const out = await Deno.makeTempDir({ prefix: "gto_tree_cli_" });
  await saveEagle3Checkpoint(out, ckpt);
  return { out, ckpt };
}

Deno.test("deno task tree --json: the report equals the CPU reference computation", async () => {
  const { out, ckpt } = await randomDraftDir();
  try {
    const prompt = "def add(a, b):\n    return a + b\n";
    const r = await runCli(
      CLI,
      "--draft",
      out,
      "--prompt",
      prompt,
      "--at",
      "4,9",
      "--tree",
      "16,3,4",
      "--json",
    );
    equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as TreeReport;
    const tokens = dir.tokenizer.encode(prompt);
    deepEqual(report.tokens, tokens);
    deepEqual(report.trees.map((t) => t.root_index), [4, 9]);
    const target = new LlamaRef(dir.config, (name) => dir.weights.f32(name));
    const draft = new Eagle3Ref(ckpt, tokens.length + 16);
    for (const t of report.trees) {
      const ref = referenceTreeAt(target, draft, tokens, t.root_index, {
        totalTokens: 16,
        depth: 3,
        topK: 4,
      });
      const label = `root ${t.root_index}`;
      equal(t.root_token, tokens[t.root_index]);
      deepEqual(t.nodes.map((n) => n.token), Array.from(ref.tree.tokens), `${label}: tokens`);
      deepEqual(t.nodes.map((n) => n.parent), Array.from(ref.tree.parents), `${label}: parents`);
      deepEqual(t.nodes.map((n) => n.depth), Array.from(ref.tree.depth), `${label}: depths`);
      t.nodes.forEach((n, i) => {
        ok(Math.abs(n.draft_score - ref.tree.nodeScores[i]) <= 2e-4, `${label} node ${i} draft score`);
        if (i === 0) {
          equal(n.target_prob, null);
          equal(n.greedy_ok, null);
          return;
        }
        const p = Math.exp(ref.evaluation.logProbs[i]);
        ok(
          Math.abs(n.target_prob! - p) <= 1e-4 * p + 1e-9,
          `${label} node ${i}: p_T ${n.target_prob} vs ${p}`,
        );
        equal(n.greedy_ok, ref.evaluation.greedyOk[i] === 1, `${label} node ${i}: greedy_ok`);
      });
      deepEqual(t.branches.map((b) => b.nodes), ref.evaluation.branches, `${label}: branches`);
      t.branches.forEach((b, i) => ok(Math.abs(b.L - ref.evaluation.L[i]) <= 1e-5, `${label}: L`));
      for (const k of ["lse", "max", "mean"] as const) {
        ok(Math.abs(t.reward[k] - ref.evaluation.rewards[k]) <= 1e-5, `${label}: reward ${k}`);
      }
      equal(t.accepted_length, ref.evaluation.greedyLength, `${label}: accepted length`);
    }
    const text = await runCli(CLI, "--draft", out, "--prompt", prompt, "--tree", "16,3,4");
    equal(text.code, 0, text.stderr);
    ok(text.stdout.startsWith(`root ${tokens.length - 1} `), text.stdout.slice(0, 200));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("deno task tree: bad input gives one error line", async () => {
  const noDraft = await runCli(CLI, "--prompt", "hello world");
  equal(noDraft.code, 1);
  ok(/^error: --draft DIR is required\n?$/.test(noDraft.stderr), noDraft.stderr);
  const both = await runCli(CLI, "--draft", "x", "--prompt", "a", "--chat", "b");
  equal(both.code, 1);
  ok(both.stderr.includes("exactly one of --prompt or --chat"), both.stderr);
  const far = await runCli(CLI, "--draft", "x", "--prompt", "hello world", "--at", "99");
  equal(far.code, 1);
  ok(far.stderr.includes("--at 99"), far.stderr);
});
