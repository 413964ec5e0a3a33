/**
 * `deno task bench`: kernel throughput (matmul GFLOP/s, matrix-vector GB/s), per-dispatch overhead,
 * prefill / plain-decode tokens/s of LLaMA targets, speculative cycles and Phase-I training tokens/s,
 * on whatever adapter WebGPU gives us; `--only profile` names the kernels a plain step and a speculative
 * cycle spend their GPU time in (profile_bench.ts). Prints
 * the adapter first and medians only; never asserts a speed (targets live in the issues and notes).
 * @module
 */
import {
  add,
  BufferArena,
  describeGpu,
  KernelCache,
  llamaParamCount,
  loadLlamaConfig,
  Recorder,
  requestGpu,
  softwareThreadsFor,
} from "@gto/core";
import { fail, type FlagSpec, helpText, parseCommandLine, WEIGHT_DTYPE_FLAG } from "@gto/core/cli";
import { benchKernels } from "./kernels_bench.ts";
import { benchDecode, type DecodeBenchRow } from "./decode_bench.ts";
import { benchSpec, specTable } from "./spec_bench.ts";
import { benchTrain, trainTable } from "./train_bench.ts";
import { benchProfile, profileTable } from "./profile_bench.ts";
import { median } from "./stats.ts";

interface BenchSettings {
  quick: boolean;
  only: "kernels" | "dispatch" | "decode" | "spec" | "train" | "profile";
  model: string[];
  decodeTokens: number;
  draft: string;
  tree: { totalTokens: number; depth: number; topK: number } | "auto";
  top: number;
  pytorch: boolean;
  fuse: "auto" | "on" | "off";
  weightDtype: "auto" | "f32" | "f16";
  softwareThreads: number;
  json: string;
}

const FLAGS: readonly FlagSpec<keyof BenchSettings>[] = [
  { flag: "quick", key: "quick", kind: "bool", help: "Smaller shapes and fewer repetitions." },
  {
    flag: "only",
    key: "only",
    kind: "enum",
    arg: "WHAT",
    choices: ["kernels", "dispatch", "decode", "spec", "train", "profile"],
    help: "kernels | dispatch | decode | spec | train (default: all five) | profile (only on request: the " +
      "top kernels of a plain step and of a speculative cycle, GPU timestamps per dispatch; needs " +
      "timestamp-query).",
  },
  {
    flag: "model",
    key: "model",
    kind: "string",
    multiple: true,
    arg: "DIR",
    help: "Model for the decode benchmark; repeatable. Default: models/tiny, plus ../shared/models/small " +
      "when it exists.",
  },
  {
    flag: "decode-tokens",
    key: "decodeTokens",
    kind: "int",
    arg: "N",
    min: 2,
    help: "Tokens per decode run (default 128; quick 64).",
  },
  {
    flag: "draft",
    key: "draft",
    kind: "string",
    arg: "DIR",
    help: "EAGLE-3 draft for the spec benchmark (default: a random draft for tiny, plus " +
      "../shared/models/small-eagle3-reference for small when it exists).",
  },
  {
    flag: "tree",
    key: "tree",
    kind: "treeAuto",
    arg: "T,D,K",
    help: "Tree shape for the spec and profile benchmarks (depth may be 0; default 60,7,10 for spec, " +
      "60,7,10 and 2,0,1 for profile). The auto tree's choice is reported by bench:accept.",
  },
  {
    flag: "top",
    key: "top",
    kind: "int",
    arg: "N",
    min: 1,
    help: "Profile: kernels listed per step / cycle (default 12).",
  },
  {
    flag: "pytorch",
    key: "pytorch",
    kind: "bool",
    help: "With decode: also run the PyTorch CPU peer (benchmarks/pytorch_decode.py: eager, 2 threads, " +
      "batch 1, static KV cache, greedy) on the same models, same sitting. Needs python3 with torch " +
      "(Debian: apt-get install -y python3-torch); set PYTHON to choose the interpreter.",
  },
  {
    flag: "fuse-rope-attention",
    key: "fuse",
    kind: "enum",
    arg: "WHEN",
    choices: ["auto", "on", "off"],
    help: "Decode: RoPE + KV write inside attention (5 dispatches per layer instead of 6); auto (default) " +
      "= on for hardware adapters, off for software ones.",
  },
  WEIGHT_DTYPE_FLAG,
  {
    flag: "software-threads",
    key: "softwareThreads",
    kind: "int",
    arg: "N",
    min: 0,
    help: "Worker threads of a software adapter (Mesa's LP_NUM_THREADS; 0 = each dispatch inline on the " +
      "submitting thread). Default: what Engine picks for the first --model (inline up to 6 M parameters, " +
      "else Mesa's default); one setting per process, shown in the adapter line.",
  },
  { flag: "json", key: "json", kind: "string", arg: "FILE", help: "Also write all rows as JSON to FILE." },
];

