/**
 * `deno task generate`: generate text with a LLaMA model on the GPU, through `Engine` (plain or tree
 * speculative decoding; lossless: T=0 output equals plain greedy). Greedy at temperature 0, GPU
 * sampling otherwise; stops at the model's eos ids. Streams text to stdout, or prints one JSON object
 * with `--json`. With the bundled target and `models/tiny-draft` present, the draft is used by
 * default (`--no-draft` for plain decoding).
 * @module
 */
import {
  defaultDraftFor,
  Engine,
  EngineInputError,
  GpuUnavailableError,
  ModelLoadError,
  ShapeError,
} from "@gto/core";
import { fail, FlagError, type FlagSpec, helpText, parseFlags, WEIGHT_DTYPE_FLAG } from "@gto/core/cli";

const DEFAULT_MODEL = decodeURIComponent(new URL("../../models/tiny", import.meta.url).pathname);

/** The settings of one run (flag `--max-tokens` ↔ field `maxTokens`). */
interface GenerateSettings {
  model: string;
  prompt: string;
  chat: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  weightDtype: "auto" | "f32" | "f16";
  stepsPerRead: number;
  draft: string;
  noDraft: boolean;
  tree: { totalTokens: number; depth: number; topK: number } | "auto";
  json: boolean;
  verbose: boolean;
}

/** The flag table (argv, --help and validation). */
export const FLAGS: readonly FlagSpec<keyof GenerateSettings>[] = [
  {
    flag: "model",
    key: "model",
    kind: "string",
    arg: "DIR",
    help:
      `Hugging Face model directory (config.json, *.safetensors, tokenizer.json). Default: the bundled tiny model (${DEFAULT_MODEL}).`,
  },
  {
    flag: "prompt",
    key: "prompt",
    kind: "string",
    arg: "TEXT",
    help: "Raw prompt text, tokenized as is (the tokenizer's post-processor may add BOS).",
  },
  {
    flag: "chat",
    key: "chat",
    kind: "string",
    arg: "TEXT",
    help: "A user message, rendered with the model's chat template + generation prompt.",
  },
  {
    flag: "max-tokens",
    key: "maxTokens",
    kind: "int",
    arg: "N",
    min: 1,
    help: "Most new tokens (default 64).",
  },
  {
    flag: "temperature",
    key: "temperature",
    kind: "num",
    arg: "T",
    min: 0,
    help: "0 = greedy (default); > 0 samples on the GPU.",
  },
  {
    flag: "top-p",
    key: "topP",
    kind: "num",
    arg: "P",
    gt: 0,
    max: 1,
    help: "Nucleus sampling mass, (0, 1] (default 1 = off).",
  },
  {
    flag: "top-k",
    key: "topK",
    kind: "int",
    arg: "K",
    min: 0,
    help: "Keep the K most likely tokens (default 0 = off).",
  },
  {
    flag: "seed",
    key: "seed",
    kind: "int",
    arg: "S",
    min: 0,
    max: 2 ** 32 - 1,
    help: "Sampling seed (default 0).",
  },
  WEIGHT_DTYPE_FLAG,
  {
    flag: "steps-per-read",
    key: "stepsPerRead",
    kind: "int",
    arg: "N",
    min: 1,
    help:
      "Decode steps (plain) or cycles (speculative) per GPU submit/readback (default 16 plain, 4 speculative).",
  },
  {
    flag: "draft",
    key: "draft",
    kind: "string",
    arg: "DIR",
    help:
      "EAGLE-3 draft directory: decode speculatively with a draft tree (lossless: T=0 output equals plain " +
      "greedy decoding). Default: models/tiny-draft when the model is the bundled tiny and that draft exists.",
  },
  {
    flag: "no-draft",
    key: "noDraft",
    kind: "bool",
    help: "Plain decoding, even when a default draft exists.",
  },
  {
    flag: "tree",
    key: "tree",
    kind: "treeAuto",
    arg: "T,D,K|auto",
    help: "Draft tree: total verified tokens, depth (draft expansions), top-k per node, or auto (default: " +
      "the cost-aware tree measured on this adapter, cached; it may choose plain decoding). Only with a draft.",
  },
  {
    flag: "json",
    key: "json",
    kind: "bool",
    help: "Print one JSON object {text, tokens, prompt_tokens, completion_tokens, tokens_per_second, " +
      "finish_reason} instead of streaming text; with a draft it adds cycles, acceptance_length (new tokens " +
      "per cycle, bonus included) and accepted_per_position.",
  },
  { flag: "verbose", key: "verbose", kind: "bool", help: "Print the adapter and timing to stderr." },
];

