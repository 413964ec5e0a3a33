/**
 * The attention variants a LlamaModel can choose per forward — fused RoPE + KV write + attention
 * (`fuseRopeAttention`), split-K (`attentionSplits`) and the software-adapter attention kernel
 * (`attentionKernel: "lanes"`) — against the two-dispatch workgroup-kernel path on
 * the bundled tiny model: prefill, then decode steps and a 3-token chunk at growing lengths.
 */
import assert from "node:assert/strict";
import { loadModelDir } from "../io/model_dir.ts";
import { type LlamaLoadOptions, LlamaModel } from "./llama.ts";
import { assertAllClose, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";

const TINY = decodeURIComponent(new URL("../../../../models/tiny", import.meta.url).pathname);

Deno.test("LlamaModel: fused RoPE+attention is bit-identical, split-K attention all-close, to the default path", async () => {
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const V = dir.config.vocabSize;
  const prompt = Array.from({ length: 40 }, (_, i) => (i * 7919 + 13) % V);
  const arena = new BufferArena(gpu, 1 << 16, "ids");
  const ids = arena.upload(new Uint32Array(prompt), [prompt.length], "u32", "ids");
  const run = async (opts: LlamaLoadOptions): Promise<Float32Array[]> => {
    const m = await LlamaModel.load(gpu, dir, { maxSeqLen: 64, maxBatch: 32, ...opts });
    const kv = m.createKvCache();
    const out: Float32Array[] = [];
    m.forward(rec, kv, ids, 0, 30, 0, { logits: "none" }); // prefill (unfused: T > 8)
    for (const [at, T] of [[30, 1], [31, 1], [32, 3], [35, 1], [36, 4]]) {
      const logits = m.forward(rec, kv, ids, at, T, at, { logits: "all" })!;
      out.push(await rec.readF32(logits));
    }
    m.destroy();
    kv.destroy();
    return out;
  };
  const base = await run({ fuseRopeAttention: false, attentionSplits: 1, attentionKernel: "workgroup" });
  const fused = await run({ fuseRopeAttention: true, attentionSplits: 1, attentionKernel: "workgroup" });
  const split = await run({ fuseRopeAttention: false, attentionSplits: 5 });
  const lanes = await run({ fuseRopeAttention: false, attentionSplits: 1, attentionKernel: "lanes" });
  for (let i = 0; i < base.length; i++) {
    assert.deepEqual(new Uint32Array(fused[i].buffer), new Uint32Array(base[i].buffer), `fused step ${i}`);
    assertAllClose(split[i], base[i], { rtol: 1e-4, atol: 1e-4, name: `split-K step ${i}` });
    assertAllClose(lanes[i], base[i], { rtol: 1e-4, atol: 1e-4, name: `lanes attention step ${i}` });
  }
  assert.throws(
    () => LlamaModel.fromWeights(gpu, dir.config, dir.weights, { attentionSplits: 0 }),
    /attentionSplits/,
  );
  arena.destroy();
});
