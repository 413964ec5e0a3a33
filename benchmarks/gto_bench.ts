/**
 * GTO Phase II step cost against a Phase-I step at the same sequence length (issue 9's "≤ 3× Phase I
 * on the CPU" target): one `GtoObjective.step` (trees of M and M₀ at K·m prefixes, verification,
 * rewards, M₀'s forward-only TTT, M's 8-step TTT with the surrogate) and one `TttTrainer.step` on the
 * bundled tiny target with fresh drafts, completion awaited. Reports median wall ms and CPU seconds per
 * step (CPU seconds — llvmpipe's worker threads included — are far less sensitive than wall time to
 * other processes on a shared machine); never asserts a speed. Run with
 * `deno run -A benchmarks/gto_bench.ts [--seq-len 128] [--groups 4] [--group-size 8] [--tree 60,7,10] [--reps 2]`.
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import {
  describeGpu,
  Eagle3Draft,
  KernelCache,
  LlamaModel,
  loadModelDir,
  Recorder,
  requestGpu,
} from "@gto/core";
import { GtoObjective, TttTrainer } from "@gto/core/train";
import { median } from "./stats.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "seq-len": { type: "string" },
    groups: { type: "string" },
    "group-size": { type: "string" },
    tree: { type: "string" },
    reps: { type: "string" },
  },
  strict: true,
});
const S = Number(values["seq-len"] ?? 128),
  K = Number(values.groups ?? 4),
  m = Number(values["group-size"] ?? 8);
const [N, D, k] = (values.tree ?? "60,7,10").split(",").map(Number);
const reps = Number(values.reps ?? 2);
if (![S, K, m, N, D, k, reps].every((x) => Number.isInteger(x) && x >= 1) || S < 2 * m + 8) {
  console.error(
    "error: --seq-len S (≥ 2m + 8), --groups K, --group-size M, --tree T,D,K, --reps N: positive integers",
  );
  Deno.exit(1);
}
const gpu = await requestGpu();
console.log(`adapter: ${describeGpu(gpu)}`);
const dir = await loadModelDir(decodeURIComponent(new URL("../models/tiny", import.meta.url).pathname));
const tree = { totalTokens: N, depth: D, topK: k };
const target = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 2048, maxBatch: 1024 });
const dOpts = { seed: 1, draftVocabSize: 1024, maxSeqLen: 2048, maxBatch: Math.max(256, S, K * m * k) };
const draft = Eagle3Draft.create(gpu, dir, dOpts);
const draft0 = Eagle3Draft.create(gpu, dir, dOpts);
const rec = new Recorder(gpu, new KernelCache(gpu));
let seed = 7;
const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
const ids = Array.from({ length: S }, () => 3 + next() % (dir.config.vocabSize - 3));
const promptLen = Math.floor(S / 8);
const batch = {
  batch: 1,
  seqLen: S,
  ids,
  lossMask: ids.map((_, i) => (i >= promptLen ? 1 : 0)),
  promptLens: [promptLen],
  lengths: [S],
};
const ttt = TttTrainer.create(gpu, target, draft, { maxBatch: 1, maxSeqLen: S });
const gto = GtoObjective.create(gpu, target, draft, draft0, {
  maxBatch: 1,
  maxSeqLen: S,
  groups: K,
  groupSize: m,
  tree,
  seed: 1,
});
const measure = async (f: (rep: number) => void) => {
  const wall: number[] = [], cpu: number[] = [];
  for (let rep = 0; rep <= reps; rep++) {
    const t = performance.now(), c = process.cpuUsage();
    f(rep);
    await rec.finish();
    const dc = process.cpuUsage(c);
    if (rep > 0) {
      wall.push(performance.now() - t);
      cpu.push((dc.user + dc.system) / 1e6);
    }
  }
  return { ms: median(wall), cpu: median(cpu) };
};
const upd = { lr: 1e-4, maxGradNorm: 0.5 };
const p1 = await measure(() => ttt.step(rec, batch, upd));
const g = await measure((rep) => gto.step(rec, batch, rep, upd));
console.log(
  `| B × S | K × m | tree | Phase-I step ms / CPU s | GTO step ms / CPU s | ratio (wall / CPU) |\n|---|---|---|---|---|---|\n` +
    `| 1 × ${S} | ${K} × ${m} | ${N}/${D}/${k} | ${p1.ms.toFixed(0)} / ${p1.cpu.toFixed(2)} | ${
      g.ms.toFixed(0)
    } / ${g.cpu.toFixed(2)} | ${(g.ms / p1.ms).toFixed(2)} / ${(g.cpu / p1.cpu).toFixed(2)} |`,
);
gto.destroy();
ttt.destroy();
draft0.destroy();
draft.destroy();
target.destroy();
rec.destroy();
gpu.device.destroy();
