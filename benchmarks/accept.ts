/**
 * `deno task bench:accept`: acceptance length τ and speedup SR of an EAGLE-3 draft on MT-Bench,
 * HumanEval and GSM8K, following the GTO / EAGLE protocol (docs/engine.md §1), with a losslessness check.
 *
 * For every benchmark and temperature the same prompts run through plain decoding (`generate`) and
 * tree speculative decoding (`SpecDecoder`) with the same max tokens, eos ids (generation_config)
 * and seeds. Prompts are rendered with the target's chat template (generation prompt appended) and
 * tokenized without extra special tokens (the template already writes them, like transformers'
 * `apply_chat_template`):
 *
 * - MT-Bench: both turns. Turn 2 is rendered as [user t1, assistant a1, user t2], where a1 is the
 *   model's own turn-1 answer from *plain* decoding at the same temperature (special tokens dropped),
 *   so plain and speculative decoding see the identical turn-2 prompt. With `--no-plain`, a1 comes
 *   from speculative decoding (at T=0 it is the same text).
 * - HumanEval: the code `prompt` (signature + docstring) is the single user message, as in the
 *   EAGLE / GTO evaluation scripts (chat models are asked to continue the code as an answer).
 * - GSM8K: the `question` is the single user message.
 *
 * Metrics, aggregated over all prompts of a row (ratios of sums, never means of per-prompt ratios,
 * so long answers weigh by their cycles and tokens):
 * - τ = Σ tokens emitted by verification cycles / Σ cycles, where a cycle that accepts L drafts emits
 *   L + 1 tokens (the bonus token included) — counted from the decoder's accept-length histogram, so
 *   the last cycle counts in full even when eos / max tokens truncate its output, and the first token
 *   (from the prompt prefill, before any cycle) is not counted.
 * - tok/s = Σ new tokens / Σ wall seconds of the decode calls (prefill included, end to end,
 *   measured around each call after a warm-up run per temperature); SR = spec tok/s ÷ plain tok/s.
 * - accepted per position d = 1..D: the fraction of cycles that accepted at least d drafts
 *   (so τ = 1 + Σ_d accepted@d).
 * - T=0 losslessness: speculative output must equal plain output token for token on every prompt;
 *   any mismatch is a bug in the decoder, printed loudly and counted (the CLI then exits with 2).
 *
 * Decoding goes through one `Engine` (target + draft; plain calls pass `speculative: false`), so the
 * benchmark is a multi-turn chat client of the same API the server uses. Prompts whose prompt + max
 * tokens exceed the engine's context are skipped with a warning and listed in the JSON. Exit codes: 0 ok, 1 usage / data / model error, 2 T=0
 * mismatches.
 * @module
 */
import {
  type ChatMessage,
  describeGpu,
  Engine,
  EngineInputError,
  type GpuDevice,
  GpuUnavailableError,
  llamaParamCount,
  loadLlamaConfig,
  ModelLoadError,
  requestGpu,
  resolveTreeConfig,
  ShapeError,
  softwareThreadsFor,
} from "@gto/core";
import {
  BENCH_NAMES,
  type BenchName,
  EVAL_FILES,
  EvalDataError,
  loadGsm8k,
  loadHumanEval,
  loadMtBench,
} from "./eval_data.ts";
import { fail, type FlagSpec, helpText, parseCommandLine } from "@gto/core/cli";

/** Tree shape of the speculative decoder. */
export interface TreeShape {
  /** Nodes verified per cycle, root included. */
  totalTokens: number;
  /** Draft expansions per cycle. */
  depth: number;
  /** Children per expanded node / frontier width. */
  topK: number;
}

