/**
 * The trainer's settings: one table of flags ({@link FLAGS}) drives the command line (`node:util`
 * `parseArgs`), the `--config FILE` JSON (keys are the flag names without `--`), the `--help` text
 * and validation, so the three can never disagree. Precedence: defaults < config file < flags.
 * Every problem is a {@link ConfigError} with a one-line message naming the flag, or the file and
 * key, at fault. The machinery (parsing, config files, help, messages) is the shared flags module
 * `@gto/core/cli`; this file holds the trainer's table, defaults and settings type.
 * @module
 */
import { CORPUS_SOURCES, type CorpusSource } from "@gto/core/train";
import {
  FlagError,
  type FlagSpec,
  helpText,
  parseConfigText as parseConfigWith,
  parseFlags,
} from "@gto/core/cli";

/** A bad flag, config file or config key (the shared {@link FlagError}); one line, names the culprit. */
export const ConfigError: typeof FlagError = FlagError;
/** A bad flag, config file or config key. */
export type ConfigError = FlagError;

/** Everything `deno task train` needs to know (flag `--max-prompts` ↔ key `maxPrompts`). */
export interface TrainConfig {
  /** Target model directory. */
  target: string;
  /** Output directory. */
  out: string;
  /** Corpus directory (gsm8k/, mbpp/, svamp/). */
  corpus: string;
  /** Prompt sources, interleaved round-robin. */
  sources: CorpusSource[];
  /** Prompts in all (training + held-out evaluation). */
  maxPrompts: number;
  /** Sampling temperature of the response regeneration (0 = greedy). */
  regenTemperature: number;
  /** Most new tokens per regenerated response. */
  regenMaxTokens: number;
  /** OpenAI-compatible endpoint that regenerates the responses (null: the in-process decoder). */
  regenEndpoint: string | null;
  /** Model id requested from the endpoint (null: the first it lists). */
  regenModel: string | null;
  /** Requests in flight to the endpoint. */
  regenConcurrency: number;
  /** Regenerated-data cache file (null: OUT/data.jsonl). */
  cache: string | null;
  /** Draft vocabulary size (null: min(32000, ⌈V/4⌉)). */
  draftVocab: number | null;
  /** Draft to start from (its vocabulary is kept), or null for a fresh one. */
  initDraft: string | null;
  /** Optimizer steps in all. */
  steps: number;
  /** Sequences per batch. */
  batch: number;
  /** Most tokens per sequence. */
  seqLen: number;
  /** Peak learning rate. */
  lr: number;
  /** Linear warmup steps (null: min(100, ⌊steps/10⌋)). */
  warmup: number | null;
  /** Learning rate at the end of the cosine decay. */
  minLr: number;
  /** AdamW decoupled weight decay. */
  weightDecay: number;
  /** Gradient clipping norm. */
  clip: number;
  /** Seed of the draft initialisation and of the data order. */
  seed: number;
  /** Read metrics back and log every N steps. */
  logEvery: number;
  /** Evaluate τ every N steps (0: only at the end). */
  evalEvery: number;
  /** Held-out prompts (the last ones of the prompt list). */
  evalPrompts: number;
  /** Most new tokens per evaluation prompt. */
  evalMaxTokens: number;
  /** Checkpoint every N steps (0: only at the end or on interrupt). */
  saveEvery: number;
  /** Continue from OUT/latest. */
  resume: boolean;
  /** Stop (with a checkpoint) after this step in this run (null: run to `steps`). */
  stopAfter: number | null;
  /** Evaluation tree shape: total tokens, depth, top-k (GTO: also the training trees). */
  tree: { totalTokens: number; depth: number; topK: number };
  /** ttt: Phase I (EAGLE-3 training-time test); gto: Phase II (GTO) from --init-draft. */
  phase: "ttt" | "gto";
  /** GTO: K groups of adjacent prefixes per sequence. */
  gtoGroups: number;
  /** GTO: m prefixes per group. */
  groupSize: number;
  /** GTO: ω, the weight of L_GTO (0 = the equal-budget control). */
  omega: number;
  /** GTO: ε of the PPO clip. */
  clipEps: number;
  /** GTO: δ added to the group std. */
  stdFloor: number;
  /** GTO: sample or population std. */
  gtoStd: "sample" | "population";
  /** GTO: branch aggregation of the tree reward. */
  aggregate: "lse" | "max" | "mean";
  /** GTO: η of the log-sum-exp reward. */
  eta: number;
  /** GTO: R = r(M) instead of r(M) − r(M₀). */
  noDebias: boolean;
  /** GTO: trees per verification forward (null: automatic). */
  verifyChunk: number | null;
}

