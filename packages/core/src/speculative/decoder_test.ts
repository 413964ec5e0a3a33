/**
 * Losslessness of GPU tree speculative decoding on the bundled tiny target with freshly initialised
 * (random) EAGLE-3 drafts: at T=0 the output must be token-identical to plain greedy decoding for any
 * draft, prompt, length, tree shape and readback cadence, with eos inside an accepted path and max
 * tokens reached mid-cycle. The draft vocabulary is made of tokens the target actually produces, so
 * random drafts still get some drafts accepted and the acceptance/compaction paths are exercised.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { loadModelDir } from "../io/model_dir.ts";
import { LlamaModel } from "../model/llama.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { generate } from "../decode/generate.ts";
import { TokenRing } from "../decode/ring.ts";
import { SpecDecoder } from "./decoder.ts";
import type { CycleTrace } from "./trace.ts";
import { rng, testGpu } from "../testing/mod.ts";
import { LlamaRef } from "../reference/llama_ref.ts";
import { chiSquareTest } from "../testing/stats.ts";

const TINY = decodeURIComponent(new URL("../../../../models/tiny", import.meta.url).pathname);

async function setup() {
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const target = await LlamaModel.load(gpu, dir, { maxSeqLen: 256, maxBatch: 64 });
  const kv = target.createKvCache(), ring = new TokenRing(gpu, target.maxSeqLen).tensor;
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
    greedy.push((await generate(target, rec, kv, ring, p, { maxTokens: 48, eosIds: [] })).tokens);
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
  return { gpu, rec, dir, target, kv, ring, prompts, greedy, draftVocab: { d2t, t2d } };
}

Deno.test("T=0 speculative decoding is token-identical to plain greedy (random drafts, trees, lengths, eos)", async () => {
  const { gpu, rec, dir, target, kv, prompts, greedy, draftVocab } = await setup();
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
  kv.destroy();
  target.destroy();
});

Deno.test("SpecDecoder: caller-owned caches sized by requiredRows, too-small caches rejected, abort", async () => {
  const { gpu, rec, dir, target, kv, ring, prompts, greedy, draftVocab } = await setup();
  const tree = { totalTokens: 8, depth: 2, topK: 3 };
  const draft = Eagle3Draft.create(gpu, dir, { draftVocab, seed: 2, maxSeqLen: 64, maxBatch: 64 });
  const p = prompts[1], maxTokens = 20;
  const rows = SpecDecoder.requiredRows(tree, p.length, maxTokens);
  deepEqual(rows, { target: p.length + maxTokens + 8 + 4, draft: p.length + maxTokens + 3 * 2 + 4 });
  const caches = { target: target.createKvCache(rows.target), draft: draft.createKvCache(rows.draft) };
  const spec = new SpecDecoder(target, draft, rec, { tree, kv: caches });
  equal(spec.kv.target, caches.target);
  const full = await spec.generate(p, { maxTokens, eosIds: [], cyclesPerRead: 2 });
  deepEqual(full.tokens, greedy[1].slice(0, maxTokens), "exactly sized caches");
  await rejects(
    spec.generate(p, { maxTokens: maxTokens + 1, eosIds: [] }),
    /needs \d+ target \/ \d+ draft KV rows; the caches hold/,
  );
  // Abort after the first readback batch (prefill + one cycle): a greedy prefix, finishReason abort.
  const ac = new AbortController();
  const cut = await spec.generate(p, {
    maxTokens,
    eosIds: [],
    cyclesPerRead: 1,
    signal: ac.signal,
    onTokens: () => ac.abort(),
  });
  equal(cut.finishReason, "abort");
  ok(cut.tokens.length >= 1 && cut.tokens.length < maxTokens, `aborted after ${cut.tokens.length} tokens`);
  deepEqual(cut.tokens, greedy[1].slice(0, cut.tokens.length));
  const none = await spec.generate(p, { maxTokens, eosIds: [], signal: ac.signal });
  deepEqual([none.tokens, none.finishReason, none.cycles], [[], "abort", 0]);
  const again = await spec.generate(p, { maxTokens, eosIds: [], cyclesPerRead: 3 });
  deepEqual(again.tokens, full.tokens, "the decoder works after an abort");
  spec.destroy();
  // The caches are the caller's: still alive after the decoder is gone.
  const plain = await generate(target, rec, caches.target, ring, p, { maxTokens: 5, eosIds: [] });
  deepEqual(plain.tokens, greedy[1].slice(0, 5));
  caches.target.destroy();
  caches.draft.destroy();
  draft.destroy();
  kv.destroy();
  target.destroy();
});

/** Structural checks of one generation's traces against its output; returns cycles with drafts accepted. */
function checkTraces(traces: CycleTrace[], output: number[], N: number, name: string): number {
  let accepted = 0;
  traces.forEach((t, c) => {
    const at = `${name} cycle ${c}`;
    deepEqual([t.tokens.length, t.parents.length, t.depths.length], [N, N, N], at);
    deepEqual([t.parents[0], t.depths[0]], [-1, 0], `${at}: root`);
    for (let n = 1; n < N; n++) {
      ok(t.parents[n] >= 0 && t.parents[n] < n, `${at}: parent of ${n}`);
      equal(t.depths[n], t.depths[t.parents[n]] + 1, `${at}: depth of ${n}`);
    }
    equal(t.accepted[0], 0, `${at}: the accepted path starts at the root`);
    for (let j = 1; j < t.accepted.length; j++) {
      equal(t.parents[t.accepted[j]], t.accepted[j - 1], `${at}: path`);
    }
    if (t.accepted.length > 1) accepted++;
    const full = [...t.accepted.slice(1).map((n) => t.tokens[n]), t.bonus];
    if (c < traces.length - 1) deepEqual(t.newTokens, full, `${at}: newTokens = accepted drafts + bonus`);
    else deepEqual(t.newTokens, full.slice(0, t.newTokens.length), `${at}: last cycle's newTokens (cut)`);
    if (c > 0) equal(t.tokens[0], traces[c - 1].bonus, `${at}: root = the previous bonus`);
  });
  if (traces.length > 0) {
    deepEqual(
      [traces[0].tokens[0], ...traces.flatMap((t) => t.newTokens)],
      output,
      `${name}: traces → output`,
    );
  }
  return accepted;
}