/** Options of {@link runAcceptBench}. */
export interface AcceptBenchOptions {
  /** Target model directory (HF layout). */
  target: string;
  /** EAGLE-3 draft directory. */
  draft: string;
  /** Directory holding mt_bench/, humaneval/, gsm8k/ (see {@link EVAL_FILES}). */
  evalDir: string;
  /** Benchmarks to run (default all three). */
  benches?: readonly BenchName[];
  /** First n items of each benchmark (default 80). */
  n?: number;
  /** Temperatures (default [0, 1]). */
  temperatures?: readonly number[];
  /** Most new tokens per prompt, for both decoders (default 128). */
  maxTokens?: number;
  /** Tree shape, or "auto" (default: the engine's cost-aware tree, which may choose plain decoding). */
  tree?: TreeShape | "auto";
  /** The auto tree's calibration cache directory (default the engine's; null = none). */
  cacheDir?: string | null;
  /** Base seed; prompt j of a temperature uses seed + j for both decoders (default 0). */
  seed?: number;
  /** Run plain decoding (default true); without it there is no SR and no losslessness check. */
  plain?: boolean;
  /** Verification cycles per readback of the speculative decoder (default: the decoder's). */
  cyclesPerRead?: number;
  /** GPU to use (default: requestGpu()). */
  gpu?: GpuDevice;
  /** Progress callback, called after each decode call. */
  progress?: (done: number, total: number, label: string) => void;
  /** Warnings and loud error lines (default: console.error). */
  log?: (line: string) => void;
}

/** Numbers of one decode call. */
export interface DecodeNumbers {
  /** New tokens (eos excluded). */
  tokens: number;
  /** Wall seconds of the call. */
  seconds: number;
  /**
   * Seconds after the first token (the engine's `timing`: total − first token), i.e. the decode loop
   * without the prompt's prefill: what the auto tree predicts.
   */
  decodeSeconds: number;
  /** `stop` (eos) or `length`. */
  finishReason: "stop" | "length";
}

/** Raw numbers of one prompt at one temperature. */
export interface PromptRecord {
  /** Benchmark. */
  bench: BenchName;
  /** Item id (MT-Bench question_id, HumanEval task_id, GSM8K line index). */
  id: string | number;
  /** Turn (1-based; always 1 outside MT-Bench). */
  turn: number;
  /** Temperature. */
  temperature: number;
  /** Seed given to both decoders. */
  seed: number;
  /** Prompt length in tokens. */
  promptTokens: number;
  /** Set when the prompt did not fit and was not run. */
  skipped?: string;
  /** Plain decoding (absent with --no-plain or when skipped). */
  plain?: DecodeNumbers;
  /** Speculative decoding (absent when skipped). */
  spec?: DecodeNumbers & {
    /** Verification cycles. */
    cycles: number;
    /** Tokens emitted by the cycles: Σ_L hist[L]·(L+1). */
    cycleTokens: number;
    /** Cycles per accepted length 0..Dp−1. */
    acceptHistogram: number[];
  };
  /** T=0 with plain: whether the outputs are token-identical. */
  match?: boolean;
  /** First differing position and tokens, when they differ. */
  mismatch?: { index: number; plain: number | null; spec: number | null };
}

/** One aggregated row of the table (a benchmark, or `all`, at one temperature). */
export interface AcceptRow {
  /** Benchmark, or `all` for every benchmark of the temperature together. */
  bench: BenchName | "all";
  /** Temperature. */
  temperature: number;
  /** Prompts run (skipped ones excluded). */
  prompts: number;
  /** Σ new tokens of plain decoding (null without plain). */
  plainTokens: number | null;
  /** Σ new tokens of speculative decoding. */
  specTokens: number;
  /** Plain tokens/s (Σ tokens / Σ seconds), null without plain. */
  plainTokPerSec: number | null;
  /** Speculative tokens/s. */
  specTokPerSec: number;
  /** SR = spec tok/s ÷ plain tok/s, null without plain. */
  speedup: number | null;
  /** τ = Σ cycle tokens / Σ cycles (bonus included). */
  tau: number;
  /** Σ cycles. */
  cycles: number;
  /** Fraction of cycles accepting ≥ d drafts, d = 1..Dp−1. */
  acceptedPerPosition: number[];
  /** T=0 with plain: prompts whose outputs differ (must be 0); null otherwise. */
  mismatches: number | null;
}

