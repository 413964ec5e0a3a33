/**
 * Measurements behind the cost-aware tree (`auto_tree.ts`), taken on the adapter with the loaded
 * target and draft: the plain decode step, four probe trees' phase costs (`SpecDecoder.profile`) and
 * the draft's per-depth, per-rank acceptance from traced T = 0 cycles of a wide calibration tree on a
 * few built-in prompts (chat, code, arithmetic — like the three benchmarks). Acceptance is measured
 * only when the costs leave room for a win: if no candidate tree would beat plain decoding even with
 * every draft accepted (τ = min(N, depth + 2)), it is skipped (the slow half of calibration on a CPU
 * adapter). Run once per (adapter, target, draft) and cached by `tree_cache.ts`.
 *
 * Probes (N/D/k): 4/1/2, 16/4/2, 8/1/4 and the calibration tree 32/4/4 give verification at
 * N = 4, 8, 16, 32 (plain decoding's step is N = 1), and drafting at k = 2 and 4 for depths 1 and 4,
 * i.e. base(k) and perLevel(k) = (draft(4) − draft(1)) / 3. Each probe is profiled twice and each
 * phase's time is the smaller of the two (the plain step the smallest of three runs): on a shared
 * machine load only ever adds time. Bookkeeping (acceptance + compaction =
 * cycle − drafting − verification, each timed separately) is the median over the probes.
 * All decoders share two small KV caches, so calibration allocates little beyond the tree buffers.
 *
 * Why this small: on the loaded CPU adapter a 64/5/8 calibration tree took 80 s (a 64-token
 * verification ≈ 300 ms); 32/4/4 with 3 × 32 tokens keeps calibration near 20 s there. Ranks past
 * 4 are then unobserved (predicted 0, so k > 4 never pays in the model) and depths past 5 reuse
 * depth 5's acceptance.
 * @module
 */
import type { Recorder } from "../gpu/recorder.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { Eagle3Draft } from "../model/eagle3.ts";
import { generate } from "../decode/generate.ts";
import { argmax } from "../ops/select.ts";
import { TokenRing } from "../decode/ring.ts";
import { SpecDecoder } from "../speculative/decoder.ts";
import {
  type AcceptanceCounts,
  type AcceptanceProfile,
  chooseTree,
  countAcceptance,
  emptyCounts,
  estimateAcceptance,
  perfectAcceptance,
  type TreeCostTable,
  type TreeShape,
} from "./auto_tree.ts";

/** User messages the acceptance is measured on (encoded by the caller with the chat template). */
export const CALIBRATION_MESSAGES: readonly string[] = [
  "Explain in a few sentences how a bicycle stays upright.",
  "Write a Python function that returns the n-th Fibonacci number.",
  "Tom has 3 apples and buys 5 more. He gives 2 to Ann. How many apples does he have now?",
];

/** The calibration tree (also the largest probe): depth and top-k bound the auto grid. */
export const CALIBRATION_TREE: TreeShape = { totalTokens: 32, depth: 4, topK: 4 };
const PROBES: readonly TreeShape[] = [
  { totalTokens: 4, depth: 1, topK: 2 },
  { totalTokens: 16, depth: 4, topK: 2 },
  { totalTokens: 8, depth: 1, topK: 4 },
  CALIBRATION_TREE,
];

/** Options of {@link calibrateAutoTree}. */
export interface CalibrateOptions {
  /** Calibration prompts (token ids; e.g. {@link CALIBRATION_MESSAGES} chat-encoded). */
  prompts: readonly (readonly number[])[];
  /** New tokens per calibration prompt (default 32). */
  maxTokens?: number;
  /** The target's eos ids. */
  eosIds: readonly number[];
  /** Timed repetitions per phase in `profile` (default 4). */
  reps?: number;
}

