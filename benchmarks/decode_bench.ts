/**
 * Prefill and plain-decoding throughput of a LLaMA target on the GPU, with the dispatch count per
 * decoded token. Decode runs `generate` with no early stop (fixed length) end to end — an 8-token
 * prompt, N new tokens, readbacks every 32 steps — and divides N by its wall time; prefill is one forward over a P-token prompt
 * timed from submit to `onSubmittedWorkDone` (which includes Deno's ~10 ms completion latency:
 * reported, not subtracted). Medians over repetitions.
 * @module
 */
import {
  generate,
  type GpuDevice,
  KernelCache,
  LlamaModel,
  loadModelDir,
  Recorder,
  TokenRing,
  writeTensor,
} from "@gto/core";
import { median } from "./stats.ts";

/** One measured configuration. */
export interface DecodeBenchRow {
  /** Model directory name. */
  model: string;
  /** Weight storage on the GPU. */
  weightDtype: string;
  /** Prompt tokens for the prefill measurement. */
  prefillTokens: number;
  /** Median prefill tokens/s. */
  prefillTokensPerSecond: number;
  /** Tokens generated per decode run. */
  decodeTokens: number;
  /** Median decode tokens/s: N tokens / wall time of `generate` (8-token prompt, readbacks included). */
  decodeTokensPerSecond: number;
  /** GPU dispatches recorded per decoded token. */
  dispatchesPerToken: number;
}

/** Measure one model directory. */
export async function benchDecode(
  gpu: GpuDevice,
  modelDir: string,
  opts: {
    decodeTokens?: number;
    prefillTokens?: number;
    reps?: number;
    weightDtype?: "auto" | "f32" | "f16";
    fuseRopeAttention?: "auto" | boolean;
  } = {},
): Promise<DecodeBenchRow> {
  const dir = await loadModelDir(modelDir);
  const N = opts.decodeTokens ?? 128, P = opts.prefillTokens ?? 128, reps = opts.reps ?? 3;
  const model = await LlamaModel.load(gpu, dir, {
    weightDtype: opts.weightDtype ?? "auto",
    fuseRopeAttention: opts.fuseRopeAttention,
    maxSeqLen: Math.max(P, 16) + N + 8,
    maxBatch: Math.max(P, 16),
  });
  const rec = new Recorder(gpu, new KernelCache(gpu));
  const kv = model.createKvCache(), ringOwner = new TokenRing(gpu, model.maxSeqLen);
  const ring = ringOwner.tensor;
  const V = dir.config.vocabSize;
  const prompt = Array.from({ length: P }, (_, i) => (i * 7919 + 13) % V);
  // Prefill: one forward over P tokens + last-row logits.
  const prefill: number[] = [];
  writeTensor(gpu, ring, new Uint32Array(prompt));
  model.forward(rec, kv, ring, 0, P, 0, { logits: "last" });
  await rec.finish(); // warm-up (pipelines)
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    model.forward(rec, kv, ring, 0, P, 0, { logits: "last" });
    await rec.finish();
    prefill.push(P / ((performance.now() - t) / 1000));
  }
  // Decode: short prompt, N tokens, no eos.
  const short = prompt.slice(0, 8);
  await generate(model, rec, kv, ring, short, { maxTokens: 8, eosIds: [] }); // warm-up
  const decode: number[] = [];
  let dispatches = 0;
  for (let r = 0; r < reps; r++) {
    const d0 = rec.stats.dispatches;
    const t = performance.now();
    const res = await generate(model, rec, kv, ring, short, { maxTokens: N, eosIds: [], stepsPerRead: 32 });
    const wall = (performance.now() - t) / 1000;
    dispatches = (rec.stats.dispatches - d0) / N;
    decode.push(res.tokens.length / wall);
  }
  kv.destroy();
  ringOwner.destroy();
  model.destroy();
  rec.destroy();
  return {
    model: modelDir.split("/").filter(Boolean).pop() ?? modelDir,
    weightDtype: model.weightDtype,
    prefillTokens: P,
    prefillTokensPerSecond: median(prefill),
    decodeTokens: N,
    decodeTokensPerSecond: median(decode),
    dispatchesPerToken: dispatches,
  };
}