/** Everything a run produces (the JSON file). */
export interface AcceptReport {
  /** `describeGpu` of the adapter. */
  adapter: string;
  /** ISO date of the run. */
  date: string;
  /** The settings. */
  config: {
    target: string;
    draft: string;
    evalDir: string;
    benches: BenchName[];
    n: number;
    temperatures: number[];
    maxTokens: number;
    /** The tree decoded with (null: the auto tree chose plain decoding, so "spec" is plain). */
    tree: TreeShape | null;
    /** What was asked for. */
    treeOption: TreeShape | "auto";
    seed: number;
    plain: boolean;
    eosIds: number[];
    targetWeightDtype: string;
  };
  /** Aggregated rows, per temperature: each benchmark then `all`. */
  rows: AcceptRow[];
  /** Raw per-prompt numbers. */
  prompts: PromptRecord[];
  /** Σ T=0 mismatches over all rows (0 for a correct decoder). */
  mismatches: number;
  /**
   * The auto tree's prediction beside the measurement (T = 0 `all` row, or the first row): null with a
   * fixed tree.
   */
  autoTree: {
    choice: string;
    predictedTokPerSec: number;
    measuredTokPerSec: number;
    /** Σ (tokens − 1) / Σ decode seconds of the same calls: the rate the prediction is about. */
    measuredDecodeTokPerSec: number;
    predictedPlainTokPerSec: number;
    measuredPlainTokPerSec: number | null;
    /** Plain decoding's decode-only rate (null without plain). */
    measuredPlainDecodeTokPerSec: number | null;
    predictedTau: number;
    measuredTau: number;
    line: string;
  } | null;
}

/** Column headers of the markdown table, in order. */
export const TABLE_COLUMNS: readonly string[] = [
  "bench",
  "T",
  "prompts",
  "plain tokens",
  "spec tokens",
  "plain tok/s",
  "spec tok/s",
  "SR",
  "τ",
  "cycles",
  "accepted per position (d=1..)",
  "T=0 mismatches",
];

/** A prompt to run: its chat messages and identity. */
interface Item {
  bench: BenchName;
  id: string | number;
  turns: string[];
}

async function loadItems(evalDir: string, bench: BenchName, n: number): Promise<Item[]> {
  const file = `${evalDir.replace(/\/+$/, "")}/${EVAL_FILES[bench]}`;
  if (bench === "mt_bench") {
    return (await loadMtBench(file, n)).map((q) => ({ bench, id: q.id, turns: q.turns }));
  }
  if (bench === "humaneval") {
    return (await loadHumanEval(file, n)).map((t) => ({ bench, id: t.id, turns: [t.prompt] }));
  }
  return (await loadGsm8k(file, n)).map((p) => ({ bench, id: p.id, turns: [p.question] }));
}

/** Prompt token ids of `messages`: the chat encoding when the model has a template, else the joined text. */
function encodeMessages(engine: Engine, messages: ChatMessage[]): number[] {
  if (engine.info.chatTemplate) return engine.tokenize("", { chat: messages });
  return engine.tokenize(messages.map((m) => m.content).join("\n\n"));
}

function firstDifference(
  a: number[],
  b: number[],
): { index: number; plain: number | null; spec: number | null } {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return { index: i, plain: a[i] ?? null, spec: b[i] ?? null };
}

function aggregate(
  bench: BenchName | "all",
  temperature: number,
  recs: PromptRecord[],
  plain: boolean,
  Dp: number,
): AcceptRow {
  const ran = recs.filter((r) => r.spec);
  const sum = (f: (r: PromptRecord) => number) => ran.reduce((s, r) => s + f(r), 0);
  const specTokens = sum((r) => r.spec!.tokens), specSec = sum((r) => r.spec!.seconds);
  const cycles = sum((r) => r.spec!.cycles), cycleTokens = sum((r) => r.spec!.cycleTokens);
  const plainTokens = plain ? sum((r) => r.plain!.tokens) : null;
  const plainSec = plain ? sum((r) => r.plain!.seconds) : null;
  const specTps = specSec > 0 ? specTokens / specSec : 0;
  const plainTps = plain ? (plainSec! > 0 ? plainTokens! / plainSec! : 0) : null;
  // accepted@d = cycles with L ≥ d / cycles.
  const acceptedPerPosition = Array.from({ length: Dp - 1 }, (_, j) => {
    const d = j + 1;
    const n = sum((r) => r.spec!.acceptHistogram.slice(d).reduce((a, b) => a + b, 0));
    return cycles > 0 ? n / cycles : 0;
  });
  return {
    bench,
    temperature,
    prompts: ran.length,
    plainTokens,
    specTokens,
    plainTokPerSec: plainTps,
    specTokPerSec: specTps,
    speedup: plainTps ? specTps / plainTps : null,
    tau: cycles > 0 ? cycleTokens / cycles : 0,
    cycles,
    acceptedPerPosition,
    mismatches: plain && temperature === 0 ? ran.filter((r) => r.match === false).length : null,
  };
}

