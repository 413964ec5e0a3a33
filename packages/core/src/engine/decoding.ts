/**
 * The engine's one contact with the decoders: plain decoding (`generate`) and tree speculative
 * decoding (`SpecDecoder`) behind one call, with one request and one outcome type, and the KV
 * sizing both need. Everything the engine knows about decoder APIs is in this file, so when the
 * decoders change (KV caches as values, `signal`, the per-cycle trace) only this file adapts.
 *
 * Halting early (abort, a matched stop string) is the caller's `onTokens` returning true after a
 * readback; it aborts the decoder's `signal`, so the loop ends within that readback batch: the work
 * already submitted (at most the next batch, double buffering) finishes on the GPU and is
 * discarded, and the call returns with `finishReason: "halted"` (speculative statistics included).
 * @module
 */
import type { Recorder } from "../gpu/recorder.ts";
import { Tensor } from "../gpu/tensor.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { Eagle3Draft } from "../model/eagle3.ts";
import type { KvCache } from "../model/kv_cache.ts";
import { generate } from "../decode/generate.ts";
import { TokenRing } from "../decode/ring.ts";
import { SpecDecoder } from "../speculative/decoder.ts";
import type { CycleTrace } from "../speculative/trace.ts";
import { type ResolvedTreeConfig, resolveTreeConfig, type TreeConfig } from "../tree/config.ts";

/** Per-cycle draft-tree trace of speculative decoding (the decoder's; see `SpecGenerateOptions.onCycle`). */
export type { CycleTrace } from "../speculative/trace.ts";

/** One decode call. */
export interface DecodeRequest {
  /** Prompt token ids (validated by the caller). */
  prompt: readonly number[];
  /** Most new tokens. */
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus mass (1 = off). */
  topP: number;
  /** Top-k (0 = off). */
  topK: number;
  /** Sampling seed (u32). */
  seed: number;
  /** Ids that end generation (excluded from the output). */
  eosIds: readonly number[];
  /** Use the draft (requires one). */
  speculative: boolean;
  /** Steps (plain) or cycles (speculative) per readback; default the decoder's (16 / 4). */
  readEvery?: number;
  /** New tokens after each readback; return true to halt. */
  onTokens: (ids: number[]) => boolean;
  /** Per-cycle trace (speculative; delivered when the decoder provides it). */
  onCycle?: (c: CycleTrace) => void;
}

/** Acceptance statistics of a speculative call. */
export interface SpeculativeStats {
  /** Verification cycles. */
  cycles: number;
  /** τ: new tokens per cycle, bonus included. */
  acceptanceLength: number;
  /** Fraction of cycles that accepted a draft at depth j = 1..Dp−1. */
  acceptedPerPosition: number[];
  /** Cycles per accepted length 0..Dp−1. */
  acceptHistogram: number[];
}

/** What a decode call produced. */
export interface DecodeOutcome {
  /** New tokens read back (eos excluded; on a halt, every token read back before it). */
  tokens: number[];
  /** eos (`stop`), max tokens (`length`), or `onTokens` asked to stop (`halted`). */
  finishReason: "stop" | "length" | "halted";
  /** Speculative calls (the cycles run, also when halted). */
  speculative?: SpeculativeStats;
}

/** KV rows a request of `context` tokens (prompt + new) needs, per model, for a tree (null: plain). */
export function requiredRows(
  tree: ResolvedTreeConfig | null,
  context: number,
): { target: number; draft: number } {
  return tree ? SpecDecoder.requiredRows(tree, context, 0) : { target: context, draft: 0 };
}

/** Resolve and validate a tree shape for a draft vocabulary (throws ShapeError naming the field). */
export function resolveTree(tree: TreeConfig | undefined, draftVocab?: number): ResolvedTreeConfig {
  return resolveTreeConfig(tree ?? {}, draftVocab);
}

