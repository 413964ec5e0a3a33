/**
 * How many worker threads Mesa's software Vulkan driver (lavapipe, on llvmpipe) should run compute
 * on, and the policy that picks it from the model's size.
 *
 * Why this exists: on a software adapter a dispatch is executed by llvmpipe's thread pool — the
 * submitting thread wakes one worker per core and waits for all of them, on every dispatch. A decode
 * step of a small model is dozens of short dispatches, so that hand-off dominates. With
 * `LP_NUM_THREADS=0` llvmpipe runs each dispatch inline on the submitting thread. Measured with
 * Deno 2.9.6 on Mesa 22.3.6 / LLVM 15 (2 cores, 2026-11-30, idle machine):
 *
 * | setting | trivial dispatch | tiny (2.2 M params) decode | small (15.7 M) decode |
 * |---|---|---|---|
 * | default (2 workers) | ~15–19 µs | 225 tok/s | 66 tok/s |
 * | `LP_NUM_THREADS=0` (inline) | ~1.3–3 µs | 343 tok/s | 52 tok/s |
 *
 * So small models go inline and larger ones keep the pool, whose second core pays for itself once
 * the matmuls are big enough (`docs/engine.md` §7 has the speculative-decoding figures). Mesa reads the
 * variable once, when the first adapter of the process is created, so the choice is per process; a
 * `LP_NUM_THREADS` already in the environment always wins (it is Mesa's own, documented knob).
 * @module
 */
import type { LlamaConfig } from "../io/config.ts";

/** Models with at most this many parameters run inline on a software adapter (see the module doc). */
export const INLINE_SOFTWARE_MAX_PARAMS = 6_000_000;

/** The config fields {@link llamaParamCount} reads. */
export type ParamCountConfig = Pick<
  LlamaConfig,
  | "hiddenSize"
  | "intermediateSize"
  | "numLayers"
  | "numHeads"
  | "numKvHeads"
  | "headDim"
  | "vocabSize"
  | "tieWordEmbeddings"
>;

/** Parameters of a LLaMA model with this config (norm weights included). */
export function llamaParamCount(c: ParamCountConfig): number {
  const H = c.hiddenSize, hd = c.headDim;
  const attn = H * hd * (2 * c.numHeads + 2 * c.numKvHeads); // q, o + k, v
  const mlp = 3 * H * c.intermediateSize;
  const perLayer = attn + mlp + 2 * H;
  const emb = c.vocabSize * H;
  return c.numLayers * perLayer + H + emb * (c.tieWordEmbeddings ? 1 : 2);
}

/**
 * The software-adapter worker threads for a model of `params` parameters: 0 (inline) up to
 * {@link INLINE_SOFTWARE_MAX_PARAMS}, else `undefined` (Mesa's default, one worker per core).
 */
export function softwareThreadsFor(params: number): number | undefined {
  return params <= INLINE_SOFTWARE_MAX_PARAMS ? 0 : undefined;
}

let applied: number | null | undefined; // undefined: no adapter requested yet in this process

/**
 * Set `LP_NUM_THREADS` for the first adapter of this process (called by `requestGpu` just before
 * `requestAdapter`) and return the setting in effect: a number, or null for Mesa's default. Later
 * calls return the first call's answer, since Mesa has already read it.
 */
export function applySoftwareThreads(threads: number | undefined): number | null {
  if (applied !== undefined) return applied;
  let env: string | undefined;
  try {
    env = Deno.env.get("LP_NUM_THREADS");
    if (env === undefined && threads !== undefined) {
      Deno.env.set("LP_NUM_THREADS", String(threads));
      env = String(threads);
    }
  } catch { /* no env permission: Mesa's default stays */ }
  const n = env === undefined ? NaN : Number(env);
  applied = Number.isInteger(n) && n >= 0 ? n : null;
  return applied;
}

/**
 * Whether a submit on this device runs its work before returning (llvmpipe with `LP_NUM_THREADS=0`):
 * then double buffering cannot overlap the GPU with the CPU, and a decode loop reads its first token
 * before encoding more work (decode/generate.ts).
 */
export function submitsRunInline(gpu: { isFallback: boolean; softwareThreads: number | null }): boolean {
  return gpu.isFallback && gpu.softwareThreads === 0;
}
