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

Deno.test("T>0 speculative sampling has the target's distribution (χ² vs exact probabilities, tiny)", async () => {
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const target = await LlamaModel.load(gpu, dir, { maxSeqLen: 64, maxBatch: 16 });
  const prompt = dir.tokenizer.encode("The number of");
  const temperature = 1.3, topK = 3;
  // Exact distribution of (t1, t2) from the f64 CPU reference: filtered softmax at each step.
  const ref = new LlamaRef(dir.config, (n) => dir.weights.f32(n));
  const V = dir.config.vocabSize;
  const filtered = (logits: Float32Array): Map<number, number> => {
    const z = Array.from(logits, (v) => v / temperature);
    const top = z.map((_, i) => i).sort((a, b) => z[b] - z[a] || a - b).slice(0, topK);
    const mx = z[top[0]];
    const w = top.map((i) => Math.exp(z[i] - mx));
    const s = w.reduce((a, b) => a + b, 0);
    return new Map(top.map((i, j) => [i, w[j] / s]));
  };
  const p1 = filtered(ref.forward(prompt).logits.subarray((prompt.length - 1) * V));
  const joint = new Map<string, number>();
  for (const [t1, q1] of p1) {
    ref.reset();
    const l = ref.forward([...prompt, t1]).logits;
    for (const [t2, q2] of filtered(l.subarray(prompt.length * V))) joint.set(`${t1},${t2}`, q1 * q2);
  }
  // Draft vocabulary = the candidate tokens, so the random draft proposes them and acceptance happens.
  const cand = [...new Set([...joint.keys()].flatMap((k) => k.split(",").map(Number)))];
  const ids = [...new Set([...cand, ...Array.from({ length: 32 }, (_, i) => i)])].sort((a, b) => a - b);
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
  const n = 240;
  let accepted = 0;
  for (let seed = 1; seed <= n; seed++) {
    const r = await spec.generate(prompt, {
      maxTokens: 2,
      eosIds: [],
      temperature,
      topK,
      seed,
      cyclesPerRead: 1,
    });
    const key = r.tokens.join(",");
    ok(joint.has(key), `seed ${seed}: (${key}) has probability 0 under the target`);
    counts.set(key, (counts.get(key) ?? 0) + 1);
    accepted += r.acceptHistogram.slice(1).reduce((a, b) => a + b, 0);
  }
  // χ² goodness of fit, cells with expected count < 5 pooled.
  let chi2 = 0, df = -1, poolE = 0, poolO = 0;
  for (const [k, p] of joint) {
    const e = p * n, o = counts.get(k) ?? 0;
    if (e < 5) {
      poolE += e;
      poolO += o;
      continue;
    }
    chi2 += (o - e) ** 2 / e;
    df++;
  }
  if (poolE > 0) {
    chi2 += (poolO - poolE) ** 2 / poolE;
    df++;
  }
  for (const [k, p] of joint) {
    console.log(`  (${k}): expected ${(p * n).toFixed(1)}, observed ${counts.get(k) ?? 0}`);
  }
  const crit = [10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88][Math.max(df, 1) - 1];
  console.log(
    `χ² = ${
      chi2.toFixed(2)
    } (df ${df}, critical ${crit} at p = 0.001); drafts accepted in ${accepted} cycles`,
  );
  ok(
    chi2 < crit,
    `speculative samples do not follow the target distribution: χ² ${chi2.toFixed(2)} ≥ ${crit}`,
  );
  ok(accepted > 10, `only ${accepted} cycles accepted a draft: the rejection path alone was tested`);
  spec.destroy();
  draft.destroy();
  target.destroy();
});