/**
 * Run the benchmark: load target + draft, the eval sets, warm up once per temperature, then plain
 * and speculative decoding on every prompt. Throws EvalDataError / ModelLoadError on bad inputs.
 */
export async function runAcceptBench(opts: AcceptBenchOptions): Promise<AcceptReport> {
  const benches = [...(opts.benches ?? BENCH_NAMES)];
  const n = opts.n ?? 80;
  const temperatures = [...(opts.temperatures ?? [0, 1])];
  const maxTokens = opts.maxTokens ?? 128;
  const treeOption = opts.tree ?? "auto";
  const seed = opts.seed ?? 0;
  const withPlain = opts.plain ?? true;
  const log = opts.log ?? ((line: string) => console.error(line));

  // Data first: a bad eval file should fail before minutes of model loading.
  const items = new Map<BenchName, Item[]>();
  for (const b of benches) items.set(b, await loadItems(opts.evalDir, b, n));

  const gpu = opts.gpu ?? await requestGpu();
  // One engine serves both decoders (plain calls pass speculative: false): same target, same buffers.
  const engine = await Engine.load({
    target: opts.target,
    draft: opts.draft,
    tree: treeOption,
    gpu,
    log,
    ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}),
  });
  // With the auto tree the engine may have chosen plain decoding: "spec" is then the engine's
  // default decoding (plain, τ = 1), reported as such.
  const tree = engine.info.tree;
  const speculative = tree !== null;
  if (!engine.info.chatTemplate) {
    log(`warning: ${opts.target} has no chat template; prompts are the raw text`);
  }
  const eosIds = engine.info.eosIds;
  const Dp = tree ? resolveTreeConfig(tree).pathWidth : 1;
  const maxContext = engine.info.maxContext;
  const fits = (P: number) => P + maxTokens <= maxContext;

  const runs = benches.reduce((s, b) => s + items.get(b)!.reduce((t, it) => t + it.turns.length, 0), 0);
  const total = runs * temperatures.length * (withPlain ? 2 : 1);
  let done = 0;
  const tick = (label: string) => opts.progress?.(++done, total, label);

  const sampling = (temperature: number, s: number) => ({ temperature, topK: 0, topP: 1, seed: s });
  const runPlain = async (prompt: number[], temperature: number, s: number) => {
    const t0 = performance.now();
    const r = await engine.complete(prompt, { maxTokens, speculative: false, ...sampling(temperature, s) });
    return { res: r, seconds: (performance.now() - t0) / 1000 };
  };
  const runSpec = async (prompt: number[], temperature: number, s: number) => {
    const t0 = performance.now();
    const r = await engine.complete(prompt, {
      maxTokens,
      ...(opts.cyclesPerRead !== undefined && speculative ? { readEvery: opts.cyclesPerRead } : {}),
      ...sampling(temperature, s),
    });
    return { res: r, seconds: (performance.now() - t0) / 1000 };
  };

  const records: PromptRecord[] = [];
  try {
    for (const temperature of temperatures) {
      // Warm-up (pipelines, first-use allocations): both decoders on the first prompt, untimed.
      const first = items.get(benches[0])![0];
      const warm = encodeMessages(engine, [{ role: "user", content: first.turns[0] }]);
      if (fits(warm.length)) {
        const wOpts = { maxTokens: Math.min(16, maxTokens), ...sampling(temperature, seed) };
        if (withPlain) await engine.complete(warm, { ...wOpts, speculative: false });
        await engine.complete(warm, {
          ...wOpts,
          ...(opts.cyclesPerRead !== undefined && speculative ? { readEvery: opts.cyclesPerRead } : {}),
        });
      }
      let j = 0;
      for (const bench of benches) {
        for (const item of items.get(bench)!) {
          const history: ChatMessage[] = [];
          let skipRest: string | undefined;
          for (let t = 0; t < item.turns.length; t++) {
            history.push({ role: "user", content: item.turns[t] });
            const prompt = encodeMessages(engine, history);
            const s = (seed + j++) >>> 0;
            const rec0: PromptRecord = {
              bench,
              id: item.id,
              turn: t + 1,
              temperature,
              seed: s,
              promptTokens: prompt.length,
            };
            records.push(rec0);
            if (!skipRest && !fits(prompt.length)) {
              skipRest = `prompt of ${prompt.length} tokens + ${maxTokens} new does not fit ` +
                `the engine's context (${maxContext} tokens)`;
              log(`warning: skipping ${bench} ${item.id} turn ${t + 1}: ${skipRest}`);
            }
            if (skipRest) {
              rec0.skipped = skipRest;
              done += withPlain ? 2 : 1;
              continue;
            }
            const label = `${bench} ${item.id}${
              item.turns.length > 1 ? ` turn ${t + 1}` : ""
            } T=${temperature}`;
            let plainTokens: number[] | undefined;
            if (withPlain) {
              const p = await runPlain(prompt, temperature, s);
              plainTokens = p.res.tokens;
              rec0.plain = {
                tokens: p.res.tokens.length,
                seconds: p.seconds,
                decodeSeconds: decodeSeconds(p.res.timing),
                finishReason: p.res.finishReason as "stop" | "length",
              };
              tick(`${label} plain`);
            }
            const q = await runSpec(prompt, temperature, s);
            // Plain decoding (the auto tree's choice): one "cycle" per token, nothing accepted.
            const n0 = q.res.tokens.length;
            const hist = q.res.speculative?.acceptHistogram ?? [n0];
            rec0.spec = {
              tokens: q.res.tokens.length,
              seconds: q.seconds,
              decodeSeconds: decodeSeconds(q.res.timing),
              finishReason: q.res.finishReason as "stop" | "length",
              cycles: q.res.speculative?.cycles ?? n0,
              cycleTokens: hist.reduce((a, c, L) => a + c * (L + 1), 0),
              acceptHistogram: hist,
            };
            tick(`${label} spec`);
            if (plainTokens && temperature === 0) {
              rec0.match = plainTokens.length === q.res.tokens.length &&
                plainTokens.every((x, i) => x === q.res.tokens[i]);
              if (!rec0.match) {
                rec0.mismatch = firstDifference(plainTokens, q.res.tokens);
                const m = rec0.mismatch;
                log(
                  `!!! LOSSLESSNESS VIOLATION (bug): ${label}: speculative output differs from plain greedy ` +
                    `at token ${m.index} (plain ${m.plain}, spec ${m.spec}; lengths ${plainTokens.length} / ` +
                    `${q.res.tokens.length})`,
                );
              }
            }
            // The next turn sees the model's own answer (plain decoding's, or spec's with --no-plain).
            const answer = plainTokens ?? q.res.tokens;
            history.push({ role: "assistant", content: engine.detokenize(answer) });
          }
        }
      }
    }
  } finally {
    await engine.close();
  }

  const rows: AcceptRow[] = [];
  for (const temperature of temperatures) {
    const atT = records.filter((r) => r.temperature === temperature);
    for (const bench of benches) {
      rows.push(aggregate(bench, temperature, atT.filter((r) => r.bench === bench), withPlain, Dp));
    }
    if (benches.length > 1) rows.push(aggregate("all", temperature, atT, withPlain, Dp));
  }
  return {
    adapter: describeGpu(gpu),
    date: new Date().toISOString(),
    config: {
      target: opts.target,
      draft: opts.draft,
      evalDir: opts.evalDir,
      benches,
      n,
      temperatures,
      maxTokens,
      tree: tree ? { ...tree } : null,
      treeOption: treeOption === "auto" ? "auto" : { ...treeOption },
      seed,
      plain: withPlain,
      eosIds: [...eosIds],
      targetWeightDtype: engine.info.weightDtype,
    },
    rows,
    prompts: records,
    mismatches: rows.filter((r) => r.bench !== "all").reduce((s, r) => s + (r.mismatches ?? 0), 0),
    autoTree: autoTreeReport(engine, rows, records),
  };
}

