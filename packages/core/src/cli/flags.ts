/**
 * One table-driven flags module for every CLI (`generate`, `train`, `bench`, `bench:accept`, the
 * server). A table of {@link FlagSpec} rows drives the command line (`node:util` `parseArgs`), an
 * optional `--config FILE` JSON (keys are the flag names without `--`), the `--help` text and
 * validation, so the four can never disagree. Precedence: defaults < config file < flags. Every
 * problem is a {@link FlagError} whose message is one line naming the flag, or the file and key.
 *
 * Negative numbers: `parseArgs` reads `--temperature -1` as two options and rejects it as
 * ambiguous; {@link joinNegativeValues} turns it into `--temperature=-1` first, so the value reaches
 * the range check and its message.
 * @module
 */
import { parseArgs } from "node:util";

/** A bad flag, config file or config key; the message is one line and names the culprit. */
export class FlagError extends Error {
  /** Create the error (newlines in `message` are folded into spaces). */
  constructor(message: string) {
    super(message.replace(/\s*\n\s*/g, " "));
    this.name = "FlagError";
  }
}

/**
 * How a flag's value is read:
 * - `int`, `num`: a number within `min` / `gt` / `max`;
 * - `string`: a non-empty string (`multiple`: the flag may repeat, giving an array);
 * - `bool`: a switch (true when given; in a config file true or false);
 * - `enum`: one of `choices`;
 * - `list`: a comma-separated list (an array in a config file) of distinct `choices`;
 * - `numList`: a comma-separated list of numbers within the bounds;
 * - `tree`: `TOTAL,DEPTH,TOPK`, three integers ≥ 1 → `{ totalTokens, depth, topK }`;
 * - `treeAuto`: the same (depth may be 0), or `auto` (the engine's cost-aware tree) → `"auto"`.
 */
export type FlagKind = "int" | "num" | "string" | "bool" | "enum" | "list" | "numList" | "tree" | "treeAuto";

/** One row of a flag table. */
export interface FlagSpec<K extends string = string> {
  /** The flag without `--` (`max-tokens`); also the config-file key. */
  flag: string;
  /** The settings field it sets (`maxTokens`). */
  key: K;
  /** How the value is read. */
  kind: FlagKind;
  /** Placeholder in --help (`N`, `DIR`). */
  arg?: string;
  /** One or more sentences for --help. */
  help: string;
  /** A one-letter alias. */
  short?: string;
  /** Inclusive lower bound (numbers). */
  min?: number;
  /** Exclusive lower bound (numbers). */
  gt?: number;
  /** Inclusive upper bound (numbers). */
  max?: number;
  /** Allowed values (`enum`, `list`). */
  choices?: readonly string[];
  /** May be null in a config file (the default is computed later). */
  nullable?: boolean;
  /** Not allowed in config files. */
  cliOnly?: boolean;
  /** `string` only: the flag may be given several times (the value is an array). */
  multiple?: boolean;
}

/** `--weight-dtype`, shared by the apps and benchmarks that load a target (`Engine`'s `weightDtype`). */
export const WEIGHT_DTYPE_FLAG: FlagSpec<"weightDtype"> = {
  flag: "weight-dtype",
  key: "weightDtype",
  kind: "enum",
  arg: "D",
  choices: ["auto", "f32", "f16"],
  help: "auto | f32 | f16: GPU storage of the weight matrices (default auto: f16 for f16/bf16 checkpoints " +
    "on a hardware adapter with shader-f16, else f32).",
};

/** What {@link parseFlags} returns. */
export interface ParsedFlags<T> {
  /** Whether `--help` / `-h` was given. */
  help: boolean;
  /** Settings given explicitly (config file, then flags on top), by field. */
  given: Partial<T>;
  /** Fields set by a flag or the config file. */
  explicit: Set<keyof T>;
}

function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `array ${JSON.stringify(v).slice(0, 40)}`;
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

function bounds(f: FlagSpec): string {
  const lo = f.gt !== undefined ? `> ${f.gt}` : `≥ ${f.min ?? 0}`;
  if (f.max === undefined) return lo;
  return f.gt !== undefined ? `in (${f.gt}, ${f.max}]` : `in [${f.min ?? 0}, ${f.max}]`;
}

/** What a flag expects, for error messages ("an integer ≥ 1", "one of auto, f32, f16"). */
export function expectation(f: FlagSpec): string {
  switch (f.kind) {
    case "int":
      return `an integer ${bounds(f)}`;
    case "num":
      return `a number ${bounds(f)}`;
    case "string":
      return "a non-empty string";
    case "bool":
      return "true or false";
    case "enum":
      return `one of ${(f.choices ?? []).join(", ")}`;
    case "list":
      return `a comma-separated list (or array) of ${(f.choices ?? []).join(", ")}`;
    case "numList":
      return `a comma-separated list (or array) of numbers ${bounds(f)}`;
    case "tree":
      return "TOTAL,DEPTH,TOPK: three integers ≥ 1 (string or array)";
    case "treeAuto":
      return "auto, or TOTAL,DEPTH,TOPK: integers ≥ 1 (depth ≥ 0), TOTAL − 1 ≤ TOPK + DEPTH·TOPK² (string or array)";
  }
}