/** What {@link calibrateAutoTree} measured. */
export interface Calibration {
  /** The cost table. */
  costs: TreeCostTable;
  /**
   * The acceptance profile; null when it was not measured because no candidate tree beats plain
   * decoding on this adapter even if every draft were accepted (the choice is then plain decoding).
   */
  acceptance: AcceptanceProfile | null;
  /** The raw acceptance counts. */
  counts: AcceptanceCounts;
  /** Traced cycles the acceptance comes from (0 when skipped). */
  cycles: number;
  /** Wall seconds of the calibration. */
  seconds: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Measure costs and acceptance (see the module comment). Needs target.maxBatch ≥ 32. */
export async function calibrateAutoTree(
  target: LlamaModel,
  draft: Eagle3Draft,
  rec: Recorder,
  opts: CalibrateOptions,
): Promise<Calibration> {
  const t0 = performance.now();
  const maxTokens = opts.maxTokens ?? 32, reps = opts.reps ?? 4;
  if (opts.prompts.length === 0) throw new Error("calibrateAutoTree: no prompts");
  const longest = Math.max(...opts.prompts.map((p) => p.length));
  const rows = SpecDecoder.requiredRows(CALIBRATION_TREE, longest, maxTokens + 2);
  const kv = {
    target: target.createKvCache(rows.target, "calib.kv"),
    draft: draft.createKvCache(rows.draft),
  };
  const ring = new TokenRing(target.gpu, rows.target);
  try {
    // Plain step, timed like `SpecDecoder.profile` times the phases, so both sides of the comparison
    // are GPU time: after a warm-up generate() (pipelines, and a prompt in the KV cache), 32 greedy steps
    // (the loop's forward + argmax) in one submit, less the completion latency of an empty round trip
    // (Deno's ~11 ms; fastest of 3); the fastest of 3 such runs (load only ever adds time). Timing
    // generate() itself mixed in how its batches overlap readbacks, which differs between adapters
    // (with inline dispatch it counted part of a batch as prefill and read 1.8 instead of ~2.7 ms).
    const P0 = opts.prompts[0].length;
    await generate(target, rec, kv.target, ring.tensor, opts.prompts[0], { maxTokens: 2, eosIds: [] });
    const latency = await rec.completionLatencyMs();
    const STEPS = Math.max(1, Math.min(32, kv.target.capacity - P0 - 2)); // within the KV cache
    const steps: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      for (let s = 0; s < STEPS; s++) {
        const p = P0 + s; // the token at p (written by the previous step) is fed; p + 1 is written
        const logits = target.forward(rec, kv.target, ring.tensor, p, 1, p, { logits: "last" })!;
        argmax(rec, ring.tensor, logits, { outOffset: p + 1 });
      }
      await rec.finish();
      steps.push(Math.max(0, performance.now() - t - latency) / STEPS);
    }
    const plainStepMs = Math.min(...steps);

    const profiles: Awaited<ReturnType<SpecDecoder["profile"]>>[] = [];
    for (const tree of PROBES) {
      const dec = new SpecDecoder(target, draft, rec, { tree, kv, maxEos: Math.max(1, opts.eosIds.length) });
      try {
        // The fieldwise minimum of two profiles: load spikes only ever add time.
        const a = await dec.profile(opts.prompts[0], { reps });
        const b = await dec.profile(opts.prompts[0], { reps });
        profiles.push({
          ...a,
          draftingMs: Math.min(a.draftingMs, b.draftingMs),
          verificationMs: Math.min(a.verificationMs, b.verificationMs),
          bookkeepingMs: Math.min(a.bookkeepingMs, b.bookkeepingMs),
          cycleMs: Math.min(a.cycleMs, b.cycleMs),
        });
      } finally {
        dec.destroy();
      }
    }
    const prof = (i: number) => profiles[i];
    const drafting = [[0, 1], [2, 3]].map(([lo, hi]) => {
      // (D = 1, D = 4) at one k → base + D·perLevel.
      const a = PROBES[lo], b = PROBES[hi];
      const perLevelMs = Math.max(0, (prof(hi).draftingMs - prof(lo).draftingMs) / (b.depth - a.depth));
      return { k: a.topK, baseMs: Math.max(0, prof(lo).draftingMs - a.depth * perLevelMs), perLevelMs };
    });
    const costs: TreeCostTable = {
      plainStepMs,
      verify: PROBES.map((t, i) => ({ n: t.totalTokens, ms: prof(i).verificationMs }))
        .sort((a, b) => a.n - b.n),
      drafting,
      bookkeepingMs: median(PROBES.map((_, i) => prof(i).bookkeepingMs)),
    };

    // Acceptance only when some tree could beat plain decoding at all (every draft accepted).
    const counts = emptyCounts(CALIBRATION_TREE.depth + 1, CALIBRATION_TREE.topK);
    let cycles = 0;
    let acceptance: AcceptanceProfile | null = null;
    if (chooseTree(costs, perfectAcceptance(), { minGain: 1 }).choice.tree !== null) {
      const dec = new SpecDecoder(target, draft, rec, {
        tree: CALIBRATION_TREE,
        kv,
        maxEos: Math.max(1, opts.eosIds.length),
      });
      try {
        for (const p of opts.prompts) {
          const r = await dec.generate(p, {
            maxTokens,
            eosIds: opts.eosIds,
            cyclesPerRead: 4,
            onCycle: (c) => countAcceptance(counts, c),
          });
          cycles += r.cycles;
        }
      } finally {
        dec.destroy();
      }
      acceptance = estimateAcceptance(counts);
    }
    return {
      costs,
      acceptance,
      counts,
      cycles,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    ring.destroy();
    kv.target.destroy();
    kv.draft.destroy();
  }
}