/** Engine timing → seconds after the first token. */
function decodeSeconds(t: { firstTokenSeconds: number; totalSeconds: number }): number {
  return Math.max(0, t.totalSeconds - t.firstTokenSeconds);
}

/** Σ (tokens − 1) / Σ decode seconds over the records' `which` calls (0 when nothing was decoded). */
function decodeRate(recs: PromptRecord[], which: "plain" | "spec"): number {
  let tokens = 0, seconds = 0;
  for (const r of recs) {
    const d = r[which];
    if (!d || d.tokens < 2) continue;
    tokens += d.tokens - 1;
    seconds += d.decodeSeconds;
  }
  return seconds > 0 ? tokens / seconds : 0;
}

function autoTreeReport(
  engine: Engine,
  rows: AcceptRow[],
  records: PromptRecord[],
): AcceptReport["autoTree"] {
  const a = engine.info.autoTree;
  if (!a || rows.length === 0) return null;
  const row = rows.find((r) => r.bench === "all" && r.temperature === 0) ??
    rows.find((r) => r.temperature === 0) ?? rows[0];
  const recs = records.filter((r) =>
    r.temperature === row.temperature && !r.skipped &&
    (row.bench === "all" || r.bench === row.bench)
  );
  return {
    choice: a.tree ? `${a.tree.totalTokens}/${a.tree.depth}/${a.tree.topK}` : "plain",
    predictedTokPerSec: a.predictedTokPerSec,
    measuredTokPerSec: row.specTokPerSec,
    measuredDecodeTokPerSec: decodeRate(recs, "spec"),
    predictedPlainTokPerSec: a.plainTokPerSec,
    measuredPlainTokPerSec: row.plainTokPerSec,
    measuredPlainDecodeTokPerSec: row.plainTokPerSec === null ? null : decodeRate(recs, "plain"),
    predictedTau: a.predictedTau,
    measuredTau: row.tau,
    line: a.line,
  };
}

