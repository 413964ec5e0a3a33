/**
 * τ (acceptance length) of a draft, measured with the real speculative decoder: the trainer's
 * held-out evaluation and any "how good is this draft" check use this one function, so the number
 * is the same one `generate` and `bench:accept` report. τ is a ratio of sums over all prompts
 * (Σ tokens emitted by cycles / Σ cycles, bonus included), so long answers weigh by their cycles.
 * @module
 */
import { SpecDecoder } from "./decoder.ts";

/** Options of {@link measureTau}. */
export interface MeasureTauOptions {
  /** Most new tokens per prompt. */
  maxTokens: number;
  /** Ids that end generation (the target's eos ids). */
  eosIds: readonly number[];
  /** Temperature (default 0: greedy, the lossless setting τ is usually quoted at). */
  temperature?: number;
  /** Seed of prompt j is seed + j (T > 0; default 0). */
  seed?: number;
}

/** What {@link measureTau} returns. */
export interface TauResult {
  /** Σ emitted tokens / Σ cycles (0 when no cycle ran). */
  tau: number;
  /** Prompts decoded. */
  prompts: number;
  /** Prompts skipped because they do not fit the decoder's KV caches with the tree. */
  skipped: number;
  /** New tokens in all. */
  tokens: number;
  /** Verification cycles in all. */
  cycles: number;
}

/** Whether a prompt of `promptTokens` + `maxTokens` new fits `decoder`'s KV caches with its tree. */
export function fitsDecoder(decoder: SpecDecoder, promptTokens: number, maxTokens: number): boolean {
  const need = SpecDecoder.requiredRows(decoder.tree, promptTokens, maxTokens);
  return promptTokens >= 1 && need.target <= decoder.kv.target.capacity &&
    need.draft <= decoder.kv.draft.capacity;
}

/** Decode every prompt that fits with `decoder` and return τ over all of them. */
export async function measureTau(
  decoder: SpecDecoder,
  prompts: readonly (readonly number[])[],
  opts: MeasureTauOptions,
): Promise<TauResult> {
  let weighted = 0, cycles = 0, tokens = 0, run = 0;
  for (let j = 0; j < prompts.length; j++) {
    const p = prompts[j];
    if (!fitsDecoder(decoder, p.length, opts.maxTokens)) continue;
    const r = await decoder.generate(p, {
      maxTokens: opts.maxTokens,
      eosIds: opts.eosIds,
      temperature: opts.temperature ?? 0,
      seed: ((opts.seed ?? 0) + j) >>> 0,
    });
    weighted += r.acceptanceLength * r.cycles;
    cycles += r.cycles;
    tokens += r.tokens.length;
    run++;
  }
  return {
    tau: cycles > 0 ? weighted / cycles : 0,
    prompts: run,
    skipped: prompts.length - run,
    tokens,
    cycles,
  };
}