Deno.test("SpecDecoder onCycle: tracing leaves T=0 output unchanged; traces are consistent", async () => {
  const { gpu, rec, dir, target, kv, prompts, greedy, draftVocab } = await setup();
  // A wide first level (10 of the 128 draft-vocabulary tokens) so the random draft gets drafts accepted.
  const tree = { totalTokens: 24, depth: 2, topK: 10 };
  const draft = Eagle3Draft.create(gpu, dir, { draftVocab, seed: 3, maxSeqLen: 256, maxBatch: 64 });
  const spec = new SpecDecoder(target, draft, rec, { tree, maxTraceCycles: 4 });
  let accepted = 0;
  for (const [i, eosAt] of [[1, -1], [0, -1], [1, 20]]) {
    const g = greedy[i], maxTokens = 30;
    const eosIds = eosAt >= 0 ? [g[eosAt]] : [];
    const name = `prompt ${i}${eosAt >= 0 ? ` eos ${g[eosAt]}` : ""}`;
    const plain = await spec.generate(prompts[i], { maxTokens, eosIds, cyclesPerRead: 3 });
    const traces: CycleTrace[] = [], order: string[] = [];
    const res = await spec.generate(prompts[i], {
      maxTokens,
      eosIds,
      cyclesPerRead: 3,
      onCycle: (c) => (traces.push(c), order.push("c")),
      onTokens: () => order.push("t"),
    });
    deepEqual(res.tokens, plain.tokens, `${name}: tracing changes nothing`);
    const want = eosAt >= 0 ? g.slice(0, g.indexOf(g[eosAt])) : g.slice(0, maxTokens);
    deepEqual(res.tokens, want, `${name}: greedy`);
    equal(traces.length, res.cycles, `${name}: one trace per cycle`);
    deepEqual(traces.map((t) => t.accepted.length - 1), res.acceptLengths, `${name}: accepted lengths`);
    equal(order[0], "c", "a batch's cycles are reported before its tokens");
    accepted += checkTraces(traces, res.tokens, 24, name);
  }
  ok(accepted > 0, "no traced cycle accepted a draft");
  console.log(`traced cycles with drafts accepted: ${accepted}`);
  // T > 0: the same structure (sampled paths follow parents; traces concatenate to the output).
  const traces: CycleTrace[] = [];
  const s = await spec.generate(prompts[0], {
    maxTokens: 20,
    eosIds: [],
    temperature: 1,
    seed: 7,
    cyclesPerRead: 4,
    onCycle: (c) => traces.push(c),
  });
  checkTraces(traces, s.tokens, 24, "T=1");
  await rejects(
    spec.generate(prompts[0], { maxTokens: 4, cyclesPerRead: 5, onCycle: () => {} }),
    /cyclesPerRead=5 with onCycle exceeds maxTraceCycles 4/,
  );
  spec.destroy();
  draft.destroy();
  kv.destroy();
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
