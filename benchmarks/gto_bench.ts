/**
 * GTO Phase II step cost against a Phase-I step at the same sequence length (issue 9's "≤ 3× Phase I
 * on the CPU" target): one `GtoObjective.step` (trees of M and M₀ at K·m prefixes, verification,
 * rewards, M₀'s forward-only TTT, M's 8-step TTT with the surrogate) and one `TttTrainer.step` on the
 * bundled tiny target with fresh drafts, completion awaited. Reports median wall ms and CPU seconds per
 * step (CPU seconds — llvmpipe's worker threads included — are far less sensitive than wall time to
 * other processes on a shared machine); never asserts a speed. Run with
 * `deno run -A benchmarks/gto_bench.ts [--seq-len 128] [--groups 4] [--group-size 8] [--tree 60,7,10] [--reps 2]
 * [--draft models/tiny-draft]`.
 * @module
 */
import { fail, type FlagSpec, helpText, parseCommandLine } from "@gto/core/cli";
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

interface GtoBenchSettings {
  seqLen: number;
  groups: number;
  groupSize: number;
  tree: { totalTokens: number; depth: number; topK: number };
  reps: number;
  draft: string;
  omega: number;
}
const FLAGS: readonly FlagSpec<keyof GtoBenchSettings>[] = [
  {
    flag: "seq-len",
    key: "seqLen",
    kind: "int",
    arg: "S",
    min: 2,
    help: "Tokens per sequence (default 128).",
  },
  {
    flag: "groups",
    key: "groups",
    kind: "int",
    arg: "K",
    min: 1,
    help: "GTO groups per sequence (default 4).",
  },
  {
    flag: "group-size",
    key: "groupSize",
    kind: "int",
    arg: "M",
    min: 1,
    help: "Prefixes per group (default 8).",
  },
  { flag: "tree", key: "tree", kind: "tree", arg: "T,D,K", help: "Training tree (default 60,7,10)." },
  { flag: "reps", key: "reps", kind: "int", arg: "N", min: 1, help: "Timed steps of each kind (default 2)." },
  {
    flag: "omega",
    key: "omega",
    kind: "num",
    arg: "W",
    min: 0,
    help: "ω (default 0.5); 0 times the control's unlogged step (trees skipped).",
  },
  {
    flag: "draft",
    key: "draft",
    kind: "string",
    arg: "DIR",
    help:
      "M and M₀ from this EAGLE-3 directory, e.g. models/tiny-draft (default: fresh random drafts, whose " +
      "trees have a different shape).",
  },
];
const v = await parseCommandLine<GtoBenchSettings>(
  FLAGS,
  Deno.args,
  helpText(FLAGS, {
    usage: "deno run -A benchmarks/gto_bench.ts [options]",
    description: "Median wall ms and CPU seconds of one GTO Phase II step against one Phase-I step on tiny.",
  }),
);
const S = v.seqLen ?? 128, K = v.groups ?? 4, m = v.groupSize ?? 8;
const { totalTokens: N, depth: D, topK: k } = v.tree ?? { totalTokens: 60, depth: 7, topK: 10 };
const reps = v.reps ?? 2;
if (S < 2 * m + 8) fail(`--seq-len ${S}: needs at least 2·group-size + 8 = ${2 * m + 8}`);
const gpu = await requestGpu();
console.log(`adapter: ${describeGpu(gpu)}`);
const dir = await loadModelDir(decodeURIComponent(new URL("../models/tiny", import.meta.url).pathname));
const tree = { totalTokens: N, depth: D, topK: k };
const target = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 2048, maxBatch: 1024 });
const dOpts = { seed: 1, draftVocabSize: 1024, maxSeqLen: 2048, maxBatch: Math.max(256, S, K * m * k) };
const draft = v.draft
  ? await Eagle3Draft.load(gpu, v.draft, dir, dOpts)
  : Eagle3Draft.create(gpu, dir, dOpts);
const draft0 = v.draft
  ? await Eagle3Draft.load(gpu, v.draft, dir, dOpts)
  : Eagle3Draft.create(gpu, dir, dOpts);
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
  omega: v.omega ?? 0.5,
});
const measure = async (f: (rep: number) => void | Promise<void>) => {
  const wall: number[] = [], cpu: number[] = [];
  for (let rep = 0; rep <= reps; rep++) {
    const t = performance.now(), c = process.cpuUsage();
    await f(rep);
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
const g = await measure((rep) => gto.step(rec, batch, rep, upd, { metrics: v.omega !== 0 }));
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
