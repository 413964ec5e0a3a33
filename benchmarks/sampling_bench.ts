/**
 * `deno run -A benchmarks/sampling_bench.ts`: GPU cost of the T>0 bookkeeping that grows with the
 * vocabulary — the acceptance kernel (`acceptSample`: rejection walk + residual/bonus draw) per cycle
 * of a 60-node tree, and plain `sample` per row — at V = 8192, 32000 and 131072. Each figure is the
 * median over repeats of R dispatches recorded into one submit (so Deno's ~10 ms completion latency
 * is amortised). Cycles run back to back on the same rows (the rows' rejected entries stay zeroed,
 * which does not change the cost: the V-length passes dominate). Prints the adapter first; never
 * asserts a speed.
 * @module
 */
import { type FlagSpec, helpText, parseCommandLine } from "@gto/core/cli";
import {
  acceptSample,
  BufferArena,
  describeGpu,
  KernelCache,
  Recorder,
  requestGpu,
  sample,
  STATE,
  STATE_WORDS,
} from "@gto/core";
import { median } from "./stats.ts";

interface SamplingBenchSettings {
  reps: number;
  repeats: number;
  v: number[];
}
const FLAGS: readonly FlagSpec<keyof SamplingBenchSettings>[] = [
  {
    flag: "reps",
    key: "reps",
    kind: "int",
    arg: "N",
    min: 1,
    help: "Dispatches per timed submit (default 50).",
  },
  {
    flag: "repeats",
    key: "repeats",
    kind: "int",
    arg: "N",
    min: 1,
    help: "Timed submits per row (default 5).",
  },
  {
    flag: "v",
    key: "v",
    kind: "numList",
    arg: "V[,V…]",
    min: 2,
    help: "Vocabulary sizes (default 8192,32000,131072).",
  },
];
const given = await parseCommandLine<SamplingBenchSettings>(
  FLAGS,
  Deno.args,
  helpText(FLAGS, {
    usage: "deno run -A benchmarks/sampling_bench.ts [options]",
    description:
      "Median ms of the T>0 acceptance kernel (acceptSample) and plain sampling per vocabulary size.",
  }),
);
const R = given.reps ?? 50, REPEATS = given.repeats ?? 5;
const VS = given.v ?? [8192, 32000, 131072];

const gpu = await requestGpu();
console.log(describeGpu(gpu));
const rec = new Recorder(gpu, new KernelCache(gpu));

async function timed(encode: () => void): Promise<number> {
  encode(); // warm-up (pipelines, bind groups)
  await rec.finish();
  const ms: number[] = [];
  for (let k = 0; k < REPEATS; k++) {
    const t = performance.now();
    for (let r = 0; r < R; r++) encode();
    await rec.finish();
    ms.push((performance.now() - t) / R);
  }
  return median(ms);
}

// A 60-node ternary tree (depth 4), random draft tokens, dense softmax rows.
const N = 60, dp = 5;
const parents = Int32Array.from({ length: N }, (_, i) => (i === 0 ? -1 : Math.floor((i - 1) / 3)));
console.log(`| V | acceptSample ms/cycle (N = ${N}) | sample ms/row |`);
console.log("|---|---|---|");
for (const V of VS) {
  const arena = new BufferArena(gpu, N * V * 4 + V * 4 + (1 << 20), "bench");
  let s = 12345;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const probs = new Float32Array(N * V);
  for (let n = 0; n < N; n++) {
    let sum = 0;
    for (let v = 0; v < V; v++) sum += probs[n * V + v] = Math.exp(3 * rnd());
    for (let v = 0; v < V; v++) probs[n * V + v] /= sum;
  }
  const tokens = Uint32Array.from({ length: N }, () => Math.floor(rnd() * V));
  const st = new Uint32Array(STATE_WORDS);
  st[STATE.committed] = 8;
  st[STATE.outLen] = 1;
  st[STATE.promptLen] = 8;
  st[STATE.maxTokens] = 0x7fffffff;
  const ringSize = 8 + (R + 1) * REPEATS * (dp + 1) + 64;
  const b = {
    probs: arena.upload(probs, [N, V], "f32", "probs"),
    tokens: arena.upload(tokens, [N], "u32", "tokens"),
    parents: arena.upload(parents, [N], "i32", "parents"),
    state: arena.upload(st, [STATE_WORDS], "u32", "state"),
    ring: arena.alloc([ringSize], "u32", "ring"),
    path: arena.alloc([dp], "u32", "path"),
    seq: arena.alloc([dp + 1], "u32", "seq"),
    hist: arena.alloc([2 * dp + 1], "u32", "hist"),
    eos: arena.upload(new Uint32Array([0xfffffffe]), [1], "u32", "eos"),
  };
  const acceptMs = await timed(() => acceptSample(rec, b, dp, 0, 7));
  const logits = arena.upload(probs.subarray(0, V).map(Math.log), [1, V], "f32", "logits");
  const out = arena.alloc([1], "u32", "out");
  let step = 0;
  const sampleMs = await timed(() => sample(rec, out, logits, { temperature: 1, seed: 3, step: step++ }));
  console.log(`| ${V} | ${acceptMs.toFixed(3)} | ${sampleMs.toFixed(3)} |`);
  arena.destroy();
}
rec.destroy();
