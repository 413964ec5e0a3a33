/**
 * `deno task serve` flags → a validated configuration, kept apart from `main.ts` so the parsing and its
 * one-line errors are tested without loading a model. Defaults: 127.0.0.1:8000, the bundled
 * `models/tiny` target with `models/tiny-draft` when that directory exists (plain decoding otherwise).
 * @module
 */
import { parseArgs } from "node:util";

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
  /** Draft tree (null: the engine's default). */
  tree: { totalTokens: number; depth: number; topK: number } | null;
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

/** `--help` text (every flag). */
export const HELP = `Usage: deno task serve [options]

OpenAI-compatible HTTP server (chat completions, completions, models, tokenize, metrics) with tree
speculative decoding, and a playground at / that shows each cycle's draft tree.

Options:
  --model DIR              Target model directory (default: the bundled tiny model).
  --draft DIR              EAGLE-3 draft directory (default: models/tiny-draft when the target is the
                           bundled tiny model and that directory exists; else plain decoding).
  --no-draft               Plain decoding, no draft.
  --tree T,D,K             Draft tree: total verified tokens, depth, top-k per node (default: the
                           engine's, 60,7,10).
  --host HOST              Address to bind (default 127.0.0.1). A non-loopback address without
                           --api-key prints a warning.
  --port N                 Port (default 8000; 0 = any free port, printed in the ready line).
  --api-key KEY            Require "Authorization: Bearer KEY" on /v1/*, /tokenize, /detokenize and
                           /playground/generate (default: $GTO_API_KEY; none when unset). /, /health and
                           /metrics stay public.
  --served-model-name N    Model id(s) clients must send, comma-separated (default: the model
                           directory's name). The first is reported in responses.
  --max-context N          Most prompt + new tokens per request (default: the engine's, from the model).
  --max-queue N            Most requests waiting for the GPU; more get 503 + Retry-After (default 8).
  --queue-timeout S        Seconds a request may wait in the queue before a 503 (default 60).
  --max-body BYTES         Largest request body; larger gets 413 (default 1048576; k/m suffixes work).
  --max-tokens-default N   Chat max tokens when a request sets none, capped by the remaining context
                           (default 512). /v1/completions defaults to 16 as in OpenAI's API.
  --weight-dtype D         auto | f32 | f16: GPU storage of the weight matrices (default auto).
  -h, --help               Show this help.

Example:
  deno task serve --port 8000 --api-key sk-local
  curl http://127.0.0.1:8000/v1/chat/completions -H "Authorization: Bearer sk-local" \\
    -H "Content-Type: application/json" -d '{"model":"tiny","messages":[{"role":"user","content":"Hi"}]}'
`;

/** A bad flag: the message is one line naming the flag. */
export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

function int(
  name: string,
  v: string | undefined,
  def: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (v === undefined) return def;
  const x = Number(v);
  if (v.trim() === "" || !Number.isInteger(x) || x < min || x > max) {
    throw new FlagError(`--${name} ${JSON.stringify(v)}: expected an integer in [${min}, ${max}]`);
  }
  return x;
}

function bytes(v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const m = /^\s*(\d+)\s*([kKmM]?)i?[bB]?\s*$/.exec(v);
  if (!m) throw new FlagError(`--max-body ${JSON.stringify(v)}: expected bytes, e.g. 1048576, 512k or 4m`);
  const n = Number(m[1]) * ({ "": 1, k: 1024, m: 1 << 20 } as Record<string, number>)[m[2].toLowerCase()];
  if (n < 64) throw new FlagError(`--max-body ${JSON.stringify(v)}: must be at least 64 bytes`);
  return n;
}

/** Is `host` a loopback address? */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Parse argv. Returns "help" for `--help`; throws FlagError on a bad flag. `env` supplies
 * `GTO_API_KEY`; `exists` says whether a directory exists (for the default draft).
 */
export function parseServeArgs(
  argv: string[],
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  exists: (dir: string) => boolean = dirExists,
): ServeConfig | "help" {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        draft: { type: "string" },
        "no-draft": { type: "boolean" },
        tree: { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        "api-key": { type: "string" },
        "served-model-name": { type: "string" },
        "max-context": { type: "string" },
        "max-queue": { type: "string" },
        "queue-timeout": { type: "string" },
        "max-body": { type: "string" },
        "max-tokens-default": { type: "string" },
        "weight-dtype": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new FlagError(`${(e as Error).message.replace(/\s*\n\s*/g, " ")} (see --help)`);
  }
  if (v.help) return "help";
  if (v.draft !== undefined && v["no-draft"]) throw new FlagError("give --draft DIR or --no-draft, not both");
  const model = v.model ?? DEFAULT_MODEL;
  const draft = v["no-draft"]
    ? null
    : v.draft ?? (model === DEFAULT_MODEL ? (exists(DEFAULT_DRAFT) ? DEFAULT_DRAFT : null) : undefined);
  let tree: ServeConfig["tree"] = null;
  if (v.tree !== undefined) {
    if (draft === null) throw new FlagError("--tree needs a draft (--draft DIR)");
    const parts = v.tree.split(",").map((x) => Number(x.trim()));
    if (parts.length !== 3 || parts.some((x) => !Number.isInteger(x) || x < 1)) {
      throw new FlagError(
        `--tree ${JSON.stringify(v.tree)}: expected TOTAL,DEPTH,TOPK (three positive integers)`,
      );
    }
    tree = { totalTokens: parts[0], depth: parts[1], topK: parts[2] };
  }
  const wd = v["weight-dtype"] ?? "auto";
  if (wd !== "auto" && wd !== "f32" && wd !== "f16") {
    throw new FlagError(`--weight-dtype ${JSON.stringify(wd)}: expected auto, f32 or f16`);
  }
  const apiKey = v["api-key"] ?? env("GTO_API_KEY");
  if (apiKey !== undefined && apiKey.trim() === "") throw new FlagError("--api-key must not be empty");
  const names = (v["served-model-name"] ?? "").split(",").map((s) => s.trim()).filter((s) => s);
  if (v["served-model-name"] !== undefined && names.length === 0) {
    throw new FlagError("--served-model-name: expected one or more comma-separated names");
  }
  const qt = v["queue-timeout"];
  const queueTimeout = qt === undefined ? 60 : Number(qt);
  if (qt !== undefined && (qt.trim() === "" || !Number.isFinite(queueTimeout) || queueTimeout <= 0)) {
    throw new FlagError(`--queue-timeout ${JSON.stringify(qt)}: expected seconds > 0`);
  }
  return {
    model,
    draft,
    tree,
    host: v.host ?? "127.0.0.1",
    port: int("port", v.port, 8000, 0, 65535),
    apiKey,
    servedModelNames: names,
    maxContext: v["max-context"] === undefined ? undefined : int("max-context", v["max-context"], 0, 2),
    maxQueue: int("max-queue", v["max-queue"], 8, 0),
    queueTimeout,
    maxBody: bytes(v["max-body"], 1 << 20),
    maxTokensDefault: int("max-tokens-default", v["max-tokens-default"], 512, 1),
    weightDtype: wd,
  };
}

function dirExists(dir: string): boolean {
  try {
    return Deno.statSync(dir).isDirectory;
  } catch {
    return false;
  }
}
