/**
 * `deno task serve` flags → a validated configuration, kept apart from `main.ts` so the parsing and its
 * one-line errors are tested without loading a model. The flags are a table for the shared
 * `@gto/core/cli` module (argv, `--help` and the one-line `error:` messages, as for generate, train and
 * bench); this file adds what the table cannot say: `--draft`/`--no-draft` exclusion, the default draft,
 * `--max-body` size suffixes, the `GTO_API_KEY` fallback. Defaults: 127.0.0.1:8000, the bundled
 * `models/tiny` target with `models/tiny-draft` when that directory exists (plain decoding otherwise).
 * @module
 */
import { FlagError, type FlagSpec, helpText, parseFlags, WEIGHT_DTYPE_FLAG } from "@gto/core/cli";

export { FlagError };

const REPO = new URL("../../", import.meta.url);
const path = (rel: string): string => decodeURIComponent(new URL(rel, REPO).pathname);

/** The bundled target model directory. */
export const DEFAULT_MODEL: string = path("models/tiny");
/** The bundled draft directory (used when present). */
export const DEFAULT_DRAFT: string = path("models/tiny-draft");

/** Parsed server configuration. */
export interface ServeConfig {
  /** Target model directory. */
  model: string;
  /** Draft directory, null for plain decoding, undefined for the engine's default (the bundled
   * `models/tiny-draft` with the bundled tiny target, when it exists). */
  draft?: string | null;
  /** Draft tree (null: the engine's default, the cost-aware `"auto"`). */
  tree: { totalTokens: number; depth: number; topK: number } | "auto" | null;
  /** Bind address. */
  host: string;
  /** Port (0 = any free port). */
  port: number;
  /** Required bearer key, if any. */
  apiKey?: string;
  /** Accepted model ids (empty: the model directory's name). */
  servedModelNames: string[];
  /** Most prompt + new tokens per request (undefined: the engine's default). */
  maxContext?: number;
  /** Most waiting requests. */
  maxQueue: number;
  /** Longest queue wait, seconds. */
  queueTimeout: number;
  /** Largest request body, bytes. */
  maxBody: number;
  /** Chat max tokens when a request gives none (capped by the remaining context). */
  maxTokensDefault: number;
  /** GPU weight storage. */
  weightDtype: "auto" | "f32" | "f16";
}

/** The flags as given (flag `--max-queue` ↔ field `maxQueue`), before defaults. */
interface ServeFlags {
  model: string;
  draft: string;
  noDraft: boolean;
  tree: { totalTokens: number; depth: number; topK: number } | "auto";
  host: string;
  port: number;
  apiKey: string;
  servedModelName: string;
  maxContext: number;
  maxQueue: number;
  queueTimeout: number;
  maxBody: string;
  maxTokensDefault: number;
  weightDtype: "auto" | "f32" | "f16";
}

/** The flag table (argv, --help and validation). */
export const FLAGS: readonly FlagSpec<keyof ServeFlags>[] = [
  {
    flag: "model",
    key: "model",
    kind: "string",
    arg: "DIR",
    help: "Target model directory (default: the bundled tiny model).",
  },
  {
    flag: "draft",
    key: "draft",
    kind: "string",
    arg: "DIR",
    help: "EAGLE-3 draft directory (default: models/tiny-draft when the target is the bundled tiny model " +
      "and that directory exists; else plain decoding).",
  },
  { flag: "no-draft", key: "noDraft", kind: "bool", help: "Plain decoding, no draft." },
  {
    flag: "tree",
    key: "tree",
    kind: "treeAuto",
    arg: "T,D,K|auto",
    help:
      "Draft tree: total verified tokens, depth, top-k per node, or auto (default: auto, the cost-aware " +
      "tree measured on this adapter and cached; it may choose plain decoding).",
  },
  {
    flag: "host",
    key: "host",
    kind: "string",
    arg: "HOST",
    help: "Address to bind (default 127.0.0.1). A non-loopback address without --api-key prints a warning.",
  },
  {
    flag: "port",
    key: "port",
    kind: "int",
    arg: "N",
    min: 0,
    max: 65535,
    help: "Port (default 8000; 0 = any free port, printed in the ready line).",
  },
  {
    flag: "api-key",
    key: "apiKey",
    kind: "string",
    arg: "KEY",
    help: 'Require "Authorization: Bearer KEY" on /v1/*, /tokenize, /detokenize and /playground/generate ' +
      "(default: $GTO_API_KEY; none when unset). /, /health and /metrics stay public.",
  },
  {
    flag: "served-model-name",
    key: "servedModelName",
    kind: "string",
    arg: "N",
    help: "Model id(s) clients must send, comma-separated (default: the model directory's name). The " +
      "first is reported in responses.",
  },
  {
    flag: "max-context",
    key: "maxContext",
    kind: "int",
    arg: "N",
    min: 2,
    help: "Most prompt + new tokens per request (default: the engine's, from the model).",
  },
  {
    flag: "max-queue",
    key: "maxQueue",
    kind: "int",
    arg: "N",
    min: 0,
    help: "Most requests waiting for the GPU; more get 503 + Retry-After (default 8).",
  },
  {
    flag: "queue-timeout",
    key: "queueTimeout",
    kind: "num",
    arg: "S",
    gt: 0,
    help: "Seconds a request may wait in the queue before a 503 (default 60).",
  },
  {
    flag: "max-body",
    key: "maxBody",
    kind: "string",
    arg: "BYTES",
    help: "Largest request body; larger gets 413 (default 1048576; k/m suffixes work).",
  },
  {
    flag: "max-tokens-default",
    key: "maxTokensDefault",
    kind: "int",
    arg: "N",
    min: 1,
    help: "Chat max tokens when a request sets none, capped by the remaining context (default 512). " +
      "/v1/completions defaults to 16 as in OpenAI's API.",
  },
  WEIGHT_DTYPE_FLAG,
];