function inBounds(f: FlagSpec, x: number): boolean {
  if (!Number.isFinite(x)) return false;
  if (f.min !== undefined && x < f.min) return false;
  if (f.gt !== undefined && !(x > f.gt)) return false;
  if (f.max !== undefined && x > f.max) return false;
  return true;
}

/** Convert a raw value (a flag string, or a JSON value from a config file); undefined if invalid. */
export function convertFlag(f: FlagSpec, raw: unknown, fromCli: boolean): unknown {
  if (raw === null && f.nullable && !fromCli) return null;
  switch (f.kind) {
    case "int":
    case "num": {
      let x: number;
      if (fromCli) {
        if (typeof raw !== "string" || raw.trim() === "") return undefined;
        x = Number(raw);
      } else {
        if (typeof raw !== "number") return undefined;
        x = raw;
      }
      if (f.kind === "int" && !Number.isSafeInteger(x)) return undefined;
      return inBounds(f, x) ? x : undefined;
    }
    case "string":
      if (f.multiple && Array.isArray(raw)) {
        return raw.length > 0 && raw.every((s) => typeof s === "string" && s !== "") ? raw : undefined;
      }
      if (f.multiple && typeof raw === "string" && raw !== "") return [raw];
      return typeof raw === "string" && raw !== "" ? raw : undefined;
    case "bool":
      return typeof raw === "boolean" ? raw : undefined;
    case "enum":
      return typeof raw === "string" && (f.choices ?? []).includes(raw) ? raw : undefined;
    case "list": {
      const list = typeof raw === "string" ? raw.split(",").map((s) => s.trim()) : raw;
      if (!Array.isArray(list) || list.length === 0) return undefined;
      if (!list.every((s) => typeof s === "string" && (f.choices ?? []).includes(s))) return undefined;
      if (new Set(list).size !== list.length) return undefined;
      return list;
    }
    case "numList": {
      const list = typeof raw === "string"
        ? raw.split(",").map((s) => s.trim() === "" ? NaN : Number(s))
        : raw;
      if (!Array.isArray(list) || list.length === 0) return undefined;
      return list.every((x) => typeof x === "number" && inBounds(f, x)) ? list : undefined;
    }
    case "treeAuto":
    case "tree": {
      if (f.kind === "treeAuto" && typeof raw === "string" && raw.trim() === "auto") return "auto";
      const list = typeof raw === "string"
        ? raw.split(",").map((s) => s.trim() === "" ? NaN : Number(s))
        : raw;
      if (!Array.isArray(list) || list.length !== 3) return undefined;
      // treeAuto also takes depth 0 (level 0 only: the root's k children), a shape the auto grid has.
      const low = (i: number) => (f.kind === "treeAuto" && i === 1 ? 0 : 1);
      if (!list.every((x, i) => typeof x === "number" && Number.isSafeInteger(x) && x >= low(i))) {
        return undefined;
      }
      // … but then the shape must be one the construction can fill: total − 1 ≤ k + depth·k².
      if (f.kind === "treeAuto" && list[0] - 1 > list[2] + list[1] * list[2] * list[2]) return undefined;
      return { totalTokens: list[0], depth: list[1], topK: list[2] };
    }
  }
}

/**
 * Parse a config file's text: a JSON object whose keys are flag names. Throws {@link FlagError}
 * naming `file` (and the key) on bad JSON, unknown keys and wrongly typed values.
 */
