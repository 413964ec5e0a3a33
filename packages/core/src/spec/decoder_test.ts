/**
 * Losslessness of GPU tree speculative decoding on the bundled tiny target with freshly initialised
 * (random) EAGLE-3 drafts: at T=0 the output must be token-identical to plain greedy decoding for any
 * draft, prompt, length, tree shape and readback cadence, with eos inside an accepted path and max
 * tokens reached mid-cycle. The draft vocabulary is made of tokens the target actually produces, so
 * random drafts still get some drafts accepted and the acceptance/compaction paths are exercised.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { loadModelDir } from "../io/model_dir.ts";
import { LlamaModel } from "../model/llama.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { generate } from "../decode/generate.ts";
import { SpecDecoder } from "./decoder.ts";
import { rng, testGpu } from "../testing/mod.ts";

const TINY = decodeURIComponent(new URL("../../../../models/tiny", import.meta.url).pathname);

async function setup() {
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const target = await LlamaModel.load(gpu, dir, { maxSeqLen: 256, maxBatch: 64 });
  const ring = target.allocTokenRing();
  const r = rng(5);
  const prompts = [
    dir.tokenizer.encode(dir.chatTemplate!.render([{ role: "user", content: "What is 7 times 8?" }], {
      addGenerationPrompt: true,
    })),
    dir.tokenizer.encode("def add(a, b):\n    return"),
    [0],
    Array.from({ length: 30 }, () => 6 + Math.floor(r() * 8000)),
  ];
  const greedy: number[][] = [];
  for (const p of prompts) {
    greedy.push((await generate(target, rec, ring, p, { maxTokens: 48, eosIds: [] })).tokens);
  }
  // Draft vocabulary: the 96 most frequent tokens of the greedy outputs, then the lowest other ids.
  const freq = new Map<number, number>();
  for (const g of greedy) for (const t of g) freq.set(t, (freq.get(t) ?? 0) + 1);
  const ids = [...freq.keys()].sort((a, b) => freq.get(b)! - freq.get(a)! || a - b).slice(0, 96);
  for (let t = 0; ids.length < 128; t++) if (!ids.includes(t)) ids.push(t);
  ids.sort((a, b) => a - b);
  const V = dir.config.vocabSize;
  const d2t = new Int32Array(ids.map((t, i) => t - i));
  const t2d = new Uint8Array(V);
  for (const t of ids) t2d[t] = 1;
  return { gpu, rec, dir, target, ring, prompts, greedy, draftVocab: { d2t, t2d } };
}

Deno.test("T=0 speculative decoding is token-identical to plain greedy (random drafts, trees, lengths, eos)", async () => {
  const { gpu, rec, dir, target, prompts, greedy, draftVocab } = await setup();
  // The default EAGLE-3 tree is slow on the software adapter (~8 draft forwards + a 60-token
  // verification per cycle), so it runs on fewer lengths; the small trees cover the rest.
  const configs = [
    {
      tree: { totalTokens: 60, depth: 7, topK: 10 },
      seed: 1,
      cyclesPerRead: 3,
      lengths: [2, 17],
      prompts: [0, 1],
    },
    {
      tree: { totalTokens: 8, depth: 2, topK: 3 },
      seed: 2,
      cyclesPerRead: 1,
      lengths: [1, 2, 13, 40],
      prompts: [0, 1, 2, 3],
    },
    {
      tree: { totalTokens: 20, depth: 4, topK: 4 },
      seed: 3,
      cyclesPerRead: 5,
      lengths: [1, 9, 40],
      prompts: [0, 2, 3],
    },
  ];
  let acceptedSomething = 0;
  for (const c of configs) {
    const draft = Eagle3Draft.create(gpu, dir, { draftVocab, seed: c.seed, maxSeqLen: 512, maxBatch: 64 });
    const spec = new SpecDecoder(target, draft, rec, { tree: c.tree });
    for (const i of c.prompts) {
      const p = prompts[i];
      for (const maxTokens of c.lengths) {
        const name = `tree ${JSON.stringify(c.tree)} prompt ${i} maxTokens ${maxTokens}`;
        const res = await spec.generate(p, { maxTokens, eosIds: [], cyclesPerRead: c.cyclesPerRead });
        deepEqual(res.tokens, greedy[i].slice(0, maxTokens), name);
        equal(res.finishReason, "length", name);
        acceptedSomething += res.acceptHistogram.slice(1).reduce((a, b) => a + b, 0);
        ok(res.acceptanceLength >= 1 || res.cycles === 0, `${name}: τ ${res.acceptanceLength}`);
      }
      // eos: the token greedy decoding produces at step 5 (first occurrence) ends generation there.
      const g = greedy[i];
      const k = g.findIndex((t, j) => j >= 5 && g.indexOf(t) === j);
      if (k >= 0) {
        const res = await spec.generate(p, {
          maxTokens: 40,
          eosIds: [g[k], 99999 % 8192],
          cyclesPerRead: c.cyclesPerRead,
        });
        deepEqual(res.tokens, g.slice(0, k), `eos at ${k}, prompt ${i}`);
        equal(res.finishReason, "stop");
      }
    }
    spec.destroy();
    draft.destroy();
  }
  ok(acceptedSomething > 0, "no draft was ever accepted: the acceptance paths were not exercised");
  console.log(`drafts accepted in ${acceptedSomething} cycles`);
  target.destroy();
});
