/**
 * Phase-I training throughput: one EAGLE-3 TTT step (target pass, 7 unrolled draft steps forward
 * and backward, clip + AdamW, completion awaited) on the bundled tiny target with a fresh draft, as
 * `deno task train` runs it, at a few sequence lengths. Reports the median step time and training
 * tokens/s (B·S per step); never asserts a speed. Run alone with
 * `deno run -A benchmarks/train_bench.ts [--seq-len 128,256] [--batch 1] [--reps 5]`, or as
 * `deno task bench --only train`.
 * @module
 */
import { fail, type FlagSpec, helpText, parseCommandLine } from "@gto/core/cli";
import process from "node:process";
import {
  describeGpu,
  Eagle3Draft,
  type GpuDevice,
  KernelCache,
  LlamaModel,
  loadModelDir,
  Recorder,
  requestGpu,
} from "@gto/core";
import { TttTrainer } from "@gto/core/train";
import { median } from "./stats.ts";

/** One measured (B, S). */
export interface TrainBenchRow {
  /** Target directory name. */
  model: string;
  /** Sequences per step. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Median ms per step (recorded, submitted, completed). */
  stepMs: number;
  /** Training tokens per second (B·S / step time). */
  tokensPerSecond: number;
  /**
   * Median CPU seconds the process used per step (all threads, llvmpipe's workers included): on a
   * software adapter this is the work itself, far less sensitive than wall time to other processes
   * competing for the cores.
   */
  cpuSeconds: number;
  /** Timed steps (after one warm-up step). */
  reps: number;
}

/** Measure TTT steps of `targetDir` with a fresh draft (vocabulary `draftVocab`) at each S. */
export async function benchTrain(
  gpu: GpuDevice,
  targetDir: string,
  opts: { seqLens?: number[]; batch?: number; reps?: number; draftVocab?: number } = {},
): Promise<TrainBenchRow[]> {
  const seqLens = opts.seqLens ?? [128, 256];
  const B = opts.batch ?? 1, reps = opts.reps ?? 5;
  const dir = await loadModelDir(targetDir);
  const Smax = Math.max(...seqLens);
  const model = await LlamaModel.load(gpu, dir, { maxSeqLen: Smax, maxBatch: 256 });
  const draft = Eagle3Draft.create(gpu, dir, {
    seed: 1,
    draftVocabSize: Math.min(opts.draftVocab ?? 1024, dir.config.vocabSize),
    maxSeqLen: Smax,
  });
  const trainer = TttTrainer.create(gpu, model, draft, { maxBatch: B, maxSeqLen: Smax });
  const rec = new Recorder(gpu, new KernelCache(gpu));
  const rows: TrainBenchRow[] = [];
  try {
    for (const S of seqLens) {
      let seed = 7;
      const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
      const batch = () => ({
        batch: B,
        seqLen: S,
        ids: Array.from({ length: B * S }, () => 3 + next() % (dir.config.vocabSize - 3)),
        lossMask: Array.from({ length: B * S }, (_, i) => (i % S) >= S / 4 ? 1 : 0),
      });
      const times: number[] = [], cpu: number[] = [];
      for (let rep = 0; rep <= reps; rep++) {
        const b = batch();
        const t = performance.now(), c = process.cpuUsage();
        trainer.step(rec, b, { lr: 1e-4 });
        await rec.finish();
        const dc = process.cpuUsage(c);
        if (rep > 0) {
          times.push(performance.now() - t);
          cpu.push((dc.user + dc.system) / 1e6);
        }
      }
      const ms = median(times);
      rows.push({
        model: targetDir.split("/").filter(Boolean).at(-1)!,
        batch: B,
        seqLen: S,
        stepMs: ms,
        tokensPerSecond: (B * S) / (ms / 1000),
        cpuSeconds: median(cpu),
        reps,
      });
    }
  } finally {
    trainer.destroy();
    draft.destroy();
    model.destroy();
    rec.destroy();
  }
  return rows;
}

/** Markdown table of {@link benchTrain} rows. */
export function trainTable(rows: readonly TrainBenchRow[]): string {
  const lines = [
    "| model | B × S | TTT step ms (median) | training tok/s | CPU s / step | tok per CPU s |",
    "|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.model} | ${r.batch} × ${r.seqLen} | ${r.stepMs.toFixed(0)} (${r.reps} reps) | ${
        r.tokensPerSecond.toFixed(1)
      } | ${r.cpuSeconds.toFixed(2)} | ${(r.batch * r.seqLen / r.cpuSeconds).toFixed(1)} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  interface TrainBenchSettings {
    seqLen: number[];
    batch: number;
    reps: number;
    model: string;
  }
  const FLAGS: readonly FlagSpec<keyof TrainBenchSettings>[] = [
    {
      flag: "seq-len",
      key: "seqLen",
      kind: "numList",
      arg: "S[,S…]",
      min: 2,
      help: "Sequence lengths (default 128,256).",
    },
    { flag: "batch", key: "batch", kind: "int", arg: "B", min: 1, help: "Sequences per step (default 1)." },
    { flag: "reps", key: "reps", kind: "int", arg: "N", min: 1, help: "Timed steps per length (default 5)." },
    { flag: "model", key: "model", kind: "string", arg: "DIR", help: "Target model (default models/tiny)." },
  ];
  const values = await parseCommandLine<TrainBenchSettings>(
    FLAGS,
    Deno.args,
    helpText(FLAGS, {
      usage: "deno run -A benchmarks/train_bench.ts [options]",
      description: "Phase-I (TTT) step wall and CPU seconds and training tokens/s on this adapter.",
    }),
  );
  const seqLens = values.seqLen ?? [128, 256];
  if (seqLens.some((s) => !Number.isInteger(s))) fail("--seq-len: integers expected");
  const batch = values.batch ?? 1, reps = values.reps ?? 5;
  const gpu = await requestGpu();
  console.log(`adapter: ${describeGpu(gpu)}`);
  const model = values.model ?? decodeURIComponent(new URL("../models/tiny", import.meta.url).pathname);
  console.log(trainTable(await benchTrain(gpu, model, { seqLens, batch, reps })));
  gpu.device.destroy();
}
