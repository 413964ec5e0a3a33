/**
 * GPU forward checks that need ../shared: `small` (f16 weights) against its PyTorch reference, with
 * f16 weight storage when the adapter has shader-f16 and with f32 storage; and the third-party
 * stories260K (older config spelling, SentencePiece-style tokenizer) decoding its documented greedy
 * continuation. These fail — never skip — when ../shared is missing.
 */
import { equal } from "node:assert/strict";
import { generate, KernelCache, LlamaModel, loadModelDir, Recorder, TokenRing } from "@gto/core";
import { checkModelAgainstReference } from "../packages/core/src/testing/reference_check.ts";
import { testGpu } from "../packages/core/src/testing/mod.ts";

const SHARED = decodeURIComponent(new URL("../../shared/models", import.meta.url).pathname);

Deno.test("small (f16 checkpoint, f32 weights on the GPU) matches PyTorch", async () => {
  const dir = await loadModelDir(`${SHARED}/small`);
  const s = await checkModelAgainstReference(dir, `${SHARED}/small/reference.json`, { weightDtype: "f32" });
  console.log(
    `small f32: worst logit ${s.worstLogitRel.toExponential(2)}, hidden ${s.worstHiddenRel.toExponential(2)}`,
  );
});

Deno.test("small with f16 weight storage (when the adapter has shader-f16) matches PyTorch", async () => {
  const { gpu } = await testGpu();
  const dir = await loadModelDir(`${SHARED}/small`);
  const s = await checkModelAgainstReference(dir, `${SHARED}/small/reference.json`, {
    weightDtype: gpu.features.f16 ? "f16" : "f32",
  });
  console.log(
    `small ${gpu.features.f16 ? "f16" : "f32 (no shader-f16)"}: worst logit ${
      s.worstLogitRel.toExponential(2)
    }`,
  );
});

Deno.test("stories260K greedy continuation of 'Once upon a time' is the documented one", async () => {
  const { gpu } = await testGpu();
  const dir = await loadModelDir(`${SHARED}/stories260K`);
  const model = await LlamaModel.load(gpu, dir, { maxSeqLen: 128 });
  const rec = new Recorder(gpu, new KernelCache(gpu));
  const prompt = dir.tokenizer.encode("Once upon a time");
  equal(prompt[0], 1, "stories260K prompt starts with <s>");
  const kv = model.createKvCache(), ring = new TokenRing(gpu, model.maxSeqLen);
  const out = await generate(model, rec, kv, ring.tensor, prompt, {
    maxTokens: 40,
    eosIds: dir.config.eosTokenIds,
  });
  const text = dir.tokenizer.decode(out.tokens, { skipSpecialTokens: true });
  const expected = ", there was a little girl named Lily. She loved to play outside in the park.";
  equal(text.slice(0, expected.length), expected, `got ${JSON.stringify(text)}`);
  kv.destroy();
  ring.destroy();
  model.destroy();
  rec.destroy();
});