/** The report as markdown: a settings line, the table, and a loud line when T=0 outputs differed. */
export function formatMarkdown(report: AcceptReport): string {
  const c = report.config;
  const f = (x: number | null, d = 2) => (x === null ? "–" : x.toFixed(d));
  const lines = [
    `adapter: ${report.adapter}`,
    `target: \`${c.target}\` (${c.targetWeightDtype} weights), draft: \`${c.draft}\`, tree ${
      c.tree ? `${c.tree.totalTokens}/${c.tree.depth}/${c.tree.topK}` : "none (plain decoding)"
    } (total/depth/top-k${c.treeOption === "auto" ? ", auto" : ""}), max tokens ${c.maxTokens}, n ${c.n}, ` +
    `seed ${c.seed}, eos ${JSON.stringify(c.eosIds)}`,
    "",
    `| ${TABLE_COLUMNS.join(" | ")} |`,
    `|${TABLE_COLUMNS.map((_, i) => (i < 2 ? "---" : "---:")).join("|")}|`,
  ];
  for (const r of report.rows) {
    const bench = r.bench === "all" ? "**all**" : r.bench;
    lines.push(
      `| ${
        [
          bench,
          String(r.temperature),
          String(r.prompts),
          r.plainTokens === null ? "–" : String(r.plainTokens),
          String(r.specTokens),
          f(r.plainTokPerSec, 1),
          f(r.specTokPerSec, 1),
          r.speedup === null ? "–" : `${r.speedup.toFixed(2)}×`,
          r.tau.toFixed(2),
          String(r.cycles),
          r.acceptedPerPosition.map((a) => a.toFixed(2)).join(" "),
          r.mismatches === null ? "–" : r.mismatches === 0 ? "0" : `**${r.mismatches} (BUG)**`,
        ].join(" | ")
      } |`,
    );
  }
  lines.push("");
  lines.push(
    "τ = Σ tokens emitted by cycles (accepted + bonus) / Σ cycles; tok/s = Σ new tokens / Σ wall seconds " +
      "per call (prefill included); SR = spec tok/s ÷ plain tok/s; accepted per position d = fraction of " +
      "cycles accepting ≥ d drafts.",
  );
  const a = report.autoTree;
  if (a) {
    lines.push(
      `auto tree ${a.choice}: predicted ${a.predictedTokPerSec.toFixed(1)} tok/s (τ ${
        a.predictedTau.toFixed(2)
      }), ` +
        `measured ${a.measuredDecodeTokPerSec.toFixed(1)} decode tok/s (${
          a.measuredTokPerSec.toFixed(1)
        } end to end; τ ${a.measuredTau.toFixed(2)}); plain predicted ` +
        `${a.predictedPlainTokPerSec.toFixed(1)} tok/s, measured ${
          f(a.measuredPlainDecodeTokPerSec, 1)
        } decode ` +
        `tok/s (${f(a.measuredPlainTokPerSec, 1)} end to end)` +
        (c.tree ? "" : " (the spec columns are plain decoding: the auto tree chose it)") +
        ". Predictions are decode rates calibrated once on short prompts; decode tok/s = Σ (tokens − 1) / Σ " +
        "seconds after each call's first token, end to end = Σ tokens / Σ wall seconds.",
    );
  }
  const skipped = report.prompts.filter((p) => p.skipped).length;
  if (skipped) lines.push(`${skipped} prompt(s) skipped (too long for the KV cache; see the JSON).`);
  if (report.mismatches > 0) {
    lines.push(
      `**!!! T=0 LOSSLESSNESS CHECK FAILED: ${report.mismatches} prompt(s) where speculative output ≠ plain ` +
        `greedy output. This is a decoder bug. !!!**`,
    );
  } else if (c.plain && c.temperatures.includes(0)) {
    lines.push("T=0 losslessness: speculative output identical to plain greedy on every prompt.");
  }
  return lines.join("\n") + "\n";
}