/** `--help` text (every flag). */
export const HELP: string = helpText(FLAGS, {
  usage: "deno task serve [options]",
  description:
    `OpenAI-compatible HTTP server (chat completions, completions, models, tokenize, metrics) with tree
speculative decoding, and a playground at / that shows each cycle's draft tree.`,
  footer: `Example:
  deno task serve --port 8000 --api-key sk-local
  curl http://127.0.0.1:8000/v1/chat/completions -H "Authorization: Bearer sk-local" \\
    -H "Content-Type: application/json" -d '{"model":"tiny","messages":[{"role":"user","content":"Hi"}]}'`,
});

function bytes(v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const m = /^\s*(\d+)\s*([kKmM]?)i?[bB]?\s*$/.exec(v);
  if (!m) throw new FlagError(`--max-body ${JSON.stringify(v)}: expected bytes, e.g. 1048576, 512k or 4m`);
  const n = Number(m[1]) * ({ "": 1, k: 1024, m: 1 << 20 } as Record<string, number>)[m[2].toLowerCase()];
  if (!Number.isSafeInteger(n) || n < 64) {
    throw new FlagError(`--max-body ${JSON.stringify(v)}: expected at least 64 bytes`);
  }
  return n;
}

/** Is `host` a loopback address? */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Parse argv. Resolves to "help" for `--help`; rejects with a one-line FlagError naming the flag.
 * `env` supplies `GTO_API_KEY`; `exists` says whether a directory exists (for the default draft).
 */
export async function parseServeArgs(
  argv: string[],
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  exists: (dir: string) => boolean = dirExists,
): Promise<ServeConfig | "help"> {
  const parsed = await parseFlags<ServeFlags>(FLAGS, argv);
  if (parsed.help) return "help";
  const v = parsed.given;
  if (v.draft !== undefined && v.noDraft) throw new FlagError("give --draft DIR or --no-draft, not both");
  const model = v.model ?? DEFAULT_MODEL;
  const draft = v.noDraft
    ? null
    : v.draft ?? (model === DEFAULT_MODEL ? (exists(DEFAULT_DRAFT) ? DEFAULT_DRAFT : null) : undefined);
  if (v.tree !== undefined && v.tree !== "auto" && draft === null) {
    throw new FlagError("--tree needs a draft (--draft DIR)");
  }
  let apiKey = v.apiKey;
  if (apiKey !== undefined && apiKey.trim() === "") throw new FlagError("--api-key must not be blank");
  if (apiKey === undefined) {
    apiKey = env("GTO_API_KEY");
    if (apiKey !== undefined && apiKey.trim() === "") {
      throw new FlagError("GTO_API_KEY is set but blank (unset it for no key, or use --api-key KEY)");
    }
  }
  const names = (v.servedModelName ?? "").split(",").map((s) => s.trim()).filter((s) => s);
  if (v.servedModelName !== undefined && names.length === 0) {
    throw new FlagError("--served-model-name: expected one or more comma-separated names");
  }
  return {
    model,
    draft,
    tree: v.tree ?? null,
    host: v.host ?? "127.0.0.1",
    port: v.port ?? 8000,
    apiKey,
    servedModelNames: names,
    maxContext: v.maxContext,
    maxQueue: v.maxQueue ?? 8,
    queueTimeout: v.queueTimeout ?? 60,
    maxBody: bytes(v.maxBody, 1 << 20),
    maxTokensDefault: v.maxTokensDefault ?? 512,
    weightDtype: v.weightDtype ?? "auto",
  };
}

function dirExists(dir: string): boolean {
  try {
    return Deno.statSync(dir).isDirectory;
  } catch {
    return false;
  }
}