const HELP = helpText(FLAGS, {
  usage: "deno task generate [--model DIR] (--prompt TEXT | --chat TEXT) [options]",
  description: "Generate a continuation with a LLaMA-family model on the GPU (WebGPU).",
  footer: `Example:\n  deno task generate --chat "What is 12 plus 7?" --max-tokens 48`,
});

async function main(): Promise<void> {
  const parsed = await parseFlags<GenerateSettings>(FLAGS, Deno.args);
  if (parsed.help) {
    console.log(HELP);
    return;
  }
  const a = parsed.given;
  if ((a.prompt === undefined) === (a.chat === undefined)) {
    fail("give exactly one of --prompt or --chat (see --help)");
  }
  if (a.draft !== undefined && a.noDraft) fail("give at most one of --draft and --no-draft");
  const model = a.model ?? DEFAULT_MODEL;
  const maxTokens = a.maxTokens ?? 64;
  const draft = a.noDraft ? null : a.draft ?? await defaultDraftFor(model);
  if (a.tree !== undefined && a.tree !== "auto" && draft === null) {
    fail(`--tree needs --draft${a.noDraft ? " (--no-draft was given)" : ""}`);
  }
  // Validate the tree shape before minutes of loading.
  const engine = await Engine.load({
    target: model,
    draft,
    ...(a.tree ? { tree: a.tree } : {}),
    weightDtype: a.weightDtype ?? "auto",
    // The auto tree's decision is a diagnostic: stderr stays one `error:` line on failures.
    log: (line) => {
      if (a.verbose) console.error(line);
    },
  });
  if (a.verbose) console.error(`adapter: ${engine.info.adapter}`);
  const prompt = a.chat !== undefined
    ? engine.tokenize("", { chat: [{ role: "user", content: a.chat }] })
    : engine.tokenize(a.prompt!);
  if (prompt.length === 0) fail("the prompt encodes to zero tokens");
  if (prompt.length + maxTokens > engine.info.maxContext) {
    fail(
      `prompt (${prompt.length} tokens) + --max-tokens ${maxTokens} exceeds the model's context (${engine.info.maxContext})`,
    );
  }
  const enc = new TextEncoder();
  const r = await engine.complete(prompt, {
    maxTokens,
    temperature: a.temperature ?? 0,
    topP: a.topP ?? 1,
    topK: a.topK ?? 0,
    seed: a.seed ?? 0,
    ...(a.stepsPerRead !== undefined ? { readEvery: a.stepsPerRead } : {}),
    ...(a.json ? {} : { onText: (d: string) => Deno.stdout.writeSync(enc.encode(d)) }),
  });
  const seconds = r.timing.totalSeconds;
  const tps = r.tokens.length / Math.max(seconds, 1e-9);
  const s = r.speculative;
  if (a.json) {
    console.log(JSON.stringify({
      text: r.text,
      tokens: r.tokens,
      prompt_tokens: r.usage.promptTokens,
      completion_tokens: r.usage.completionTokens,
      tokens_per_second: Number(tps.toFixed(2)),
      finish_reason: r.finishReason,
      ...(s
        ? {
          cycles: s.cycles,
          acceptance_length: Number(s.acceptanceLength.toFixed(4)),
          accepted_per_position: s.acceptedPerPosition.map((x) => Number(x.toFixed(4))),
        }
        : {}),
    }));
  } else {
    Deno.stdout.writeSync(enc.encode("\n"));
  }
  if (a.verbose) {
    console.error(
      `${r.tokens.length} tokens in ${seconds.toFixed(3)} s (${
        tps.toFixed(1)
      } tok/s, ${r.usage.promptTokens} ` +
        `prompt tokens); finish: ${r.finishReason}` +
        (s ? `; cycles ${s.cycles}, τ ${s.acceptanceLength.toFixed(4)}` : ""),
    );
  }
  await engine.close();
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    if (
      e instanceof FlagError || e instanceof EngineInputError || e instanceof ModelLoadError ||
      e instanceof GpuUnavailableError || e instanceof ShapeError
    ) {
      fail(e instanceof EngineInputError && e.field === "tree" ? `--tree: ${e.message.slice(6)}` : e.message);
    }
    throw e;
  }
}
