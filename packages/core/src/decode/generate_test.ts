/**
 * The GPU-resident decoding loop (`generate`) on the bundled tiny model against the CPU f64 oracle
 * `LlamaRef.greedy`: greedy tokens for prompts of 1, 5 and 40 tokens and token budgets that are not
 * multiples of `stepsPerRead`; chunked prefill (prompt longer than `maxBatch`); eos inside a readback
 * batch; reproducible sampling; input validation. Tiny is read from disk once; two GPU models share
 * it (maxBatch 64: one-shot prefill; maxBatch 16: chunked prefill).
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadModelDir } from "../io/model_dir.ts";
import { LlamaModel } from "../model/llama.ts";
import { LlamaRef } from "../reference/llama_ref.ts";
import { rng, testGpu } from "../testing/mod.ts";
import { ShapeError } from "../errors.ts";
import { generate, type GenerateOptions, type GenerateResult } from "./generate.ts";
import { TokenRing } from "./ring.ts";

const TINY = fileURLToPath(new URL("../../../../models/tiny", import.meta.url));
const dir = await loadModelDir(TINY);
const cfg = dir.config;
const V = cfg.vocabSize;
const ref = new LlamaRef(cfg, (name) => dir.weights.f32(name));
const { gpu, rec } = await testGpu();
const MAX_SEQ = 64;
const model = await LlamaModel.load(gpu, dir, { maxSeqLen: MAX_SEQ, maxBatch: 64, weightDtype: "f32" });
const chunked = await LlamaModel.load(gpu, dir, { maxSeqLen: MAX_SEQ, maxBatch: 16, weightDtype: "f32" });
// Each model decodes in its own caller-owned KV cache and token ring.
const kv = model.createKvCache(), chunkedKv = chunked.createKvCache();
const ring = new TokenRing(gpu, MAX_SEQ).tensor, chunkedRing = new TokenRing(gpu, MAX_SEQ).tensor;

/** `n` token ids in [6, V) (past the special ids) from `seed`. */
function randomPrompt(n: number, seed: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => 6 + Math.floor(r() * (V - 6)));
}

const PROMPTS: Record<number, number[]> = {
  1: randomPrompt(1, 11),
  5: randomPrompt(5, 12),
  40: randomPrompt(40, 13),
};
const MAX_NEW = 17;
// Oracle continuations (17 tokens; shorter budgets are prefixes).
const expected: Record<number, number[]> = {};
for (const [len, p] of Object.entries(PROMPTS)) expected[Number(len)] = ref.greedy(p, MAX_NEW);

/** generate() that also checks the streamed batches concatenate to the result. */
async function run(
  m: LlamaModel,
  prompt: number[],
  opts: GenerateOptions,
): Promise<GenerateResult> {
  const streamed: number[] = [];
  const [mkv, mring] = m === model ? [kv, ring] : [chunkedKv, chunkedRing];
  const res = await generate(m, rec, mkv, mring, prompt, {
    ...opts,
    onTokens: (ids) => streamed.push(...ids),
  });
  assert.deepEqual(streamed, res.tokens, "onTokens batches concatenate to the returned tokens");
  assert.equal(res.promptTokens, prompt.length);
  assert.ok(res.prefillSeconds >= 0 && res.decodeSeconds >= 0);
  return res;
}

for (const len of [1, 5, 40]) {
  Deno.test(`generate: greedy equals LlamaRef.greedy (prompt ${len} tokens, maxTokens 1/7/17, stepsPerRead 4/16)`, async () => {
    for (const stepsPerRead of [4, 16]) {
      for (const maxTokens of [1, 7, 17]) {
        const res = await run(model, PROMPTS[len], { maxTokens, stepsPerRead });
        const what = `prompt ${len}, maxTokens ${maxTokens}, stepsPerRead ${stepsPerRead}`;
        assert.deepEqual(res.tokens, expected[len].slice(0, maxTokens), what);
        assert.equal(res.finishReason, "length", what);
      }
    }
  });
}

Deno.test("generate: prompt longer than maxBatch (chunked prefill 16+16+8) equals LlamaRef.greedy", async () => {
  assert.equal(chunked.maxBatch, 16);
  for (const stepsPerRead of [4, 16]) {
    const res = await run(chunked, PROMPTS[40], { maxTokens: 17, stepsPerRead });
    assert.deepEqual(res.tokens, expected[40], `stepsPerRead ${stepsPerRead}`);
  }
  // 32 tokens: the last chunk is full (exactly 2 × maxBatch).
  const p32 = PROMPTS[40].slice(0, 32);
  const res = await run(chunked, p32, { maxTokens: 7, stepsPerRead: 4 });
  assert.deepEqual(res.tokens, ref.greedy(p32, 7));
});

