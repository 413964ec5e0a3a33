/**
 * Phase-I data: corpus parsing (interleaving, SVAMP's Body + Question, file:line errors, eval/
 * refused), prompt rendering with the chat template, sequences / batches with the assistant loss
 * mask, and target regeneration through `generate` on the tiny model with its JSONL cache (written,
 * reused without generating, extended, rewritten on a settings change, malformed lines named).
 * @module
 */
import assert from "node:assert/strict";
import { testGpu } from "../testing/mod.ts";
import { loadModelDir } from "../io/model_dir.ts";
import { LlamaModel } from "../model/llama.ts";
import { generate } from "../decode/generate.ts";
import { TokenRing } from "../decode/ring.ts";
import {
  DataFileError,
  loadCorpusPrompts,
  packBatch,
  readSampleCache,
  regenerateResponses,
  regenerateSettings,
  renderPrompt,
  sampleSequence,
} from "./data.ts";

const TINY = decodeURIComponent(new URL("../../../../models/tiny", import.meta.url).pathname);

async function corpus(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "gto_corpus_" });
  for (const [path, text] of Object.entries(files)) {
    const full = `${root}/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, text);
  }
  return root;
}

const GOOD = {
  "gsm8k/train.jsonl": '{"question": "G1?", "answer": "1"}\n{"question": "G2?", "answer": "2"}\n',
  "mbpp/mbpp.jsonl": '{"text": "M1", "code": "x"}\n',
  "svamp/SVAMP.json":
    '[\n  {\n    "Body": "B1.",\n    "Question": "Q1?"\n  },\n  {\n    "Body": "B2.",\n    "Question": "Q2?"\n  }\n]\n',
  "chat/prompts.jsonl": '{"prompt": "C1"}\n',
};

Deno.test("corpus prompts: interleaved sources, SVAMP Body + Question, limits", async () => {
  const root = await corpus(GOOD);
  const p = await loadCorpusPrompts(root);
  assert.deepEqual(p.map((x) => x.text), ["G1?", "M1", "B1. Q1?", "C1", "G2?", "B2. Q2?"]);
  assert.deepEqual(p.map((x) => x.source), ["gsm8k", "mbpp", "svamp", "chat", "gsm8k", "svamp"]);
  const one = await loadCorpusPrompts(root, { sources: ["svamp"], maxPerSource: 1 });
  assert.deepEqual(one, [{ source: "svamp", index: 0, text: "B1. Q1?" }]);
  await Deno.remove(root, { recursive: true });
});

Deno.test("corpus prompts: malformed files name the file and line; eval/ is refused", async () => {
  const root = await corpus({
    ...GOOD,
    "gsm8k/train.jsonl": '{"question": "ok"}\n\n{"question": 3}\n',
    "mbpp/mbpp.jsonl": '{"text": "a"}\n{not json\n',
    "svamp/SVAMP.json": '[\n  {"Body": "x", "Question": "y"},\n  {"Body": "x"}\n]',
  });
  await assert.rejects(loadCorpusPrompts(root, { sources: ["gsm8k"] }), (e: Error) => {
    assert.ok(e instanceof DataFileError);
    assert.match(e.message, /gsm8k\/train\.jsonl:3: field "question" is number/);
    return true;
  });
  await assert.rejects(loadCorpusPrompts(root, { sources: ["mbpp"] }), /mbpp\.jsonl:2: not valid JSON/);
  await assert.rejects(
    loadCorpusPrompts(root, { sources: ["svamp"] }),
    /SVAMP\.json:3: field "Question" is missing/,
  );
  await assert.rejects(loadCorpusPrompts(`${root}/nope`), /nope\/gsm8k\/train\.jsonl: cannot read/);
  await assert.rejects(loadCorpusPrompts("/x/data/eval"), /never be used for training/);
  await Deno.remove(root, { recursive: true });
});

Deno.test("sequences and batches: assistant loss mask, padding and truncation", () => {
  const s = { promptIds: [1, 2, 3], responseIds: [7, 8, 4] };
  assert.deepEqual(sampleSequence(s), { ids: [1, 2, 3, 7, 8, 4], lossMask: [0, 0, 0, 1, 1, 1] });
  const b = packBatch([s, { promptIds: [5], responseIds: [6] }], 4, 9);
  assert.deepEqual(Array.from(b.ids), [1, 2, 3, 7, 5, 6, 9, 9]);
  assert.deepEqual(Array.from(b.lossMask), [0, 0, 0, 1, 0, 1, 0, 0]);
});

Deno.test("regenerate: responses = generate(); cache written, reused, extended, rewritten", async () => {
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const model = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 64, maxBatch: 16 });
  const tmp = await Deno.makeTempDir({ prefix: "gto_regen_" });
  const cache = `${tmp}/cache.jsonl`;
  try {
    const prompts = ["Hi", "Name a color.", "Count to three."].map((t) => renderPrompt(dir, t));
    assert.deepEqual(
      prompts[0],
      dir.tokenizer.encode(dir.chatTemplate!.render([{ role: "user", content: "Hi" }], {
        addGenerationPrompt: true,
      })),
    );
    const progress: number[] = [];
    const first = await regenerateResponses(model, dir, rec, prompts.slice(0, 2), {
      maxTokens: 30,
      cacheFile: cache,
      onProgress: (p) => progress.push(p.done),
    });
    assert.deepEqual(progress, [0, 1, 2]);
    const kv = model.createKvCache(), ring = new TokenRing(gpu, model.maxSeqLen);
    for (let i = 0; i < 2; i++) {
      const g = await generate(model, rec, kv, ring.tensor, prompts[i], {
        maxTokens: 30,
        eosIds: dir.config.eosTokenIds,
      });
      // "Hi" stops with an eos (tiny answers it in ~23 tokens): the stop token ends the response.
      assert.equal(g.finishReason, i === 0 ? "stop" : "length");
      const n = g.tokens.length;
      assert.deepEqual(first[i].responseIds.slice(0, n), g.tokens);
      if (i === 0) {
        assert.equal(first[i].responseIds.length, n + 1);
        assert.ok(dir.config.eosTokenIds.includes(first[i].responseIds[n]));
      } else assert.equal(first[i].responseIds.length, n);
      assert.deepEqual(first[i].promptIds, prompts[i]);
    }
    kv.destroy();
    ring.destroy();
    const c = await readSampleCache(cache);
    assert.equal(c.samples.length, 2);
    // Reuse: nothing generated for the cached prefix; the third prompt is generated and appended.
    let last = { cached: -1, generatedTokens: -1 };
    const again = await regenerateResponses(model, dir, rec, prompts, {
      maxTokens: 30,
      cacheFile: cache,
      onProgress: (p) => last = p,
    });
    assert.equal(last.cached, 2);
    assert.deepEqual(again.slice(0, 2), first);
    assert.equal((await readSampleCache(cache)).samples.length, 3);
    // Another prompt list against the same cache is an error naming the line.
    await assert.rejects(
      regenerateResponses(model, dir, rec, [prompts[1]], { maxTokens: 30, cacheFile: cache }),
      /cache\.jsonl:2: cached prompt 0 differs/,
    );
    // Other settings: the cache is rewritten.
    await regenerateResponses(model, dir, rec, prompts.slice(0, 1), {
      maxTokens: 5,
      temperature: 0.7,
      cacheFile: cache,
      onProgress: (p) => last = p,
    });
    assert.equal(last.cached, 0);
    assert.equal((await readSampleCache(cache)).samples.length, 1);
    // Malformed records name their line.
    await Deno.writeTextFile(cache, '{"response_ids": [1]}\n', { append: true });
    await assert.rejects(readSampleCache(cache), /cache\.jsonl:3: field "prompt_ids"/);
  } finally {
    model.destroy();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("cache header: greedy regeneration records seed 0 (runs with other --seed values share the cache)", async () => {
  const dir = await loadModelDir(TINY);
  assert.equal(regenerateSettings(dir, { seed: 5 }).seed, 0);
  assert.equal(regenerateSettings(dir, { temperature: 0, seed: 5 }).seed, 0);
  assert.equal(regenerateSettings(dir, { temperature: 0.7, seed: 5 }).seed, 5);
});