/** Plain and speculative decoding over one target (+ optional draft), buffers allocated once. */
export class Decoders {
  readonly #target: LlamaModel;
  readonly #rec: Recorder;
  readonly #spec: SpecDecoder | null;
  readonly #kv: KvCache; // plain decoding's target cache (the speculative decoder's when there is one)
  readonly #ownsKv: boolean;
  readonly #ring: TokenRing; // plain decoding's token ring

  /** Build the decoders; `draft` null = plain only. `maxEos` bounds the stop ids per call. */
  constructor(
    target: LlamaModel,
    draft: Eagle3Draft | null,
    rec: Recorder,
    opts: { tree?: TreeConfig; maxEos: number },
  ) {
    this.#target = target;
    this.#rec = rec;
    this.#spec = draft ? new SpecDecoder(target, draft, rec, { tree: opts.tree, maxEos: opts.maxEos }) : null;
    this.#ownsKv = !this.#spec;
    this.#kv = this.#spec?.kv.target ?? target.createKvCache();
    this.#ring = new TokenRing(target.gpu, this.#kv.capacity);
  }

  /** The resolved tree (null without a draft). */
  get tree(): ResolvedTreeConfig | null {
    return this.#spec?.tree ?? null;
  }

  /** Run one request to its end (or until `onTokens` returns true). */
  async run(req: DecodeRequest): Promise<DecodeOutcome> {
    const sampling = {
      maxTokens: req.maxTokens,
      temperature: req.temperature,
      topP: req.topP,
      topK: req.topK,
      seed: req.seed,
      eosIds: req.eosIds,
    };
    // `onTokens` asking to stop aborts the decoder's own signal: the loop ends after this readback
    // batch, lets the batch already submitted finish, and still reports its statistics.
    const halt = new AbortController();
    const tokens: number[] = [];
    const collect = (ids: number[]) => {
      tokens.push(...ids);
      if (req.onTokens(ids)) halt.abort();
    };
    const finish = (f: "stop" | "length" | "abort") => (f === "abort" ? "halted" as const : f);
    try {
      if (req.speculative) {
        if (!this.#spec) throw new Error("Decoders.run: speculative decoding without a draft");
        const r = await this.#spec.generate(req.prompt, {
          ...sampling,
          cyclesPerRead: req.readEvery,
          onTokens: collect,
          onCycle: req.onCycle,
          signal: halt.signal,
        });
        return {
          tokens: r.finishReason === "abort" ? tokens : r.tokens,
          finishReason: finish(r.finishReason),
          speculative: {
            cycles: r.cycles,
            acceptanceLength: r.acceptanceLength,
            acceptedPerPosition: r.acceptedPerPosition,
            acceptHistogram: r.acceptHistogram,
          },
        };
      }
      const r = await generate(this.#target, this.#rec, this.#kv, this.#ring.tensor, req.prompt, {
        ...sampling,
        stepsPerRead: req.readEvery,
        onTokens: collect,
        signal: halt.signal,
      });
      return { tokens: r.finishReason === "abort" ? tokens : r.tokens, finishReason: finish(r.finishReason) };
    } catch (e) {
      // A callback threw: the loop left with a batch still in flight (double buffering); drain it
      // before the buffers are reused or freed.
      await this.#drain();
      throw e;
    }
  }

  /**
   * Wait until the GPU is idle and every readback mapped before now has been delivered: a loop that
   * exits early never awaits its last readback, whose map callback would otherwise touch a staging
   * buffer after `close()` freed it. Map callbacks run in request order, so one more readback
   * resolving means the earlier ones have run.
   */
  async #drain(): Promise<void> {
    const ring = this.#ring.tensor;
    await this.#rec.read(new Tensor(ring.buffer, ring.offset, [1], "u32", "drain"));
  }

  /** Free the decoders' buffers and caches (not the models). */
  destroy(): void {
    this.#spec?.destroy();
    if (this.#ownsKv) this.#kv.destroy();
    this.#ring.destroy();
  }
}