/** The default corpus: `../shared/data/corpus` next to the repository root. */
export const DEFAULT_CORPUS: string = decodeURIComponent(
  new URL("../../../shared/data/corpus", import.meta.url).pathname,
).replace(/\/+$/, "");

/** Defaults of every setting except `target` and `out`. */
export const DEFAULTS: Omit<TrainConfig, "target" | "out"> = {
  corpus: DEFAULT_CORPUS,
  sources: [...CORPUS_SOURCES],
  maxPrompts: 512,
  regenTemperature: 0,
  regenMaxTokens: 256,
  regenEndpoint: null,
  regenModel: null,
  regenConcurrency: 4,
  cache: null,
  draftVocab: null,
  initDraft: null,
  steps: 1000,
  batch: 4,
  seqLen: 256,
  lr: 5e-4,
  warmup: null,
  minLr: 0,
  weightDecay: 0,
  clip: 0.5,
  seed: 0,
  logEvery: 10,
  evalEvery: 200,
  evalPrompts: 8,
  evalMaxTokens: 48,
  saveEvery: 500,
  resume: false,
  stopAfter: null,
  tree: { totalTokens: 60, depth: 7, topK: 10 },
  phase: "ttt",
  gtoGroups: 16,
  groupSize: 8,
  omega: 0.5,
  clipEps: 0.2,
  stdFloor: 1e-4,
  gtoStd: "sample",
  aggregate: "lse",
  eta: 1,
  noDebias: false,
  verifyChunk: null,
};

