/**
 * Loaders for the three evaluation sets of the acceptance benchmark (`benchmarks/accept.ts`), in the
 * exact formats of `shared/data/eval` (see shared/data/MANIFEST.md):
 *
 * - MT-Bench `mt_bench/question.jsonl`: one `{question_id, category, turns: [str, str]}` a line.
 * - HumanEval `humaneval/HumanEval.jsonl.gz`: gzip of `{task_id, prompt, ...}` lines, gunzipped with
 *   the runtime's `DecompressionStream("gzip")`.
 * - GSM8K `gsm8k/test.jsonl`: `{question, answer}` lines.
 *
 * Each loader returns the first `n` items in file order (deterministic; all of them when the file
 * has fewer) and fails with an {@link EvalDataError} whose one-line message names the file and, for
 * content errors, the line: missing file, unreadable or corrupt gzip, a line that is not JSON, a
 * missing / mistyped field, or a file without any item. Blank lines are skipped.
 * @module
 */

/** A missing or malformed evaluation file; the message is one line naming the file (and line). */
export class EvalDataError extends Error {
  /** The file at fault. */
  readonly file: string;
  /** Build the error; `line` (1-based) is prefixed to the message when given. */
  constructor(file: string, message: string, line?: number, options?: ErrorOptions) {
    super(`${file}${line !== undefined ? `:${line}` : ""}: ${message}`, options);
    this.name = "EvalDataError";
    this.file = file;
  }
}

/** One MT-Bench question: two user turns. */
export interface MtBenchQuestion {
  /** `question_id` (81..160 in the official file). */
  id: number;
  /** `category` (writing, roleplay, reasoning, math, coding, extraction, stem, humanities). */
  category: string;
  /** The user turns, in order (the official file has exactly two). */
  turns: string[];
}

/** One HumanEval task. */
export interface HumanEvalTask {
  /** `task_id`, e.g. `HumanEval/0`. */
  id: string;
  /** `prompt`: the function signature and docstring to complete. */
  prompt: string;
}

/** One GSM8K test problem. */
export interface Gsm8kProblem {
  /** 0-based index of the problem in the file. */
  id: number;
  /** `question`: the word problem. */
  question: string;
}

/** Benchmark names, as used on the command line. */
export type BenchName = "mt_bench" | "humaneval" | "gsm8k";

/** Every benchmark, in the order the harness runs and reports them. */
export const BENCH_NAMES: readonly BenchName[] = ["mt_bench", "humaneval", "gsm8k"];

/** File of each benchmark, relative to the eval directory. */
export const EVAL_FILES: Readonly<Record<BenchName, string>> = {
  mt_bench: "mt_bench/question.jsonl",
  humaneval: "humaneval/HumanEval.jsonl.gz",
  gsm8k: "gsm8k/test.jsonl",
};

function errText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

async function readBytes(file: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new EvalDataError(file, "file not found (see shared/data/MANIFEST.md for the eval files)");
    }
    if (e instanceof Deno.errors.IsADirectory) throw new EvalDataError(file, "is a directory, not a file");
    throw new EvalDataError(file, `cannot read: ${errText(e)}`, undefined, { cause: e });
  }
}

/** Gunzip `bytes` (read from `file`, named in errors) with the runtime's DecompressionStream. */
export async function gunzip(file: string, bytes: Uint8Array): Promise<Uint8Array> {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
    throw new EvalDataError(file, "not a gzip file (missing the 1f 8b magic bytes)");
  }
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new DecompressionStream("gzip"),
    );
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new EvalDataError(file, `corrupt gzip data: ${errText(e)}`, undefined, { cause: e });
  }
}

/**
 * Parse the JSON-lines text of `file` and return the objects of the first `n` non-blank lines with
 * their 1-based line numbers. Lines after the n-th item are not parsed.
 */
export function parseJsonLines(
  file: string,
  text: string,
  n: number,
): { line: number; value: Record<string, unknown> }[] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`n=${n}: expected an integer ≥ 1`);
  const out: { line: number; value: Record<string, unknown> }[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length && out.length < n; i++) {
    const src = lines[i].trim();
    if (src === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(src);
    } catch (e) {
      throw new EvalDataError(file, `not valid JSON (${errText(e)})`, i + 1, { cause: e });
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new EvalDataError(file, "expected one JSON object per line", i + 1);
    }
    out.push({ line: i + 1, value: value as Record<string, unknown> });
  }
  if (out.length === 0) throw new EvalDataError(file, "contains no items (empty file?)");
  return out;
}

function decodeText(file: string, bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    throw new EvalDataError(file, "is not UTF-8 text", undefined, { cause: e });
  }
}

function stringField(file: string, line: number, obj: Record<string, unknown>, key: string): string {
  const v = obj[key];
  if (typeof v !== "string") {
    throw new EvalDataError(
      file,
      `field "${key}" ${
        v === undefined ? "is missing" : `is ${JSON.stringify(v)?.slice(0, 40)}`
      }; expected a string`,
      line,
    );
  }
  return v;
}

/** The first `n` MT-Bench questions of `file` (question.jsonl). */
export async function loadMtBench(file: string, n: number): Promise<MtBenchQuestion[]> {
  const rows = parseJsonLines(file, decodeText(file, await readBytes(file)), n);
  return rows.map(({ line, value }) => {
    const id = value.question_id;
    if (typeof id !== "number" || !Number.isInteger(id)) {
      throw new EvalDataError(
        file,
        `field "question_id" is ${JSON.stringify(id)}; expected an integer`,
        line,
      );
    }
    const turns = value.turns;
    if (
      !Array.isArray(turns) || turns.length === 0 || !turns.every((t) => typeof t === "string" && t !== "")
    ) {
      throw new EvalDataError(file, `field "turns" must be a non-empty array of non-empty strings`, line);
    }
    const category = typeof value.category === "string" ? value.category : "";
    return { id, category, turns: turns as string[] };
  });
}

/** The first `n` HumanEval tasks of `file` (HumanEval.jsonl.gz, gzip-compressed JSON lines). */
export async function loadHumanEval(file: string, n: number): Promise<HumanEvalTask[]> {
  const text = decodeText(file, await gunzip(file, await readBytes(file)));
  return parseJsonLines(file, text, n).map(({ line, value }) => ({
    id: stringField(file, line, value, "task_id"),
    prompt: stringField(file, line, value, "prompt"),
  }));
}

/** The first `n` GSM8K problems of `file` (test.jsonl). */
export async function loadGsm8k(file: string, n: number): Promise<Gsm8kProblem[]> {
  const rows = parseJsonLines(file, decodeText(file, await readBytes(file)), n);
  return rows.map(({ line, value }, i) => ({ id: i, question: stringField(file, line, value, "question") }));
}