interface AcceptSettings {
  target: string;
  draft: string;
  bench: BenchName[];
  n: number;
  temperature: number[];
  maxTokens: number;
  tree: TreeShape | "auto";
  seed: number;
  evalDir: string;
  json: string;
  markdown: string;
  noPlain: boolean;
}

/** The flag table of `deno task bench:accept` (argv, --help and validation). */
export const FLAGS: readonly FlagSpec<keyof AcceptSettings>[] = [
  {
    flag: "target",
    key: "target",
    kind: "string",
    arg: "DIR",
    help: "Target model directory (HF layout: config.json, safetensors, tokenizer, template).",
  },
  {
    flag: "draft",
    key: "draft",
    kind: "string",
    arg: "DIR",
    help: "EAGLE-3 draft directory (config.json + model.safetensors).",
  },
  {
    flag: "bench",
    key: "bench",
    kind: "list",
    choices: BENCH_NAMES,
    arg: "LIST",
    help: "Comma-separated benchmarks: mt_bench,humaneval,gsm8k (default all three).",
  },
  {
    flag: "n",
    key: "n",
    kind: "int",
    min: 1,
    arg: "N",
    help: "First N items of each benchmark (default 80; MT-Bench runs 2 turns per item).",
  },
  {
    flag: "temperature",
    key: "temperature",
    kind: "numList",
    min: 0,
    arg: "LIST",
    help: "Comma-separated temperatures (default 0,1). T=0 is greedy and checks losslessness.",
  },
  {
    flag: "max-tokens",
    key: "maxTokens",
    kind: "int",
    min: 1,
    arg: "N",
    help: "Most new tokens per prompt for both decoders (default 128).",
  },
  {
    flag: "tree",
    key: "tree",
    kind: "treeAuto",
    arg: "T,D,K|auto",
    help: "Draft tree: total tokens (root included, ≤ 64), depth, top-k, or auto (default: the engine's " +
      "cost-aware tree; the report then shows predicted vs measured tokens/s).",
  },
  {
    flag: "seed",
    key: "seed",
    kind: "int",
    min: 0,
    max: 0xffffffff,
    arg: "S",
    help: "Base sampling seed; prompt j of a temperature uses S + j (default 0).",
  },
  {
    flag: "eval-dir",
    key: "evalDir",
    kind: "string",
    arg: "DIR",
    help:
      "Evaluation data directory (default <repo>/../shared/data/eval), holding mt_bench/question.jsonl, " +
      "humaneval/HumanEval.jsonl.gz, gsm8k/test.jsonl.",
  },
  {
    flag: "json",
    key: "json",
    kind: "string",
    arg: "FILE",
    help: "Write the report with the raw per-prompt numbers as JSON to FILE.",
  },
  {
    flag: "markdown",
    key: "markdown",
    kind: "string",
    arg: "FILE",
    help: "Also write the markdown table to FILE (it always goes to stdout).",
  },
  {
    flag: "no-plain",
    key: "noPlain",
    kind: "bool",
    help: "Skip plain decoding (no SR, no losslessness check; MT-Bench turn 2 then uses the speculative " +
      "turn-1 answer).",
  },
];

