/**
 * Speculative vs plain decoding: tokens/s and τ end to end, and where a cycle's time goes (drafting,
 * verification, bookkeeping — `SpecDecoder.profile`) beside a plain decode step of the same target.
 * Issue targets (H100): verification of the 60-token tree ≤ 1.5× a plain step, drafting ≤ 1× a plain
 * step. Without `--draft` a freshly initialised (random) draft is used: its τ is ≈ 1, so only the
 * cycle-cost figures are meaningful then.
 * @module
 */
import {
  Eagle3Draft,
  generate,
  type GpuDevice,
  KernelCache,
  LlamaModel,
  loadModelDir,
  Recorder,
  SpecDecoder,
  TokenRing,
  type TreeConfig,
} from "@gto/core";

/** One measured target + draft pair. */
export interface SpecBenchRow {
  /** Target directory name. */
  model: string;
  /** Draft directory, or "random". */
  draft: string;
  /** Tree shape. */
  tree: string;
  /** Plain greedy tokens/s (same prompt, same length). */
  plainTokensPerSecond: number;
  /** Speculative tokens/s. */
  specTokensPerSecond: number;
  /** τ (new tokens per cycle). */
  tau: number;
  /** ms of one plain decode step (1 / plain tok/s). */
  plainStepMs: number;
  /** Per-phase cycle cost. */
  draftingMs: number;
  /** Verification forward ms. */
  verificationMs: number;
  /** Acceptance + compaction ms. */
  bookkeepingMs: number;
  /** Full cycle ms. */
  cycleMs: number;
  /** Dispatches per full cycle. */
  dispatchesPerCycle: number;
}

/** Measure `targetDir` with `draftDir` (or a random draft) on one chat prompt. */
export async function benchSpec(
  gpu: GpuDevice,
  targetDir: string,
  opts: { draftDir?: string; tree?: TreeConfig; maxTokens?: number; reps?: number } = {},
): Promise<SpecBenchRow> {
  const dir = await loadModelDir(targetDir);
  const maxTokens = opts.maxTokens ?? 64;
  const target = await LlamaModel.load(gpu, dir, { maxSeqLen: 512, maxBatch: 128 });
  const draft = opts.draftDir
    ? await Eagle3Draft.load(gpu, opts.draftDir, dir, { maxSeqLen: 512, maxBatch: 128 })
    : Eagle3Draft.create(gpu, dir, { seed: 1, maxSeqLen: 512, maxBatch: 128 });
  const rec = new Recorder(gpu, new KernelCache(gpu));
  const text =
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. " +
    "How many clips did Natalia sell altogether in April and May?";
  const prompt = dir.tokenizer.encode(
    dir.chatTemplate
      ? dir.chatTemplate.render([{ role: "user", content: text }], { addGenerationPrompt: true })
      : text,
  );
  const spec = new SpecDecoder(target, draft, rec, { tree: opts.tree });
  // Plain: warm-up, then timed (in the speculative decoder's target cache, with a ring of its own).
  const kv = spec.kv.target, ring = new TokenRing(gpu, kv.capacity);
  await generate(target, rec, kv, ring.tensor, prompt, { maxTokens: 4, eosIds: [] });
  let t = performance.now();
  const plain = await generate(target, rec, kv, ring.tensor, prompt, {
    maxTokens,
    eosIds: [],
    stepsPerRead: 32,
  });
  const plainTps = plain.tokens.length / ((performance.now() - t) / 1000);
  await spec.generate(prompt, { maxTokens: 4, eosIds: [] });
  t = performance.now();
  const res = await spec.generate(prompt, { maxTokens, eosIds: [], cyclesPerRead: 8 });
  const specTps = res.tokens.length / ((performance.now() - t) / 1000);
  const prof = await spec.profile(prompt, { reps: opts.reps ?? 10 });
  const tr = spec.tree;
  ring.destroy();
  spec.destroy();
  draft.destroy();
  target.destroy();
  rec.destroy();
  return {
    model: targetDir.split("/").filter(Boolean).pop() ?? targetDir,
    draft: opts.draftDir ?? "random",
    tree: `${tr.totalTokens},${tr.depth},${tr.topK}`,
    plainTokensPerSecond: plainTps,
    specTokensPerSecond: specTps,
    tau: res.acceptanceLength,
    plainStepMs: 1000 / plainTps,
    draftingMs: prof.draftingMs,
    verificationMs: prof.verificationMs,
    bookkeepingMs: prof.bookkeepingMs,
    cycleMs: prof.cycleMs,
    dispatchesPerCycle: prof.dispatches.cycle,
  };
}

/** Markdown table of {@link SpecBenchRow}s. */
export function specTable(rows: SpecBenchRow[]): string {
  const f = (x: number, d = 1) => x.toFixed(d);
  const lines = [
    "| target | draft | tree | plain tok/s | spec tok/s | τ | plain step ms | drafting ms (×step) | verification ms (×step) | bookkeeping ms | cycle ms | dispatches/cycle |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.model} | ${r.draft} | ${r.tree} | ${f(r.plainTokensPerSecond)} | ${f(r.specTokensPerSecond)} | ${
        f(r.tau, 2)
      } | ${f(r.plainStepMs, 2)} | ${f(r.draftingMs)} (${f(r.draftingMs / r.plainStepMs, 2)}) | ${
        f(r.verificationMs)
      } (${f(r.verificationMs / r.plainStepMs, 2)}) | ${f(r.bookkeepingMs)} | ${f(r.cycleMs)} | ${
        f(r.dispatchesPerCycle, 0)
      } |`,
    );
  }
  return lines.join("\n");
}
