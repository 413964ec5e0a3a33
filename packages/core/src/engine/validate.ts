/**
 * Input validation of the engine's public calls. Everything a caller (an HTTP client, through the
 * server) can get wrong is checked here, before any GPU work, and reported as one
 * {@link EngineInputError} naming the field, so a server can answer 400 with the field and the engine
 * stays usable (nothing has been touched when the error is thrown).
 * @module
 */
import type { ChatMessage } from "../io/chat.ts";
import type { CycleTrace } from "./decoding.ts";

/** Bad input to an `Engine` call; `field` names the option or argument at fault. */
export class EngineInputError extends Error {
  /** The field at fault: an option name (`maxTokens`), `messages[2].role`, `prompt`, ... */
  readonly field: string;
  /** Create the error; the message is `${field}: ${problem}` on one line. */
  constructor(field: string, problem: string) {
    super(`${field}: ${problem.replace(/\s*\n\s*/g, " ")}`);
    this.name = "EngineInputError";
    this.field = field;
  }
}

/** The options a generation call accepts (the `GenerateOptions` keys). */
export const OPTION_KEYS: readonly string[] = [
  "maxTokens",
  "temperature",
  "topP",
  "topK",
  "seed",
  "stop",
  "stopTokenIds",
  "signal",
  "onText",
  "onCycle",
  "speculative",
  "readEvery",
];

/** Most stop strings per call. */
export const MAX_STOP_STRINGS = 16;

/** Validated generation settings with defaults filled in. */
export interface CheckedOptions {
  /** Most new tokens. */
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus mass. */
  topP: number;
  /** Top-k (0 = off). */
  topK: number;
  /** u32 seed. */
  seed: number;
  /** Stop strings. */
  stop: string[];
  /** Extra stop ids. */
  stopTokenIds: number[];
  /** Abort signal. */
  signal?: AbortSignal;
  /** Text deltas. */
  onText?: (delta: string) => void;
  /** Cycle trace. */
  onCycle?: (c: CycleTrace) => void;
  /** Speculative (undefined: whenever a draft is loaded). */
  speculative?: boolean;
  /** Steps / cycles per readback. */
  readEvery?: number;
}

const isInt = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x);
const show = (v: unknown): string => {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v);
  if (typeof v === "number" || typeof v === "boolean" || v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return `a ${typeof v}`;
};

/** Check the options object of `chat` / `complete` (everything but the prompt length). */
export function checkOptions(opts: unknown, limits: { vocabSize: number }): CheckedOptions {
  if (typeof opts !== "object" || opts === null || Array.isArray(opts)) {
    throw new EngineInputError("options", `expected an object with maxTokens, got ${show(opts)}`);
  }
  const o = opts as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!OPTION_KEYS.includes(k)) {
      throw new EngineInputError(k, `unknown option (known: ${OPTION_KEYS.join(", ")})`);
    }
  }
  const num = (k: string, def: number, ok: (x: number) => boolean, what: string): number => {
    const v = o[k];
    if (v === undefined) return def;
    if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) {
      throw new EngineInputError(k, `expected ${what}, got ${show(v)}`);
    }
    return v;
  };
  if (o.maxTokens === undefined) throw new EngineInputError("maxTokens", "required (an integer ≥ 1)");
  const maxTokens = num("maxTokens", 0, (x) => isInt(x) && x >= 1, "an integer ≥ 1");
  const temperature = num("temperature", 0, (x) => x >= 0, "a number ≥ 0");
  const topP = num("topP", 1, (x) => x > 0 && x <= 1, "a number in (0, 1]");
  const topK = num("topK", 0, (x) => isInt(x) && x >= 0, "an integer ≥ 0");
  const seed = num("seed", 0, (x) => isInt(x) && x >= 0 && x <= 0xffffffff, "an integer in [0, 2^32)");
  const readEvery = o.readEvery === undefined
    ? undefined
    : num("readEvery", 0, (x) => isInt(x) && x >= 1 && x <= 1024, "an integer in [1, 1024]");

  let stop: string[] = [];
  if (o.stop !== undefined) {
    if (!Array.isArray(o.stop)) {
      throw new EngineInputError("stop", `expected an array of strings, got ${show(o.stop)}`);
    }
    if (o.stop.length > MAX_STOP_STRINGS) {
      throw new EngineInputError("stop", `${o.stop.length} stop strings; at most ${MAX_STOP_STRINGS}`);
    }
    o.stop.forEach((s, i) => {
      if (typeof s !== "string" || s.length === 0) {
        throw new EngineInputError(`stop[${i}]`, `expected a non-empty string, got ${show(s)}`);
      }
    });
    stop = [...o.stop];
  }
  let stopTokenIds: number[] = [];
  if (o.stopTokenIds !== undefined) {
    if (!Array.isArray(o.stopTokenIds)) {
      throw new EngineInputError(
        "stopTokenIds",
        `expected an array of token ids, got ${show(o.stopTokenIds)}`,
      );
    }
    o.stopTokenIds.forEach((id, i) => {
      if (!isInt(id) || id < 0 || id >= limits.vocabSize) {
        throw new EngineInputError(
          `stopTokenIds[${i}]`,
          `expected a token id in [0, ${limits.vocabSize}), got ${show(id)}`,
        );
      }
    });
    stopTokenIds = [...o.stopTokenIds];
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new EngineInputError("signal", `expected an AbortSignal, got ${show(o.signal)}`);
  }
  for (const k of ["onText", "onCycle"]) {
    if (o[k] !== undefined && typeof o[k] !== "function") {
      throw new EngineInputError(k, `expected a function, got ${show(o[k])}`);
    }
  }
  if (o.speculative !== undefined && typeof o.speculative !== "boolean") {
    throw new EngineInputError("speculative", `expected true or false, got ${show(o.speculative)}`);
  }
  return {
    maxTokens,
    temperature,
    topP,
    topK,
    seed,
    stop,
    stopTokenIds,
    signal: o.signal as AbortSignal | undefined,
    onText: o.onText as ((d: string) => void) | undefined,
    onCycle: o.onCycle as ((c: CycleTrace) => void) | undefined,
    speculative: o.speculative as boolean | undefined,
    readEvery,
  };
}