/** The flag table: `--flag` ↔ config key `flag` ↔ {@link TrainConfig} field. */
export const FLAGS: readonly FlagSpec<keyof TrainConfig>[] = [
  {
    flag: "target",
    key: "target",
    kind: "string",
    arg: "DIR",
    help: "Target model directory (HF layout). Required.",
  },
  { flag: "out", key: "out", kind: "string", arg: "DIR", help: "Output directory (created). Required." },
  {
    flag: "corpus",
    key: "corpus",
    kind: "string",
    arg: "DIR",
    help: "Prompt corpus with gsm8k/, mbpp/, svamp/ (default ../shared/data/corpus from the repo root).",
  },
  {
    flag: "sources",
    key: "sources",
    kind: "list",
    choices: CORPUS_SOURCES,
    arg: "LIST",
    help: `Comma-separated prompt sources, interleaved (default ${CORPUS_SOURCES.join(",")}).`,
  },
  {
    flag: "max-prompts",
    key: "maxPrompts",
    kind: "int",
    arg: "N",
    min: 1,
    help: `Prompts in all, training + held-out (default ${DEFAULTS.maxPrompts}).`,
  },
  {
    flag: "regen-temperature",
    key: "regenTemperature",
    kind: "num",
    arg: "T",
    min: 0,
    help: "Temperature of the target's response regeneration (default 0 = greedy).",
  },
  {
    flag: "regen-max-tokens",
    key: "regenMaxTokens",
    kind: "int",
    arg: "N",
    min: 1,
    help: `Most tokens per regenerated response (default ${DEFAULTS.regenMaxTokens}).`,
  },
  {
    flag: "regen-endpoint",
    key: "regenEndpoint",
    kind: "string",
    arg: "URL",
    nullable: true,
    help: "Regenerate through an OpenAI-compatible /v1/chat/completions (vLLM, SGLang, deno task serve), " +
      "e.g. http://127.0.0.1:8000/v1; same cache, same T=0 responses (key: $OPENAI_API_KEY).",
  },
  {
    flag: "regen-model",
    key: "regenModel",
    kind: "string",
    arg: "NAME",
    nullable: true,
    help: "Model id for --regen-endpoint (default: the first of its /v1/models).",
  },
  {
    flag: "regen-concurrency",
    key: "regenConcurrency",
    kind: "int",
    arg: "N",
    min: 1,
    help: `Requests in flight to --regen-endpoint (default ${DEFAULTS.regenConcurrency}).`,
  },
  {
    flag: "cache",
    key: "cache",
    kind: "string",
    arg: "FILE",
    nullable: true,
    help: "Regenerated-data cache, reused and extended across runs (default OUT/data.jsonl).",
  },
  {
    flag: "draft-vocab",
    key: "draftVocab",
    kind: "int",
    arg: "N",
    min: 1,
    nullable: true,
    help: "Draft vocabulary: the N most frequent response tokens (default min(32000, ceil(V/4))).",
  },
  {
    flag: "init-draft",
    key: "initDraft",
    kind: "string",
    arg: "DIR",
    nullable: true,
    help: "Start from this EAGLE-3 draft (keeps its vocabulary) instead of a fresh one.",
  },
  {
    flag: "steps",
    key: "steps",
    kind: "int",
    arg: "N",
    min: 1,
    help: `Optimizer steps (default ${DEFAULTS.steps}).`,
  },
  {
    flag: "batch",
    key: "batch",
    kind: "int",
    arg: "B",
    min: 1,
    help: `Sequences per step (default ${DEFAULTS.batch}).`,
  },
  {
    flag: "seq-len",
    key: "seqLen",
    kind: "int",
    arg: "S",
    min: 2,
    help: `Most tokens per sequence; longer samples are cut (default ${DEFAULTS.seqLen}).`,
  },
  {
    flag: "lr",
    key: "lr",
    kind: "num",
    arg: "LR",
    gt: 0,
    help: `Peak learning rate (default ${DEFAULTS.lr}).`,
  },
  {
    flag: "warmup",
    key: "warmup",
    kind: "int",
    arg: "N",
    min: 0,
    nullable: true,
    help: "Linear warmup steps, then cosine decay (default min(100, steps/10)).",
  },
  {
    flag: "min-lr",
    key: "minLr",
    kind: "num",
    arg: "LR",
    min: 0,
    help: "Learning rate at the last step (default 0).",
  },
  {
    flag: "weight-decay",
    key: "weightDecay",
    kind: "num",
    arg: "W",
    min: 0,
    help: "AdamW decoupled weight decay (default 0; betas 0.9/0.95).",
  },
  {
    flag: "clip",
    key: "clip",
    kind: "num",
    arg: "C",
    gt: 0,
    help: `Gradient clipping (global norm, default ${DEFAULTS.clip}).`,
  },
  {
    flag: "seed",
    key: "seed",
    kind: "int",
    arg: "N",
    min: 0,
    help: "Seed of the draft initialisation and the data order (default 0).",
  },
  {
    flag: "log-every",
    key: "logEvery",
    kind: "int",
    arg: "N",
    min: 1,
    help: `Read metrics back, log and plot every N steps (default ${DEFAULTS.logEvery}).`,
  },
  {
    flag: "eval-every",
    key: "evalEvery",
    kind: "int",
    arg: "N",
    min: 0,
    help:
      `Measure tau on the held-out prompts every N steps and at the end (0: end only; default ${DEFAULTS.evalEvery}).`,
  },
  {
    flag: "eval-prompts",
    key: "evalPrompts",
    kind: "int",
    arg: "N",
    min: 0,
    help:
      `Held-out prompts (the last N, never trained on; 0: no evaluation; default ${DEFAULTS.evalPrompts}).`,
  },
  {
    flag: "eval-max-tokens",
    key: "evalMaxTokens",
    kind: "int",
    arg: "N",
    min: 1,
    help: `Most new tokens per evaluation prompt (default ${DEFAULTS.evalMaxTokens}).`,
  },
  {
    flag: "save-every",
    key: "saveEvery",
    kind: "int",
    arg: "N",
    min: 0,
    help: `Checkpoint every N steps (0: only at the end / on Ctrl-C; default ${DEFAULTS.saveEvery}).`,
  },
  {
    flag: "resume",
    key: "resume",
    kind: "bool",
    help: "Continue exactly from OUT/latest (settings not given again are taken from the checkpoint).",
  },
  {
    flag: "stop-after",
    key: "stopAfter",
    kind: "int",
    arg: "N",
    min: 1,
    nullable: true,
    help: "Stop after step N of this run with a checkpoint (resume later with --resume).",
  },
  {
    flag: "tree",
    key: "tree",
    kind: "tree",
    arg: "T,D,K",
    help: "Evaluation draft tree: total tokens, depth, top-k (default 60,7,10); with --phase gto also the " +
      "training trees.",
  },
  {
    flag: "phase",
    key: "phase",
    kind: "enum",
    arg: "P",
    choices: ["ttt", "gto"],
    help: "ttt: Phase I (default); gto: Phase II (GTO) from --init-draft, which is also the frozen M0. " +
      "GTO's default --lr is one tenth of Phase I's.",
  },
  {
    flag: "gto-groups",
    key: "gtoGroups",
    kind: "int",
    arg: "K",
    min: 1,
    help: `GTO: groups of adjacent prefixes per sequence (default ${DEFAULTS.gtoGroups}; 4 on a CPU).`,
  },
  {
    flag: "group-size",
    key: "groupSize",
    kind: "int",
    arg: "M",
    min: 1,
    help: `GTO: prefixes per group (default ${DEFAULTS.groupSize}).`,
  },
  {
    flag: "omega",
    key: "omega",
    kind: "num",
    arg: "W",
    min: 0,
    help: `GTO: weight of L_GTO (default ${DEFAULTS.omega}; 0 = the equal-budget control).`,
  },
  {
    flag: "clip-eps",
    key: "clipEps",
    kind: "num",
    arg: "E",
    min: 0,
    help: `GTO: PPO clip range 1 ± E of the ratio (default ${DEFAULTS.clipEps}).`,
  },
  {
    flag: "std-floor",
    key: "stdFloor",
    kind: "num",
    arg: "D",
    min: 0,
    help: `GTO: delta added to the group std (default ${DEFAULTS.stdFloor}).`,
  },
  {
    flag: "gto-std",
    key: "gtoStd",
    kind: "enum",
    arg: "K",
    choices: ["sample", "population"],
    help: "GTO: standard deviation of the group standardisation (default sample).",
  },
  {
    flag: "aggregate",
    key: "aggregate",
    kind: "enum",
    arg: "A",
    choices: ["lse", "max", "mean"],
    help: "GTO: tree reward over the branches (default lse).",
  },
  {
    flag: "eta",
    key: "eta",
    kind: "num",
    arg: "H",
    gt: 0,
    help: `GTO: eta of the log-sum-exp reward (default ${DEFAULTS.eta}).`,
  },
  { flag: "no-debias", key: "noDebias", kind: "bool", help: "GTO: R = r(M) instead of r(M) - r(M0)." },
  {
    flag: "verify-chunk",
    key: "verifyChunk",
    kind: "int",
    arg: "C",
    min: 1,
    nullable: true,
    help: "GTO: trees per target verification forward (default: automatic, <= 1024 rows).",
  },
];