Deno.test("generate: eos inside a readback batch stops there (finishReason stop); budget → length", async () => {
  const prompt = PROMPTS[5];
  const full = expected[5];
  // Batches with stepsPerRead 4: [0], [1..4], [5..8], ... → k = 5..8 are inside the third batch.
  const k = [6, 7, 5, 8].find((i) => !full.slice(0, i).includes(full[i]));
  assert.ok(k !== undefined, `no usable eos position in ${full}`);
  const eos = full[k];
  const stop = await run(model, prompt, { maxTokens: 17, stepsPerRead: 4, eosIds: [eos] });
  assert.deepEqual(stop.tokens, full.slice(0, k));
  assert.equal(stop.finishReason, "stop");
  // Other ids in the eos set that are never produced change nothing.
  const unused = [...Array(V).keys()].find((id) => !full.includes(id))!;
  const stop2 = await run(model, prompt, { maxTokens: 17, stepsPerRead: 16, eosIds: [unused, eos] });
  assert.deepEqual(stop2.tokens, full.slice(0, k));
  assert.equal(stop2.finishReason, "stop");
  // eos as the very first token: nothing is returned.
  const first = await run(model, prompt, { maxTokens: 17, stepsPerRead: 4, eosIds: [full[0]] });
  assert.deepEqual(first.tokens, []);
  assert.equal(first.finishReason, "stop");
  // The budget runs out exactly before the eos would be produced: length, not stop.
  const budget = await run(model, prompt, { maxTokens: k, stepsPerRead: 4, eosIds: [eos] });
  assert.deepEqual(budget.tokens, full.slice(0, k));
  assert.equal(budget.finishReason, "length");
});

Deno.test("generate: sampling is reproducible per seed, in range, and top-k 1 equals greedy", async () => {
  const prompt = PROMPTS[5];
  const opts = { maxTokens: 17, stepsPerRead: 4, temperature: 1 };
  const a = await run(model, prompt, { ...opts, seed: 1 });
  const b = await run(model, prompt, { ...opts, seed: 1, stepsPerRead: 16 });
  const c = await run(model, prompt, { ...opts, seed: 2 });
  assert.equal(a.tokens.length, 17);
  assert.deepEqual(b.tokens, a.tokens, "same seed → same tokens (independent of stepsPerRead)");
  assert.notDeepEqual(c.tokens, a.tokens, "different seed → different tokens");
  for (const t of [...a.tokens, ...c.tokens]) assert.ok(Number.isInteger(t) && t >= 0 && t < V, `token ${t}`);
  const k1 = await run(model, prompt, { ...opts, seed: 3, topK: 1 });
  assert.deepEqual(k1.tokens, expected[5], "top-k 1 at temperature 1 is greedy");
});

Deno.test("generate: bad input throws ShapeError naming the problem", async () => {
  const bad = (prompt: number[], opts: GenerateOptions, re: RegExp) =>
    assert.rejects(
      generate(model, rec, kv, ring, prompt, opts),
      (e: unknown) => e instanceof ShapeError && re.test(e.message),
      `expected ShapeError ${re}`,
    );
  await bad([], { maxTokens: 4 }, /prompt is empty/);
  await bad(
    [1, 2, 3],
    { maxTokens: MAX_SEQ - 2 },
    /prompt \(3\) \+ max tokens \(62\) exceeds the context \(64/,
  );
  await bad(
    [1, V, 3],
    { maxTokens: 4 },
    new RegExp(`prompt token ${V} is outside the vocabulary \\(${V}\\)`),
  );
  await bad([1, -1], { maxTokens: 4 }, /prompt token -1 is outside the vocabulary/);
  await bad([1, 2], { maxTokens: 0 }, /maxTokens=0 must be ≥ 1/);
  await bad([1, 2], { maxTokens: 2.5 }, /maxTokens=2.5 must be ≥ 1/);
  await bad([1, 2], { maxTokens: 4, stepsPerRead: 0 }, /stepsPerRead=0 must be an integer ≥ 1/);
  await bad([1, 2], { maxTokens: 4, stepsPerRead: 2.5 }, /stepsPerRead=2.5 must be an integer ≥ 1/);
  // The model still works after the rejected calls.
  const res = await run(model, PROMPTS[1], { maxTokens: 7, stepsPerRead: 4 });
  assert.deepEqual(res.tokens, expected[1].slice(0, 7));
});

Deno.test("generate: an AbortSignal ends generation after the batch being read (finishReason abort)", async () => {
  const prompt = PROMPTS[5];
  const ac = new AbortController();
  // Abort as the first batch (the prefill's token) arrives: the batch encoded behind it is discarded.
  const cut = await generate(model, rec, kv, ring, prompt, {
    maxTokens: 17,
    stepsPerRead: 4,
    signal: ac.signal,
    onTokens: () => ac.abort(),
  });
  assert.equal(cut.finishReason, "abort");
  assert.deepEqual(cut.tokens, expected[5].slice(0, 1));
  const none = await generate(model, rec, kv, ring, prompt, { maxTokens: 17, signal: ac.signal });
  assert.deepEqual([none.tokens, none.finishReason], [[], "abort"]);
  const res = await run(model, prompt, { maxTokens: 17, stepsPerRead: 4 });
  assert.deepEqual(res.tokens, expected[5], "the model works after an abort");
});
