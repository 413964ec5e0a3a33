/**
 * `deno task generate`: generate text with a LLaMA model on the GPU (plain decoding; speculative
 * decoding arrives with the draft). Greedy at temperature 0, GPU sampling otherwise; stops at the
 * model's eos ids. Streams text to stdout, or prints one JSON object with `--json`.
 * @module
 */
import { parseArgs } from "node:util";
import {
  describeGpu,
  Eagle3Draft,
  generate,
  GpuUnavailableError,
  KernelCache,
  LlamaModel,
  loadModelDir,
  ModelLoadError,
  Recorder,
  requestGpu,
  resolveTreeConfig,
  ShapeError,
  SpecDecoder,
  TokenRing,
  type TreeConfig,
} from "@gto/core";

const DEFAULT_MODEL = decodeURIComponent(new URL("../../models/tiny", import.meta.url).pathname);

const HELP = `Usage: deno task generate [--model DIR] (--prompt TEXT | --chat TEXT) [options]

Generate a continuation with a LLaMA-family model on the GPU (WebGPU).

Options:
  --model DIR          Hugging Face model directory (config.json, *.safetensors, tokenizer.json).
                       Default: the bundled tiny model (${DEFAULT_MODEL}).
  --prompt TEXT        Raw prompt text, tokenized as is (the tokenizer's post-processor may add BOS).
  --chat TEXT          A user message, rendered with the model's chat template + generation prompt.
  --max-tokens N       Most new tokens (default 64).
  --temperature T      0 = greedy (default); > 0 samples on the GPU.
  --top-p P            Nucleus sampling mass, (0, 1] (default 1 = off).
  --top-k K            Keep the K most likely tokens (default 0 = off).
  --seed S             Sampling seed (default 0).
  --weight-dtype D     auto | f32 | f16: GPU storage of the weight matrices (default auto).
  --steps-per-read N   Decode steps (plain) or cycles (speculative) per GPU submit/readback
                       (default 16 plain, 4 speculative).
  --draft DIR          EAGLE-3 draft directory: decode speculatively with a draft tree (lossless:
                       T=0 output equals plain greedy decoding).
  --tree T,D,K         Draft tree: total verified tokens, depth (draft expansions), top-k per node
                       (default 60,7,10; only with --draft).
  --json               Print one JSON object {text, tokens, prompt_tokens, completion_tokens,
                       tokens_per_second, finish_reason} instead of streaming text; with --draft it
                       adds cycles, acceptance_length (new tokens per cycle, bonus included) and
                       accepted_per_position.
  --verbose            Print the adapter and timing to stderr.
  -h, --help           Show this help.

Example:
  deno task generate --chat "What is 12 plus 7?" --max-tokens 48
`;

function fail(message: string): never {
  // One line, always: scripts read the first stderr line (parseArgs messages span several).
  console.error(`error: ${message.replace(/\s*\n\s*/g, " ")}`);
  Deno.exit(1);
}

function num(
  name: string,
  v: string | undefined,
  def: number,
  check: (x: number) => boolean,
  what: string,
): number {
  if (v === undefined) return def;
  const x = Number(v);
  if (v.trim() === "" || !Number.isFinite(x) || !check(x)) {
    fail(`--${name} ${JSON.stringify(v)}: expected ${what}`);
  }
  return x;
}

/** Options that take a value (parseArgs would reject a negative number after them as "ambiguous"). */
const VALUE_OPTIONS = [
  "model",
  "prompt",
  "chat",
  "max-tokens",
  "temperature",
  "top-p",
  "top-k",
  "seed",
  "weight-dtype",
  "steps-per-read",
  "draft",
  "tree",
];