const HELP = helpText(FLAGS, {
  usage: "deno task bench [options]",
  description:
    "Kernel throughput, dispatch overhead, and prefill / decode / speculative tokens/s on this adapter.",
});

const args = await parseCommandLine<BenchSettings>(FLAGS, Deno.args, HELP);
const only = args.only;
if (args.tree === "auto") fail("--tree auto: bench measures fixed trees; bench:accept reports the auto tree");
const tree = args.tree;
const quick = Boolean(args.quick);
const decodeTokens = args.decodeTokens ?? (quick ? 64 : 128);

/** Run benchmarks/pytorch_decode.py on `models`; prints its table, returns its JSON rows. */
async function pytorchPeer(models: string[], n: number, p: number, reps: number): Promise<unknown> {
  const script = decodeURIComponent(new URL("./pytorch_decode.py", import.meta.url).pathname);
  const env = Deno.env.get("PYTHON");
  const candidates = env ? [env] : ["python3", "/usr/bin/python3"];
  for (const py of candidates) {
    let ok = false;
    try {
      ok = (await new Deno.Command(py, { args: ["-c", "import torch"], stderr: "null" }).output()).success;
    } catch { /* not installed */ }
    if (!ok) continue;
    const json = await Deno.makeTempFile({ suffix: ".json" });
    const args = [script, "--decode-tokens", `${n}`, "--prefill-tokens", `${p}`, "--reps", `${reps}`];
    console.log(`\nPyTorch peer (${py}):`);
    const res = await new Deno.Command(py, { args: [...args, "--json", json, ...models] }).output();
    await Deno.stdout.write(res.stdout);
    if (!res.success) fail(`PyTorch peer failed: ${new TextDecoder().decode(res.stderr).trim()}`);
    const rows = JSON.parse(await Deno.readTextFile(json));
    await Deno.remove(json);
    return rows;
  }
  fail(`--pytorch: no python with torch among ${candidates.join(", ")} (apt-get install -y python3-torch)`);
}

const firstModel = args.model?.[0] ??
  decodeURIComponent(new URL("../models/tiny", import.meta.url).pathname);
const gpu = await requestGpu({
  softwareThreads: args.softwareThreads ??
    await loadLlamaConfig(firstModel).then((c) => softwareThreadsFor(llamaParamCount(c)), () => undefined),
});
console.log(`adapter: ${describeGpu(gpu)}`);
const out: Record<string, unknown> = { adapter: describeGpu(gpu), date: new Date().toISOString() };

if (only === "profile") {
  // tiny + models/tiny-draft unless --model / --draft say otherwise; never part of the default run.
  const root = (p: string) => decodeURIComponent(new URL(p, import.meta.url).pathname);
  const models = args.model ?? [root("../models/tiny")];
  const draftDir = args.draft ?? (args.model ? undefined : root("../models/tiny-draft"));
  const trees = tree
    ? [tree]
    : [{ totalTokens: 60, depth: 7, topK: 10 }, { totalTokens: 2, depth: 0, topK: 1 }];
  if (!gpu.features.timestamp) fail(`--only profile: ${gpu.adapterName} has no timestamp-query`);
  const rows = [];
  for (const m of models) {
    for (const row of await benchProfile(gpu, m, { draftDir, trees, reps: quick ? 4 : 10 })) {
      console.log("\n" + profileTable(row, args.top ?? 12));
      rows.push(row);
    }
  }
  out.profile = rows;
}

