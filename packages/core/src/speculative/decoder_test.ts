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
import { LlamaRef } from "../reference/llama_ref.ts";
import { chiSquareTest } from "../testing/stats.ts";

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

/**
 * The target's filtered distribution in f64 (temperature, then top-k with ties kept, then top-p over the
 * renormalised top-k set — the documented semantics of `filteredProbs`), with the distance of the
 * top-p cut from a tie in cumulative mass (an f32/f64 disagreement is possible only below ~1e-6).
 */
function filtered64(
  logits: Float32Array,
  o: { temperature: number; topK: number; topP: number },
): { probs: Map<number, number>; margin: number } {
  const z = Array.from(logits, (v) => v / o.temperature);
  const order = z.map((_, i) => i).sort((a, b) => z[b] - z[a] || a - b);
  let kept = o.topK > 0 ? order.filter((i) => z[i] >= z[order[o.topK - 1]]) : order;
  const mx = z[order[0]];
  const w = new Map(kept.map((i) => [i, Math.exp(z[i] - mx)]));
  let s = 0;
  for (const v of w.values()) s += v;
  let margin = Infinity;
  if (o.topP < 1) {
    let acc = 0, cut = kept.length;
    for (let j = 0; j < kept.length; j++) {
      acc += w.get(kept[j])! / s;
      margin = Math.min(margin, Math.abs(acc - o.topP));
      if (acc >= o.topP) {
        cut = j + 1;
        break;
      }
    }
    const thr = z[kept[cut - 1]];
    kept = kept.filter((i) => z[i] >= thr);
  }
  let t = 0;
  for (const i of kept) t += w.get(i)!;
  return { probs: new Map(kept.map((i) => [i, w.get(i)! / t])), margin };
}

Deno.test("T>0 speculative sampling has the target's distribution over 3 tokens (χ² vs exact joint, top-k and top-p, tiny)", async () => {
  // A smoke test of the whole decoder at T>0 (prefill sample, verification, filteredProbs, acceptance,
  // cycle hand-over): the joint of the first H tokens against the exact joint from the f64 CPU
  // reference, χ² at α = 1e-3 with low cells pooled, plus the support. H = 3 new tokens: the prefill's
  // sample, then the first cycle's (depth 1 and 2 of the tree, or a bonus and a cycle boundary).
  // Power (n = 160): 50 % at Σ Δ²/p ≈ 0.13–0.15 (df 10–15) — shifts of ≈ 0.08 of probability between
  // two 0.1 cells. A random draft rarely gets two drafts accepted, so this is a smoke test; the power
  // to see acceptance bugs lives in accept_sample_test.ts (horizon test: Σ Δ²/p ≈ 5e-4).
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const target = await LlamaModel.load(gpu, dir, { maxSeqLen: 64, maxBatch: 16 });
  const ref = new LlamaRef(dir.config, (n) => dir.weights.f32(n));
  const V = dir.config.vocabSize;
  const cases = [
    { text: "The number of", temperature: 1.3, topK: 3, topP: 1, horizon: 3, n: 160 },
    { text: "def add(a, b):", temperature: 0.7, topK: 4, topP: 0.9, horizon: 3, n: 160 },
  ];
  for (const c of cases) {
    const prompt = dir.tokenizer.encode(c.text);
    // Exact joint of the first `horizon` tokens by enumeration with the f64 reference.
    const joint = new Map<string, number>();
    let margin = Infinity;
    const expand = (prefix: number[], pr: number) => {
      if (prefix.length === c.horizon) {
        joint.set(prefix.join(","), pr);
        return;
      }
      ref.reset();
      const seq = [...prompt, ...prefix];
      const f = filtered64(ref.forward(seq).logits.subarray((seq.length - 1) * V), c);
      margin = Math.min(margin, f.margin);
      for (const [t, q] of f.probs) expand([...prefix, t], pr * q);
    };
    expand([], 1);
    ok(margin > 1e-4, `${c.text}: a top-p cut is within ${margin} of a tie; pick another prompt`);
    // Draft vocabulary = the tokens the cycles can emit (positions 2..H), so the random draft's tree
    // mostly covers the target's kept set and drafts get accepted (at depth 1 and 2).
    const later = new Set([...joint.keys()].flatMap((k) => k.split(",").slice(1).map(Number)));
    const ids = [...later].sort((a, b) => a - b);
    const t2d = new Uint8Array(V);
    for (const t of ids) t2d[t] = 1;
    const draft = Eagle3Draft.create(gpu, dir, {
      draftVocab: { d2t: new Int32Array(ids.map((t, i) => t - i)), t2d },
      seed: 9,
      maxSeqLen: 64,
      maxBatch: 16,
    });
    const spec = new SpecDecoder(target, draft, rec, { tree: { totalTokens: 6, depth: 2, topK: 3 } });
    const counts = new Map<string, number>();
    let accepted = 0, deep = 0;
    for (let seed = 1; seed <= c.n; seed++) {
      const r = await spec.generate(prompt, {
        maxTokens: c.horizon,
        eosIds: [],
        ...c,
        seed,
        cyclesPerRead: 1,
      });
      equal(r.tokens.length, c.horizon);
      const key = r.tokens.join(",");
      counts.set(key, (counts.get(key) ?? 0) + 1);
      accepted += r.acceptHistogram.slice(1).reduce((a, b) => a + b, 0);
      deep += r.acceptHistogram[2] ?? 0;
    }
    const res = chiSquareTest(counts, joint, c.n);
    console.log(
      `  ${
        JSON.stringify(c)
      }: ${res.summary}; ${joint.size} cells; drafts accepted in ${accepted} cycles (${deep} of depth 2)`,
    );
    ok(res.pass, `${c.text}: speculative samples do not follow the target distribution: ${res.summary}`);
    ok(accepted > 10, `only ${accepted} cycles accepted a draft: the rejection path alone was tested`);
    spec.destroy();
    draft.destroy();
  }
  target.destroy();
});
