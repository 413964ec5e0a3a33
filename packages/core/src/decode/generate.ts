/**
 * Plain autoregressive decoding with a GPU-resident loop over a caller-owned KV cache and token ring
 * (so one model can decode several sequences). Token ids live in the GPU token ring: the
 * prompt is uploaded once, each step embeds ring[p], runs the target, and the selector (argmax at
 * T=0, the GPU sampler otherwise) writes ring[p+1]. The CPU never waits per token: it encodes
 * `stepsPerRead` steps per submit, queues a readback of the new ring entries, submits, and only then
 * awaits the *previous* batch's readback (double buffering), checking it for eos. Steps encoded after
 * an eos are wasted GPU work and discarded. Positions are known on the CPU (pos = prompt + step), so
 * they travel in uniform params. An `AbortSignal` is checked whenever a batch has been read back, so
 * a cancelled call returns within one batch (finishReason `abort`). Batches start at 8 steps and double
 * up to 64 while a batch takes under ~110 ms (`ReadBatches`, read_batches.ts: on llvmpipe with inline
 * dispatch Deno's ~11 ms readback latency is not hidden by the double buffering).
 * @module
 */
import type { Recorder } from "../gpu/recorder.ts";
import { writeTensor } from "../gpu/arena.ts";
import { Tensor } from "../gpu/tensor.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { KvCache } from "../model/kv_cache.ts";
import { ShapeError } from "../errors.ts";
import { argmax, sample } from "../ops/select.ts";
import { ReadBatches } from "./read_batches.ts";
import { submitsRunInline } from "../gpu/software_threads.ts";

/** Sampling settings. temperature 0 = greedy. */
export interface SamplingOptions {
  /** Softmax temperature; 0 selects the argmax (default 0). */
  temperature?: number;
  /** Nucleus mass kept (1 = off, default). */
  topP?: number;
  /** Keep only the k most likely tokens (0 = off, default). */
  topK?: number;
  /** RNG seed for sampling (default 0). */
  seed?: number;
}

/** Options for {@link generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** Most new tokens to produce. */
  maxTokens: number;
  /** Token ids that end generation (not included in the output). Empty = never stop early. */
  eosIds?: readonly number[];
  /**
   * Decode steps encoded per submit/readback. Default: 8, doubling up to 64 while a batch takes
   * under ~110 ms (read_batches.ts).
   */
  stepsPerRead?: number;
  /** Called with each batch of new tokens as soon as it is read back (streaming). */
  onTokens?: (ids: number[]) => void;
  /** Checked after each readback batch: once aborted, generation ends there (finishReason `abort`). */
  signal?: AbortSignal;
}

/** Why a generation ended: an eos id, the token budget, or the caller's `AbortSignal`. */
export type FinishReason = "stop" | "length" | "abort";

/** What {@link generate} returns. */
export interface GenerateResult {
  /** New tokens, without the stop token. */
  tokens: number[];
  /** Prompt length in tokens. */
  promptTokens: number;
  /** `stop` when an eos id was produced, `length` when maxTokens was reached, `abort` when cancelled. */
  finishReason: FinishReason;
  /** Seconds spent on the prompt (prefill + first token). */
  prefillSeconds: number;
  /** Seconds from the first token to the end. */
  decodeSeconds: number;
}

/**
 * Generate up to `maxTokens` tokens after `prompt` with `model`, using (and overwriting) `kv` and the
 * u32 token `ring` (e.g. a `TokenRing`'s tensor). Requires prompt + maxTokens ≤ kv.capacity ≤ ring size.
 */