const HELP = helpText(FLAGS, {
  usage: "deno task bench:accept --target DIR --draft DIR [options]",
  description: `Acceptance length τ and speedup SR of an EAGLE-3 draft (plain vs tree speculative decoding) on
MT-Bench (both turns), HumanEval and GSM8K, with a T=0 losslessness check.`,
  footer: `Prompts: the chat template with the generation prompt; HumanEval's code prompt is the user message.
Exit status: 0 ok, 1 bad arguments / data / model, 2 T=0 outputs differed (a decoder bug).`,
});

/** A stderr progress bar: redrawn in place on a terminal, a line every ~10 % otherwise. */
function progressBar(): (done: number, total: number, label: string) => void {
  const tty = Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  const t0 = performance.now();
  let lastTenth = -1;
  return (done, total, label) => {
    const frac = total > 0 ? done / total : 1;
    const el = (performance.now() - t0) / 1000;
    const eta = done > 0 ? (el / done) * (total - done) : 0;
    const w = 30, fill = Math.round(frac * w);
    const bar = `[${"#".repeat(fill)}${".".repeat(w - fill)}] ${done}/${total} ${el.toFixed(0)}s ` +
      `eta ${eta.toFixed(0)}s  ${label}`;
    if (tty) {
      Deno.stderr.writeSync(enc.encode(`\r\x1b[K${bar}${done === total ? "\n" : ""}`));
    } else if (Math.floor(frac * 10) > lastTenth || done === total) {
      lastTenth = Math.floor(frac * 10);
      Deno.stderr.writeSync(enc.encode(`${bar}\n`));
    }
  };
}

async function main(): Promise<void> {
  const args = await parseCommandLine<AcceptSettings>(FLAGS, Deno.args, HELP);
  if (!args.target) fail("--target DIR is required (see --help)");
  if (!args.draft) fail("--draft DIR is required (see --help)");
  const benches = args.bench ?? [...BENCH_NAMES];
  const temperatures = args.temperature ?? [0, 1];
  const tree: TreeShape | "auto" = args.tree ?? "auto";
  if (tree !== "auto" && (tree.totalTokens < 2 || tree.totalTokens > 64)) {
    fail(`--tree ${tree.totalTokens},${tree.depth},${tree.topK}: expected 2 ≤ T ≤ 64`);
  }
  const seed = args.seed ?? 0;
  const n = args.n ?? 80;
  const maxTokens = args.maxTokens ?? 128;
  const evalDir = args.evalDir ??
    decodeURIComponent(new URL("../../shared/data/eval", import.meta.url).pathname).replace(/\/$/, "");

  let gpu: GpuDevice;
  try {
    // The engine's software-adapter threading for this target (a bad path fails later, with its message).
    const threads = await loadLlamaConfig(args.target).then(
      (c) => softwareThreadsFor(llamaParamCount(c)),
      () => undefined,
    );
    gpu = await requestGpu({ softwareThreads: threads });
  } catch (e) {
    if (e instanceof GpuUnavailableError) fail(`${e.name}: ${e.message}`);
    throw e;
  }
  // stdout carries only the markdown (which repeats the adapter); this line is for the impatient.
  console.error(`adapter: ${describeGpu(gpu)}`);
  let report: AcceptReport;
  try {
    report = await runAcceptBench({
      target: args.target,
      draft: args.draft,
      evalDir,
      benches,
      n,
      temperatures,
      maxTokens,
      tree,
      seed,
      plain: !args.noPlain,
      gpu,
      progress: progressBar(),
    });
  } catch (e) {
    if (
      e instanceof EvalDataError || e instanceof ModelLoadError || e instanceof ShapeError ||
      e instanceof EngineInputError
    ) {
      fail(`${e.name}: ${e.message.split("\n")[0]}`);
    }
    throw e;
  }
  const md = formatMarkdown(report);
  console.log(md);
  if (args.markdown) await Deno.writeTextFile(args.markdown, md);
  if (args.json) await Deno.writeTextFile(args.json, JSON.stringify(report, null, 1) + "\n");
  if (report.mismatches > 0) {
    console.error(
      `!!! ${report.mismatches} T=0 prompt(s) where speculative decoding differed from plain greedy: a BUG !!!`,
    );
    Deno.exit(2);
  }
}

if (import.meta.main) await main();