export function parseConfigText<T>(flags: readonly FlagSpec[], file: string, text: string): Partial<T> {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new FlagError(`${file}: not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new FlagError(`${file}: expected a JSON object of settings, got ${describeValue(obj)}`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, raw] of Object.entries(obj)) {
    const f = flags.find((g) => g.flag === k);
    if (!f || f.cliOnly) {
      const hint = flags.find((g) => g.key === k && !g.cliOnly);
      throw new FlagError(
        `${file}: unknown key "${k}"${
          hint ? ` (did you mean "${hint.flag}"?)` : ""
        }; keys are the flag names`,
      );
    }
    const v = convertFlag(f, raw, false);
    if (v === undefined) {
      throw new FlagError(`${file}: key "${k}" must be ${expectation(f)}, got ${describeValue(raw)}`);
    }
    out[f.key] = v;
  }
  return out as Partial<T>;
}

/** `--temperature -1` → `--temperature=-1` for the flags in `valueFlags` (see the module doc). */
export function joinNegativeValues(argv: readonly string[], valueFlags: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], next = argv[i + 1];
    if (
      a.startsWith("--") && valueFlags.has(a.slice(2)) && next !== undefined &&
      /^-(\d|\.\d|Infinity)/.test(next)
    ) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/**
 * Parse `argv` against `flags` (plus `--help`/`-h`, and `--config FILE` when `opts.config`).
 * Throws {@link FlagError} with a one-line message on an unknown flag, a stray argument, a bad
 * value, or a bad config file.
 */
export async function parseFlags<T>(
  flags: readonly FlagSpec[],
  argv: readonly string[],
  opts: { config?: boolean } = {},
): Promise<ParsedFlags<T>> {
  const options: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {
    help: { type: "boolean", short: "h" },
  };
  if (opts.config) options.config = { type: "string" };
  for (const f of flags) {
    options[f.flag] = {
      type: f.kind === "bool" ? "boolean" : "string",
      ...(f.short ? { short: f.short } : {}),
      ...(f.multiple ? { multiple: true } : {}),
    };
  }
  const valueFlags = new Set(Object.entries(options).filter(([, o]) => o.type === "string").map(([k]) => k));
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    values = parseArgs({
      args: joinNegativeValues(argv, valueFlags),
      options,
      strict: true,
      allowPositionals: false,
    })
      .values as Record<string, string | boolean | string[] | undefined>;
  } catch (e) {
    throw new FlagError(`${e instanceof Error ? e.message : String(e)} (see --help)`);
  }
  if (values.help) return { help: true, given: {}, explicit: new Set() };
  const given: Record<string, unknown> = {};
  if (typeof values.config === "string") {
    let text: string;
    try {
      text = await Deno.readTextFile(values.config);
    } catch (e) {
      throw new FlagError(`--config ${values.config}: cannot read: ${e instanceof Error ? e.message : e}`);
    }
    Object.assign(given, parseConfigText(flags, values.config, text));
  }
  for (const f of flags) {
    const raw = values[f.flag];
    if (raw === undefined) continue;
    const v = convertFlag(f, raw, true);
    if (v === undefined) {
      const shown = Array.isArray(raw) ? raw.find((r) => convertFlag(f, r, true) === undefined) ?? "" : raw;
      throw new FlagError(`--${f.flag} ${JSON.stringify(shown)}: expected ${expectation(f)}`);
    }
    given[f.key] = v;
  }
  return { help: false, given: given as Partial<T>, explicit: new Set(Object.keys(given) as (keyof T)[]) };
}

/** The `--help` text: usage line, description, one row per flag (+ extra rows), then a footer. */
export function helpText(
  flags: readonly FlagSpec[],
  text: { usage: string; description: string; extraRows?: [string, string][]; footer?: string },
): string {
  const rows: [string, string][] = flags.map((f) => [
    `${f.short ? `-${f.short}, ` : ""}--${f.flag}${f.arg ? ` ${f.arg}` : ""}`,
    f.help,
  ]);
  rows.push(...(text.extraRows ?? []), ["-h, --help", "Show this help."]);
  const w = Math.max(...rows.map((r) => r[0].length)) + 2;
  const indent = " ".repeat(w + 2);
  const wrap = (s: string) => {
    // Wrap help text at 110 columns, continuation lines aligned under the first.
    const words = s.split(" "), lines: string[] = [];
    let line = "";
    for (const word of words) {
      if (line && w + 2 + line.length + 1 + word.length > 110) {
        lines.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    lines.push(line);
    return lines.join(`\n${indent}`);
  };
  return `Usage: ${text.usage}

${text.description.trim()}

Options:
${rows.map(([a, b]) => `  ${a.padEnd(w)}${wrap(b)}`).join("\n")}
${text.footer ? `\n${text.footer.trim()}\n` : ""}`;
}

/** Print `error: <message>` as one line on stderr and exit 1 (scripts read the first stderr line). */
export function fail(message: string): never {
  console.error(`error: ${message.replace(/\s*\n\s*/g, " ")}`);
  Deno.exit(1);
}

/**
 * The whole command-line front of a script: parse `argv` against `flags`; on `--help` print `help`
 * and exit 0; on a bad flag print one `error:` line and exit 1 ({@link fail}); else return the given
 * settings (defaults are the caller's).
 */
export async function parseCommandLine<T>(
  flags: readonly FlagSpec[],
  argv: readonly string[],
  help: string,
): Promise<Partial<T>> {
  let parsed: ParsedFlags<T>;
  try {
    parsed = await parseFlags<T>(flags, argv);
  } catch (e) {
    if (e instanceof FlagError) fail(e.message);
    throw e;
  }
  if (parsed.help) {
    console.log(help);
    Deno.exit(0);
  }
  return parsed.given;
}