const ROLES = ["system", "user", "assistant"];

/** Check a chat message list (non-empty; each `{role, content}` with a known role and string content). */
export function checkMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages)) {
    throw new EngineInputError("messages", `expected an array of {role, content}, got ${show(messages)}`);
  }
  if (messages.length === 0) throw new EngineInputError("messages", "empty (at least one message needed)");
  return messages.map((m, i) => {
    if (typeof m !== "object" || m === null || Array.isArray(m)) {
      throw new EngineInputError(`messages[${i}]`, `expected {role, content}, got ${show(m)}`);
    }
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== "string" || !ROLES.includes(role)) {
      throw new EngineInputError(
        `messages[${i}].role`,
        `expected one of ${ROLES.join(", ")}, got ${show(role)}`,
      );
    }
    if (typeof content !== "string") {
      throw new EngineInputError(`messages[${i}].content`, `expected a string, got ${show(content)}`);
    }
    return { role: role as ChatMessage["role"], content };
  });
}

/** Check a raw prompt given as token ids (integers in [0, vocabSize)). */
export function checkPromptIds(ids: readonly unknown[], vocabSize: number): number[] {
  ids.forEach((id, i) => {
    if (!isInt(id) || id < 0 || id >= vocabSize) {
      throw new EngineInputError(`prompt[${i}]`, `expected a token id in [0, ${vocabSize}), got ${show(id)}`);
    }
  });
  return ids as number[];
}

/**
 * Check that `promptTokens` + `maxTokens` fit in `maxContext`. `promptField` names the prompt
 * (`messages` or `prompt`) for the errors that are the prompt's fault.
 */
export function checkContext(
  promptField: string,
  promptTokens: number,
  maxTokens: number,
  maxContext: number,
): void {
  if (promptTokens === 0) throw new EngineInputError(promptField, "encodes to zero tokens");
  if (promptTokens >= maxContext) {
    throw new EngineInputError(
      promptField,
      `${promptTokens} prompt tokens leave no room for new tokens in the context (${maxContext})`,
    );
  }
  if (promptTokens + maxTokens > maxContext) {
    throw new EngineInputError(
      "maxTokens",
      `${maxTokens} new + ${promptTokens} prompt tokens exceed the context (${maxContext}); at most ${
        maxContext - promptTokens
      } new tokens fit`,
    );
  }
}
