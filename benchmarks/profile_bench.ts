/**
 * `deno task bench --only profile`: which kernels a speculative cycle and a plain decode step spend
 * their GPU time in. Phase costs (`SpecDecoder.profile`) show that a cycle is slow; this names the
 * kernels, each dispatch timed with GPU timestamps (`Recorder.startProfile`, gpu/profiler.ts), summed
 * per (phase, kernel) and divided by the cycles or steps recorded. Needs `timestamp-query` (llvmpipe
 * and the Vulkan GPUs expose it). Profiling puts every dispatch in a pass of its own, so the totals are
 * for attribution; the unprofiled phase times are printed beside them.
 * @module
 */
import {
  argmax,
  type DispatchProfile,
  Eagle3Draft,
  generate,
  type GpuDevice,
  KernelCache,
  LlamaModel,
  loadModelDir,
  perUnit,
  Recorder,
  SpecDecoder,
  TokenRing,
  type TreeConfig,
} from "@gto/core";

/** One profiled configuration: a plain step (tree null) or a speculative cycle. */
export interface ProfileBenchRow {
  /** Target directory name. */
  model: string;
  /** Draft directory, "random", or null for the plain step. */
  draft: string | null;
  /** Tree `T,D,K`, or null for the plain step. */
  tree: string | null;
  /** Unprofiled ms per step / cycle (one submit of `reps`, less the completion latency). */
  ms: number;
  /** Unprofiled phase ms of a cycle (drafting, verification, bookkeeping); null for the plain step. */
  phases: { drafting: number; verification: number; bookkeeping: number } | null;
  /** Per-kernel GPU time per step / cycle (all kernels, largest first). */
  profile: DispatchProfile;
}

const PROMPT = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in " +
  "May. How many clips did Natalia sell altogether in April and May?";

/** Profile a plain step of `targetDir` and a cycle of each of `trees` with `draftDir` (or a random draft). */
export async function benchProfile(
  gpu: GpuDevice,
  targetDir: string,
  opts: { draftDir?: string; trees: TreeConfig[]; reps?: number },
): Promise<ProfileBenchRow[]> {
  const reps = opts.reps ?? 10;
  const dir = await loadModelDir(targetDir);
  const target = await LlamaModel.load(gpu, dir, { maxSeqLen: 512, maxBatch: 128 });
  const draft = opts.draftDir
    ? await Eagle3Draft.load(gpu, opts.draftDir, dir, { maxSeqLen: 512, maxBatch: 128 })
    : Eagle3Draft.create(gpu, dir, { seed: 1, maxSeqLen: 512, maxBatch: 128 });
  const rec = new Recorder(gpu, new KernelCache(gpu));
  const prompt = dir.tokenizer.encode(
    dir.chatTemplate
      ? dir.chatTemplate.render([{ role: "user", content: PROMPT }], { addGenerationPrompt: true })
      : PROMPT,
  );
  const name = targetDir.split("/").filter(Boolean).pop() ?? targetDir;
  const rows: ProfileBenchRow[] = [];

  // Plain step: the prompt prefilled by `generate`, then `reps` steps (forward of one token + argmax),
  // timed unprofiled in one submit, then profiled.
  const kv = target.createKvCache(), ring = new TokenRing(gpu, kv.capacity);
  await generate(target, rec, kv, ring.tensor, prompt, { maxTokens: 4, eosIds: [] });
  const P = prompt.length;
  const steps = () => {
    for (let r = 0; r < reps; r++) {
      const p = P + r;
      const logits = target.forward(rec, kv, ring.tensor, p, 1, p, { logits: "last" })!;
      argmax(rec, ring.tensor, logits, { outOffset: p + 1 });
    }
  };
  steps();
  await rec.finish(); // warm-up
  // Less Deno's completion latency (an empty round trip, fastest of 3), as SpecDecoder.profile does.
  let latency = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await rec.finish();
    latency = Math.min(latency, performance.now() - t0);
  }
  const t = performance.now();
  steps();
  await rec.finish();
  const stepMs = Math.max(0, performance.now() - t - latency) / reps;
  rec.startProfile();
  rec.profileScope("plain step");
  steps();
  rows.push({
    model: name,
    draft: null,
    tree: null,
    ms: stepMs,
    phases: null,
    profile: perUnit(await rec.stopProfile(), reps),
  });
  kv.destroy();
  ring.destroy();

  for (const tree of opts.trees) {
    const spec = new SpecDecoder(target, draft, rec, { tree });
    const prof = await spec.profile(prompt, { reps, kernels: true });
    const tr = spec.tree;
    rows.push({
      model: name,
      draft: opts.draftDir ?? "random",
      tree: `${tr.totalTokens},${tr.depth},${tr.topK}`,
      ms: prof.cycleMs,
      phases: {
        drafting: prof.draftingMs,
        verification: prof.verificationMs,
        bookkeeping: prof.bookkeepingMs,
      },
      profile: prof.kernels!,
    });
    spec.destroy();
  }
  draft.destroy();
  target.destroy();
  rec.destroy();
  return rows;
}

/** A markdown report of one row: its header line and its `top` kernels. */
export function profileTable(row: ProfileBenchRow, top = 12): string {
  const f = (x: number, d = 2) => x.toFixed(d);
  const p = row.profile;
  const what = row.tree ? `speculative cycle, tree ${row.tree}, draft ${row.draft}` : "plain decode step";
  const lines = [
    `${row.model}: ${what}: ${f(row.ms)} ms unprofiled` +
    (row.phases
      ? ` (drafting ${f(row.phases.drafting)}, verification ${f(row.phases.verification)}, bookkeeping ${
        f(row.phases.bookkeeping)
      })`
      : "") +
    `; profiled: ${f(p.dispatches, 0)} dispatches, ${f(p.kernelMs)} ms in kernels, ${
      f(p.spanMs)
    } ms first-to-last (the rest is per-dispatch overhead)`,
    "",
    "| phase | kernel | dispatches | ms | % of kernel time |",
    "|---|---|---|---|---|",
  ];
  for (const k of perUnit(p, 1, top).kernels) {
    lines.push(
      `| ${k.scope || "–"} | ${k.name} | ${f(k.dispatches, k.dispatches % 1 ? 1 : 0)} | ${f(k.ms, 3)} | ${
        f(100 * k.ms / Math.max(p.kernelMs, 1e-9), 1)
      } |`,
    );
  }
  return lines.join("\n");
}
