/**
 * `deno task tree`: what draft tree does this draft build at this point of the text, and what is it
 * worth? For each root index I of the prompt's token sequence (default: the last token) it builds the
 * decode-time tree the speculative decoder builds after committing tokens 0..I, verifies it with the
 * target (softmax at T = 1) and prints the tree, its branches' expected accepted lengths L, the
 * lse/max/mean rewards and the greedy accepted length — as one JSON object with `--json` (schema in
 * `packages/core/src/tree/report.ts`), else as a readable tree. Researchers, the playground and the
 * tests use it.
 * @module
 */
import {
  Eagle3Draft,
  encodeChat,
  GpuUnavailableError,
  KernelCache,
  LlamaModel,
  loadModelDir,
  ModelLoadError,
  Recorder,
  renderTreeReport,
  requestGpu,
  ShapeError,
} from "@gto/core";
import { inspectTrees } from "@gto/core/train";
import { fail, FlagError, type FlagSpec, helpText, parseFlags } from "@gto/core/cli";

const DEFAULT_TARGET = decodeURIComponent(new URL("../../models/tiny", import.meta.url).pathname);

interface TreeSettings {
  target: string;
  draft: string;
  prompt: string;
  chat: string;
  at: number[];
  tree: { totalTokens: number; depth: number; topK: number };
  eta: number;
  json: boolean;
}

/** The flag table (argv, --help and validation). */
export const FLAGS: readonly FlagSpec<keyof TreeSettings>[] = [
  {
    flag: "target",
    key: "target",
    kind: "string",
    arg: "DIR",
    help: `Target model directory (default: the bundled tiny model, ${DEFAULT_TARGET}).`,
  },
  { flag: "draft", key: "draft", kind: "string", arg: "DIR", help: "EAGLE-3 draft directory (required)." },
  { flag: "prompt", key: "prompt", kind: "string", arg: "TEXT", help: "Raw text, tokenized as is." },
  {
    flag: "chat",
    key: "chat",
    kind: "string",
    arg: "TEXT",
    help: "A user message, rendered with the target's chat template + generation prompt.",
  },
  {
    flag: "at",
    key: "at",
    kind: "numList",
    arg: "I,J,...",
    min: 1,
    help:
      "Root indices into the prompt's tokens (default: the last token); each ≥ 1 (a tree needs a prefix).",
  },
  {
    flag: "tree",
    key: "tree",
    kind: "tree",
    arg: "T,D,K",
    help: "Draft tree: total verified tokens, depth, top-k per node (default 60,7,10, as at decode time).",
  },
  { flag: "eta", key: "eta", kind: "num", arg: "η", gt: 0, help: "η of the log-sum-exp reward (default 1)." },
  { flag: "json", key: "json", kind: "bool", help: "Print one JSON object (schema: tree/report.ts)." },
];

const HELP = helpText(FLAGS, {
  usage: "deno task tree [--target DIR] --draft DIR (--prompt TEXT | --chat TEXT) [--at I,J,...] [options]",
  description: "Build the decode-time draft tree at each root index and score it against the target.",
  footer: `Example:\n  deno task tree --draft models/tiny-draft --prompt "def add(a, b):" --at 3,5 --json`,
});

async function main(): Promise<void> {
  const parsed = await parseFlags<TreeSettings>(FLAGS, Deno.args);
  if (parsed.help) {
    console.log(HELP);
    return;
  }
  const a = parsed.given;
  if ((a.prompt === undefined) === (a.chat === undefined)) fail("give exactly one of --prompt or --chat");
  if (a.draft === undefined) fail("--draft DIR is required");
  for (const i of a.at ?? []) if (!Number.isInteger(i)) fail(`--at ${i}: expected integers`);
  const dir = await loadModelDir(a.target ?? DEFAULT_TARGET);
  const tokens = a.chat !== undefined
    ? encodeChat(dir, [{ role: "user", content: a.chat }])
    : dir.tokenizer.encode(a.prompt!);
  if (tokens.length < 2) {
    fail(`the prompt encodes to ${tokens.length} token(s); a tree needs a prefix and a root`);
  }
  for (const i of a.at ?? []) {
    if (i >= tokens.length) {
      fail(`--at ${i}: the prompt has ${tokens.length} tokens (indices 1..${tokens.length - 1})`);
    }
  }
  const gpu = await requestGpu();
  const tree = a.tree ?? { totalTokens: 60, depth: 7, topK: 10 };
  const rows = tokens.length + tree.totalTokens;
  const target = await LlamaModel.load(gpu, dir, {
    weightDtype: "f32",
    maxSeqLen: rows,
    maxBatch: Math.max(tree.totalTokens, Math.min(tokens.length, 256)),
  });
  const draft = await Eagle3Draft.load(gpu, a.draft!, dir, {
    maxSeqLen: tokens.length + tree.depth * tree.topK,
    maxBatch: Math.max(tokens.length, tree.topK),
  });
  const rec = new Recorder(gpu, new KernelCache(gpu));
  const report = await inspectTrees(rec, target, draft, tokens, { roots: a.at, tree, eta: a.eta ?? 1 });
  if (a.json) console.log(JSON.stringify(report));
  else console.log(renderTreeReport(report, (id) => dir.tokenizer.decode([id])));
  draft.destroy();
  target.destroy();
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    if (
      e instanceof FlagError || e instanceof ModelLoadError || e instanceof GpuUnavailableError ||
      e instanceof ShapeError
    ) {
      fail(e.message);
    }
    throw e;
  }
}