if (!only || only === "kernels") {
  const rows = await benchKernels({ quick, gpu });
  out.kernels = rows;
}

if (!only || only === "dispatch") {
  // Per-dispatch cost: R tiny dispatches (add over 256 elements) in one pass, one submit.
  const arena = new BufferArena(gpu, 1 << 16, "dispatch-bench");
  const a = arena.alloc([256], "f32", "a"), b = arena.alloc([256], "f32", "b");
  const rec = new Recorder(gpu, new KernelCache(gpu));
  const R = 2000;
  const times: number[] = [];
  for (let rep = 0; rep < (quick ? 3 : 5) + 1; rep++) {
    const t = performance.now();
    for (let i = 0; i < R; i++) add(rec, b, a, b);
    await rec.finish();
    if (rep > 0) times.push((performance.now() - t) * 1000 / R);
  }
  const us = median(times);
  console.log(
    `\ndispatch overhead: ${
      us.toFixed(2)
    } µs per dispatch (median, ${R} dispatches per submit, completion latency included)`,
  );
  out.dispatch_us = us;
  arena.destroy();
  rec.destroy();
}

if (!only || only === "decode") {
  const models = args.model ?? [decodeURIComponent(new URL("../models/tiny", import.meta.url).pathname)];
  if (!args.model) {
    const small = decodeURIComponent(new URL("../../shared/models/small", import.meta.url).pathname);
    try {
      if (Deno.statSync(small).isDirectory) models.push(small);
    } catch { /* no ../shared: tiny only */ }
  }
  const rows: DecodeBenchRow[] = [];
  console.log("\n| model | weights | prefill tok/s (P) | decode tok/s (N) | dispatches/token |");
  console.log("|---|---|---|---|---|");
  for (const m of models) {
    const r = await benchDecode(gpu, m, {
      decodeTokens,
      prefillTokens: quick ? 64 : 128,
      reps: quick ? 2 : 3,
      fuseRopeAttention: (args.fuse ?? "auto") === "auto" ? "auto" : args.fuse === "on",
      weightDtype: args.weightDtype ?? "auto",
    });
    rows.push(r);
    console.log(
      `| ${r.model} | ${r.weightDtype} | ${r.prefillTokensPerSecond.toFixed(0)} (${r.prefillTokens}) | ${
        r.decodeTokensPerSecond.toFixed(1)
      } (${r.decodeTokens}) | ${r.dispatchesPerToken.toFixed(1)} |`,
    );
  }
  out.decode = rows;
  if (args.pytorch) out.pytorch = await pytorchPeer(models, decodeTokens, quick ? 64 : 128, quick ? 2 : 3);
}

if (!only || only === "spec") {
  const tiny = decodeURIComponent(new URL("../models/tiny", import.meta.url).pathname);
  const pairs: [string, string | undefined][] = args.model
    ? args.model.map((m) => [m, args.draft])
    : [[tiny, args.draft]];
  if (!args.model) {
    const shared = decodeURIComponent(new URL("../../shared/models", import.meta.url).pathname);
    try {
      if (Deno.statSync(`${shared}/small-eagle3-reference`).isDirectory) {
        pairs.push([`${shared}/small`, `${shared}/small-eagle3-reference`]);
      }
    } catch { /* no ../shared */ }
  }
  const rows = [];
  for (const [m, d] of pairs) {
    rows.push(
      await benchSpec(gpu, m, { draftDir: d, tree, maxTokens: quick ? 32 : 64, reps: quick ? 4 : 10 }),
    );
  }
  console.log("\n" + specTable(rows));
  out.spec = rows;
}

if (!only || only === "train") {
  // One Phase-I TTT step (B = 1) on tiny with a fresh draft, as `deno task train` runs it.
  const tiny = decodeURIComponent(new URL("../models/tiny", import.meta.url).pathname);
  const rows = await benchTrain(gpu, tiny, { seqLens: quick ? [128] : [128, 256], reps: quick ? 2 : 3 });
  console.log("\n" + trainTable(rows));
  out.train = rows;
}

if (args.json) {
  await Deno.writeTextFile(args.json, JSON.stringify(out, null, 2) + "\n");
  console.log(`\nwrote ${args.json}`);
}
gpu.device.destroy();
