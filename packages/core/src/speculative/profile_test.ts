/**
 * `SpecDecoder.profile`: the phase dispatch counts, and with `kernels: true` the per-kernel profile of
 * a full cycle (GPU timestamps per dispatch) whose per-phase dispatch counts must equal the unprofiled
 * counts, on the bundled tiny target with a random draft and a small tree.
 */
import { equal, ok } from "node:assert/strict";
import { loadModelDir } from "../io/model_dir.ts";
import { LlamaModel } from "../model/llama.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { SpecDecoder } from "./decoder.ts";
import { testGpu } from "../testing/mod.ts";

const TINY = decodeURIComponent(new URL("../../../../models/tiny", import.meta.url).pathname);

Deno.test("SpecDecoder.profile: per-kernel profile by phase agrees with the phase dispatch counts", async () => {
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const target = await LlamaModel.load(gpu, dir, { maxSeqLen: 128, maxBatch: 16 });
  const draft = Eagle3Draft.create(gpu, dir, { seed: 3, maxSeqLen: 128, maxBatch: 16 });
  const spec = new SpecDecoder(target, draft, rec, { tree: { totalTokens: 6, depth: 2, topK: 2 } });
  try {
    const prompt = dir.tokenizer.encode("def add(a, b):\n    return");
    const p = await spec.profile(prompt, { reps: 2, kernels: gpu.features.timestamp });
    ok(p.dispatches.drafting > 0 && p.dispatches.verification > 0);
    ok(p.dispatches.cycle > p.dispatches.drafting + p.dispatches.verification);
    if (!gpu.features.timestamp) return; // no timestamps: the phase counts are all there is
    const k = p.kernels!;
    const by = (scope: string) =>
      k.kernels.filter((r) => r.scope === scope).reduce((s, r) => s + r.dispatches, 0);
    equal(k.dispatches, p.dispatches.cycle);
    equal(by("draft extension") + by("tree growth"), p.dispatches.drafting);
    // The cycle's verification records the argmax too (T = 0); profile's verification timing does not.
    equal(by("verification"), p.dispatches.verification + 1);
    equal(by("bookkeeping"), p.dispatches.cycle - p.dispatches.drafting - p.dispatches.verification - 1);
    ok(k.kernels.some((r) => r.scope === "verification" && r.name.startsWith("attention")));
    ok(k.kernelMs > 0 && k.spanMs >= k.kernelMs * 0.999);
  } finally {
    spec.destroy();
    draft.destroy();
    target.destroy();
  }
});