/** `--temperature -1` → `--temperature=-1`, so the value reaches our range check and its message. */
function joinNegativeValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], next = argv[i + 1];
    if (
      a.startsWith("--") && VALUE_OPTIONS.includes(a.slice(2)) && next !== undefined &&
      /^-(\d|\.\d|Infinity)/.test(next)
    ) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      args: joinNegativeValues(Deno.args),
      options: {
        model: { type: "string" },
        prompt: { type: "string" },
        chat: { type: "string" },
        "max-tokens": { type: "string" },
        temperature: { type: "string" },
        "top-p": { type: "string" },
        "top-k": { type: "string" },
        seed: { type: "string" },
        "weight-dtype": { type: "string" },
        "steps-per-read": { type: "string" },
        draft: { type: "string" },
        tree: { type: "string" },
        json: { type: "boolean" },
        verbose: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    fail(`${(e as Error).message} (see --help)`);
  }
  if (args.help) {
    console.log(HELP);
    return;
  }
  if ((args.prompt === undefined) === (args.chat === undefined)) {
    fail("give exactly one of --prompt or --chat (see --help)");
  }
  const maxTokens = num(
    "max-tokens",
    args["max-tokens"],
    64,
    (x) => Number.isInteger(x) && x >= 1,
    "an integer ≥ 1",
  );
  const temperature = num("temperature", args.temperature, 0, (x) => x >= 0, "a number ≥ 0");
  const topP = num("top-p", args["top-p"], 1, (x) => x > 0 && x <= 1, "a number in (0, 1]");
  const topK = num("top-k", args["top-k"], 0, (x) => Number.isInteger(x) && x >= 0, "an integer ≥ 0");
  const seed = num(
    "seed",
    args.seed,
    0,
    (x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32,
    "an integer in [0, 2^32)",
  );
  const stepsPerRead = num(
    "steps-per-read",
    args["steps-per-read"],
    args.draft ? 4 : 16,
    (x) => Number.isInteger(x) && x >= 1,
    "an integer ≥ 1",
  );
  const wd = args["weight-dtype"] ?? "auto";
  if (wd !== "auto" && wd !== "f32" && wd !== "f16") {
    fail(`--weight-dtype ${JSON.stringify(wd)}: expected auto, f32 or f16`);
  }

  let tree: TreeConfig | undefined;
  if (args.tree !== undefined) {
    if (!args.draft) fail("--tree needs --draft");
    const parts = args.tree.split(",").map((x) => Number(x.trim()));
    if (parts.length !== 3 || parts.some((x) => !Number.isInteger(x) || x < 0)) {
      fail(`--tree ${JSON.stringify(args.tree)}: expected TOTAL,DEPTH,TOPK (three non-negative integers)`);
    }
    tree = { totalTokens: parts[0], depth: parts[1], topK: parts[2] };
    resolveTreeConfig(tree); // validates, naming the bad field
  }

  const dir = await loadModelDir(args.model ?? DEFAULT_MODEL);
  let text: string;
  if (args.chat !== undefined) {
    if (!dir.chatTemplate) {
      fail(
        `${dir.dir}: --chat needs a chat template (chat_template.jinja or tokenizer_config.json), none found; use --prompt`,
      );
    }
    text = dir.chatTemplate.render([{ role: "user", content: args.chat }], { addGenerationPrompt: true });
  } else {
    text = args.prompt!;
  }
  const prompt = dir.tokenizer.encode(text);
  if (prompt.length === 0) fail("the prompt encodes to zero tokens");
  const gpu = await requestGpu();
  if (args.verbose) console.error(`adapter: ${describeGpu(gpu)}`);
  if (prompt.length + maxTokens > dir.config.maxPositionEmbeddings) {
    fail(
      `prompt (${prompt.length} tokens) + --max-tokens ${maxTokens} exceeds the model's context (${dir.config.maxPositionEmbeddings})`,
    );
  }
  // KV rows: the prompt and output, plus (speculative) one verified tree and its draft expansions.
  const rows = args.draft
    ? SpecDecoder.requiredRows(tree ?? {}, prompt.length, maxTokens)
    : { target: prompt.length + maxTokens, draft: 0 };
  const maxSeqLen = Math.max(rows.target, rows.draft, 64);
  const maxBatch = args.draft ? Math.max(128, tree?.totalTokens ?? 60) : 256;
  const model = await LlamaModel.load(gpu, dir, { weightDtype: wd, maxSeqLen, maxBatch });
  const rec = new Recorder(gpu, new KernelCache(gpu));
  let shown = "";
  const streamed: number[] = [];
  const enc = new TextEncoder();
  const onTokens = args.json ? undefined : (ids: number[]) => {
    streamed.push(...ids);
    const full = dir.tokenizer.decode(streamed, { skipSpecialTokens: true });
    // Hold back a trailing U+FFFD: it may be half of a multi-byte character split across tokens.
    const safe = full.endsWith("\uFFFD") ? full.slice(0, -1) : full;
    if (safe.startsWith(shown)) {
      Deno.stdout.writeSync(enc.encode(safe.slice(shown.length)));
      shown = safe;
    }
  };
  const sampling = { maxTokens, temperature, topP, topK, seed, eosIds: dir.config.eosTokenIds, onTokens };
  let res: { tokens: number[]; promptTokens: number; finishReason: string };
  let seconds: number;
  let specStats: Record<string, unknown> = {};
  if (args.draft) {
    const draft = await Eagle3Draft.load(gpu, args.draft, dir, { maxSeqLen, maxBatch: 128 });
    const spec = new SpecDecoder(model, draft, rec, { tree });
    const r = await spec.generate(prompt, { ...sampling, cyclesPerRead: stepsPerRead });
    res = r;
    seconds = r.totalSeconds;
    specStats = {
      cycles: r.cycles,
      acceptance_length: Number(r.acceptanceLength.toFixed(4)),
      accepted_per_position: r.acceptedPerPosition.map((x) => Number(x.toFixed(4))),
    };
    spec.destroy();
    draft.destroy();
  } else {
    const kv = model.createKvCache(), ring = new TokenRing(gpu, model.maxSeqLen);
    const r = await generate(model, rec, kv, ring.tensor, prompt, { ...sampling, stepsPerRead });
    kv.destroy();
    ring.destroy();
    res = r;
    seconds = r.prefillSeconds + r.decodeSeconds;
  }
  const outText = dir.tokenizer.decode(res.tokens, { skipSpecialTokens: true });
  const tps = res.tokens.length / Math.max(seconds, 1e-9);
  if (args.json) {
    console.log(JSON.stringify({
      text: outText,
      tokens: res.tokens,
      prompt_tokens: res.promptTokens,
      completion_tokens: res.tokens.length,
      tokens_per_second: Number(tps.toFixed(2)),
      finish_reason: res.finishReason,
      ...specStats,
    }));
  } else {
    if (outText.startsWith(shown)) Deno.stdout.writeSync(enc.encode(outText.slice(shown.length)));
    Deno.stdout.writeSync(enc.encode("\n"));
  }
  if (args.verbose) {
    console.error(
      `${res.tokens.length} tokens in ${seconds.toFixed(3)} s (${
        tps.toFixed(1)
      } tok/s, ${res.promptTokens} prompt tokens); finish: ${res.finishReason}` +
        (args.draft ? `; cycles ${specStats.cycles}, τ ${specStats.acceptance_length}` : ""),
    );
  }
  model.destroy();
  rec.destroy();
  gpu.device.destroy();
}

try {
  await main();
} catch (e) {
  if (e instanceof ModelLoadError || e instanceof GpuUnavailableError || e instanceof ShapeError) {
    fail(e.message);
  }
  throw e;
}