export async function generate(
  model: LlamaModel,
  rec: Recorder,
  kv: KvCache,
  ring: Tensor,
  prompt: readonly number[],
  opts: GenerateOptions,
): Promise<GenerateResult> {
  const P = prompt.length;
  const maxTokens = opts.maxTokens;
  if (P === 0) throw new ShapeError("generate: the prompt is empty (needs at least one token)");
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new ShapeError(`generate: maxTokens=${maxTokens} must be ≥ 1`);
  }
  if (P + maxTokens > kv.capacity) {
    throw new ShapeError(
      `generate: prompt (${P}) + max tokens (${maxTokens}) exceeds the context (${kv.capacity} tokens)`,
    );
  }
  kv.expect(model.config.numLayers, model.config.numKvHeads * model.config.headDim, 0, "generate");
  ring.expectShape([-1], "u32");
  if (ring.size < P + maxTokens) {
    throw new ShapeError(`generate: token ring ${ring.name} holds ${ring.size} < ${P + maxTokens}`);
  }
  const V = model.config.vocabSize;
  for (const id of prompt) {
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new ShapeError(`generate: prompt token ${id} is outside the vocabulary (${V})`);
    }
  }
  const temperature = opts.temperature ?? 0;
  const eos = new Set(opts.eosIds ?? []);
  const K = opts.stepsPerRead;
  if (K !== undefined && (!Number.isInteger(K) || K < 1)) {
    throw new ShapeError(`generate: stepsPerRead=${K} must be an integer ≥ 1`);
  }
  const batches = new ReadBatches({ fixed: K, first: 8, max: 64 });
  const select = (logits: Tensor, outOffset: number, step: number) => {
    if (temperature <= 0) argmax(rec, ring, logits, { outOffset });
    else {
      sample(rec, ring, logits, {
        temperature,
        topK: opts.topK ?? 0,
        topP: opts.topP ?? 1,
        seed: opts.seed ?? 0,
        step,
        outOffset,
      });
    }
  };
  const t0 = performance.now();
  if (opts.signal?.aborted) {
    return { tokens: [], promptTokens: P, finishReason: "abort", prefillSeconds: 0, decodeSeconds: 0 };
  }
  writeTensor(model.gpu, ring, new Uint32Array(prompt));
  for (let at = 0; at < P; at += model.maxBatch) {
    const T = Math.min(model.maxBatch, P - at);
    const logits = model.forward(rec, kv, ring, at, T, at, { logits: at + T === P ? "last" : "none" });
    if (logits) select(logits, P, 0);
  }
  const view = (from: number, n: number) =>
    new Tensor(ring.buffer, ring.offset + 4 * from, [n], "u32", `${ring.name}[${from}:${from + n}]`);
  // Batch 0: just the first token (so prefill time is measured); later batches K tokens each.
  const tokens: number[] = [];
  let finish: FinishReason = "length";
  let inflight: Promise<ArrayBuffer> | null = rec.readback(view(P, 1));
  rec.submit();
  let produced = 1; // tokens whose selection has been encoded
  let prefillSeconds = 0;
  let firstBatch = true;
  let done = false;
  const consume = (buf: ArrayBuffer) => {
    const ids = new Uint32Array(buf);
    const fresh: number[] = [];
    for (const id of ids) {
      if (done) break;
      if (eos.has(id)) {
        finish = "stop";
        done = true;
        break;
      }
      fresh.push(id);
      if (tokens.length + fresh.length >= maxTokens) done = true;
    }
    tokens.push(...fresh);
    if (fresh.length > 0) opts.onTokens?.(fresh);
  };
  // With inline dispatch (llvmpipe, LP_NUM_THREADS=0) a submit runs its batch before returning, so
  // encoding batch 1 before the first token is read would delay that token by a whole batch and
  // count batch 1's work as prefill: read it first (costs nothing there; on a GPU it would idle the
  // device for one readback latency, so there the first batch rides along as before).
  if (submitsRunInline(model.gpu)) {
    consume(await inflight);
    inflight = null;
    const now = performance.now();
    prefillSeconds = (now - t0) / 1000;
    firstBatch = false;
    if (done || produced >= maxTokens || opts.signal?.aborted) {
      if (!done && opts.signal?.aborted) finish = "abort";
      return { tokens, promptTokens: P, finishReason: finish, prefillSeconds, decodeSeconds: 0 };
    }
  }
  let tDecode = performance.now();
  let tRead = tDecode; // when the last readback resolved
  while (inflight || (produced < maxTokens && !done)) {
    let next: Promise<ArrayBuffer> | null = null;
    if (produced < maxTokens) {
      const n = Math.min(batches.size, maxTokens - produced);
      for (let s = 0; s < n; s++) {
        const p = P + produced - 1; // position of the token being fed
        const logits = model.forward(rec, kv, ring, p, 1, p, { logits: "last" })!;
        select(logits, p + 1, produced);
        produced++;
      }
      next = rec.readback(view(P + produced - n, n));
      rec.submit();
    }
    if (!inflight) { // inline dispatch, right after the first token: nothing is in flight yet
      inflight = next;
      continue;
    }
    consume(await inflight);
    const now = performance.now();
    if (firstBatch) {
      firstBatch = false;
      tDecode = now;
      prefillSeconds = (tDecode - t0) / 1000;
    } else {
      batches.next(now - tRead);
    }
    tRead = now;
    inflight = next;
    if (!done && opts.signal?.aborted) {
      finish = "abort";
      done = true;
    }
    if (done) {
      if (inflight) await inflight; // let the GPU finish before the caller reuses the model
      break;
    }
  }
  return {
    tokens,
    promptTokens: P,
    finishReason: finish,
    prefillSeconds,
    decodeSeconds: (performance.now() - tDecode) / 1000,
  };
}
