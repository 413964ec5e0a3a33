/**
 * measureTau on tiny with a random draft: τ is the ratio of sums of the per-call numbers the
 * decoder reports (checked against calling `generate` on each prompt directly), prompts that do not
 * fit the KV caches are skipped and counted, and an empty prompt list gives τ 0.
 * @module
 */
import assert from "node:assert/strict";
import { loadModelDir } from "../io/model_dir.ts";
import { LlamaModel } from "../model/llama.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { testGpu } from "../testing/mod.ts";
import { SpecDecoder } from "./decoder.ts";
import { fitsDecoder, measureTau } from "./tau.ts";

const TINY = decodeURIComponent(new URL("../../../../models/tiny", import.meta.url).pathname);

Deno.test("measureTau: ratio of sums over the prompts that fit; the others are skipped", async () => {
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const target = await LlamaModel.load(gpu, dir, { maxSeqLen: 96, maxBatch: 64 });
  const draft = Eagle3Draft.create(gpu, dir, { seed: 2, draftVocabSize: 256, maxSeqLen: 96, maxBatch: 16 });
  const dec = new SpecDecoder(target, draft, rec, { tree: { totalTokens: 8, depth: 2, topK: 3 } });
  try {
    const prompts = [dir.tokenizer.encode("def add(a, b):"), dir.tokenizer.encode("Once upon a time"), [0]];
    const tooLong = Array.from({ length: 90 }, (_, i) => 10 + i);
    assert.ok(!fitsDecoder(dec, tooLong.length, 16) && fitsDecoder(dec, prompts[0].length, 16));
    const r = await measureTau(dec, [...prompts, tooLong], { maxTokens: 16, eosIds: [] });
    let emitted = 0, cycles = 0, tokens = 0;
    for (const p of prompts) {
      const g = await dec.generate(p, { maxTokens: 16, eosIds: [] });
      emitted += g.acceptHistogram.reduce((s, c, L) => s + c * (L + 1), 0);
      cycles += g.cycles;
      tokens += g.tokens.length;
    }
    assert.deepEqual(
      { prompts: r.prompts, skipped: r.skipped, cycles: r.cycles, tokens: r.tokens },
      { prompts: 3, skipped: 1, cycles, tokens },
    );
    assert.ok(Math.abs(r.tau - emitted / cycles) < 1e-9, `tau ${r.tau} vs ${emitted / cycles}`);
    assert.ok(r.tau >= 1);
    assert.deepEqual(await measureTau(dec, [], { maxTokens: 4, eosIds: [] }), {
      tau: 0,
      prompts: 0,
      skipped: 0,
      tokens: 0,
      cycles: 0,
    });
  } finally {
    dec.destroy();
    draft.destroy();
    target.destroy();
  }
});