/** The `--help` text. */
export const HELP: string = helpText(FLAGS, {
  usage: "deno task train --target DIR --out DIR [--config FILE] [options]",
  description: `Phase I of draft training (EAGLE-3 training-time test): prompts from the corpus, responses
regenerated by the target, a fresh (or --init-draft) EAGLE-3 draft trained with 7 unrolled steps,
AdamW, warmup + cosine lr; tau measured with tree speculative decoding on held-out prompts.
--phase gto: Phase II (GTO) from --init-draft (also the frozen M0): the token loss plus omega times
the PPO-clip surrogate of debiased, group-standardised tree rewards, in one optimizer step.
Precedence: defaults < --config file < flags. Ctrl-C finishes the step, checkpoints, exits 130.`,
  extraRows: [["--config FILE", 'JSON object of settings; keys are the flag names ("max-prompts": 300).']],
  footer: `Writes OUT/metrics.jsonl, OUT/metrics.svg, OUT/checkpoint-STEP/ (draft + trainer_state.*),
OUT/latest (name of the newest checkpoint), OUT/draft/ (final draft, EAGLE-3 layout), OUT/data.jsonl.

Example:
  deno task train --target models/tiny --out out/tiny-draft`,
});

/** A parsed command line: the settings given (by field) and where each came from. */
export interface ParsedSettings {
  /** Whether `--help` was asked for. */
  help: boolean;
  /** Settings given explicitly (config file, then flags on top). */
  given: Partial<TrainConfig>;
  /** Fields set by a flag or the config file (what `--resume` keeps instead of the checkpoint's). */
  explicit: Set<keyof TrainConfig>;
}

/**
 * Parse a config file's text: a JSON object whose keys are flag names. Throws {@link ConfigError}
 * naming `file` (and the key) on bad JSON, unknown keys and wrongly typed values.
 */
export function parseConfigText(file: string, text: string): Partial<TrainConfig> {
  return parseConfigWith<TrainConfig>(FLAGS, file, text);
}

/**
 * Parse the command line (and the `--config` file it names). Throws {@link ConfigError} with a
 * one-line message on an unknown flag, a bad value, or a bad config file.
 */
export function parseSettings(argv: readonly string[]): Promise<ParsedSettings> {
  return parseFlags<TrainConfig>(FLAGS, argv, { config: true });
}

/** Defaults + `given`; throws {@link ConfigError} when `--target` or `--out` is missing. */
export function resolveConfig(given: Partial<TrainConfig>): TrainConfig {
  if (!given.target) throw new ConfigError("--target DIR is required (see --help)");
  if (!given.out) throw new ConfigError("--out DIR is required (see --help)");
  const cfg: TrainConfig = {
    ...DEFAULTS,
    sources: [...DEFAULTS.sources],
    tree: { ...DEFAULTS.tree },
    ...given,
    target: given.target,
    out: given.out,
  };
  if (cfg.phase === "gto") {
    if (!cfg.initDraft) {
      throw new ConfigError("--phase gto needs --init-draft DIR (the Phase-I draft, also M0)");
    }
    if (given.lr === undefined) cfg.lr = DEFAULTS.lr / 10;
  }
  return cfg;
}

/** The settings as a config-file object (flag names as keys), e.g. for trainer_state.json. */
export function configToJson(cfg: TrainConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of FLAGS) {
    const v = cfg[f.key];
    out[f.flag] = f.kind === "tree" ? [cfg.tree.totalTokens, cfg.tree.depth, cfg.tree.topK] : v;
  }
  return out;
}

/** Settings that change the training trajectory (a resume with other values is no longer exact). */
export const TRAJECTORY_KEYS: readonly (keyof TrainConfig)[] = [
  "target",
  "corpus",
  "sources",
  "maxPrompts",
  "regenTemperature",
  "regenMaxTokens",
  "draftVocab",
  "initDraft",
  "steps",
  "batch",
  "seqLen",
  "lr",
  "warmup",
  "minLr",
  "weightDecay",
  "clip",
  "seed",
  "evalPrompts",
  "phase",
  "gtoGroups",
  "groupSize",
  "omega",
  "clipEps",
  "stdFloor",
  "gtoStd",
  "aggregate",
  "eta",
  "noDebias",
];
