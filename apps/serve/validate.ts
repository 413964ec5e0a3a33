/**
 * Request-body validation for `/v1/chat/completions`, `/v1/completions` and the playground: turns an
 * untrusted JSON value into a typed request or throws an `ApiError` 400 naming the field, with OpenAI's
 * wording where OpenAI has one ("Invalid type for 'n': expected an integer, but got a string
 * instead.", "2.5 is greater than the maximum of 2 - 'temperature'"). Features this server does not
 * implement (n > 1, tools, JSON response formats, penalties, logprobs, echo/suffix/best_of) are 400
 * `unsupported_value`, never silently ignored and never 501 (clients retry 5xx). Unknown keys are
 * ignored (lenient like vLLM and llama.cpp) and reported through `onUnknownKey`.
 *
 * Pure functions, no engine: the model check, tokenization and the context check happen in the routes.
 * @module
 */
import { badRequest } from "./errors.ts";
import type { ChatMessage } from "./types.ts";

/** Sampling and stopping options shared by both endpoints. */
export interface SamplingParams {
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus mass in (0, 1]. */
  topP: number;
  /** 0 = off. */
  topK: number;
  /** u32 seed (the request's int64 reduced mod 2^32), or undefined. */
  seed?: number;
  /** Stop strings (≤ 4, non-empty). */
  stop: string[];
  /** Extra stop token ids (extension). */
  stopTokenIds: number[];
}

/** Fields common to both endpoints after validation. */
export interface BaseRequest {
  /** The requested model id (checked against the served names by the route). */
  model: string;
  /** Explicit max new tokens, or undefined for the endpoint default. */
  maxTokens?: number;
  /** Server-sent events? */
  stream: boolean;
  /** `stream_options.include_usage`. */
  includeUsage: boolean;
  /** Sampling and stopping. */
  sampling: SamplingParams;
  /** vLLM's `return_token_ids` extension: add the output token ids to the (non-stream) choice. */
  returnTokenIds: boolean;
}

/** A validated chat request. */
export interface ChatRequest extends BaseRequest {
  /** Messages, `developer` mapped to `system`, content parts joined. */
  messages: ChatMessage[];
}

/** A validated completions request. */
export interface CompletionRequest extends BaseRequest {
  /** Prompt text or token ids. */
  prompt: string | number[];
}

/** Called once per unknown top-level key (for a log line). */
export type UnknownKeyHook = (key: string) => void;

type Obj = Record<string, unknown>;

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  switch (typeof v) {
    case "string":
      return "a string";
    case "number":
      return Number.isInteger(v) ? "an integer" : "a number";
    case "boolean":
      return "a boolean";
    case "object":
      return "an object";
    default:
      return typeof v;
  }
}

function wrongType(param: string, expected: string, v: unknown): never {
  throw badRequest(
    `Invalid type for '${param}': expected ${expected}, but got ${typeName(v)} instead.`,
    param,
    "invalid_type",
  );
}

function unsupported(message: string, param: string): never {
  throw badRequest(message, param, "unsupported_value");
}

/** `body` must be a JSON object. */
export function requireObject(body: unknown): Obj {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest(`The request body must be a JSON object, got ${typeName(body)}.`, null);
  }
  return body as Obj;
}

function isAbsent(v: unknown): boolean {
  return v === undefined || v === null;
}

function optNumber(o: Obj, key: string, min: number, max: number, def: number, minExclusive = false): number {
  const v = o[key];
  if (isAbsent(v)) return def;
  if (typeof v !== "number" || !Number.isFinite(v)) wrongType(key, "a number", v);
  if (minExclusive ? v <= min : v < min) {
    throw badRequest(
      `${v} is ${minExclusive ? "less than or equal to" : "less than"} the minimum of ${min} - '${key}'`,
      key,
      "invalid_value",
    );
  }
  if (v > max) {
    throw badRequest(`${v} is greater than the maximum of ${max} - '${key}'`, key, "invalid_value");
  }
  return v;
}

function optInt(o: Obj, key: string, min: number): number | undefined {
  const v = o[key];
  if (isAbsent(v)) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) wrongType(key, "an integer", v);
  if (v < min) throw badRequest(`${v} is less than the minimum of ${min} - '${key}'`, key, "invalid_value");
  return v;
}

function optBool(o: Obj, key: string): boolean | undefined {
  const v = o[key];
  if (isAbsent(v)) return undefined;
  if (typeof v !== "boolean") wrongType(key, "a boolean", v);
  return v;
}

function requireModel(o: Obj): string {
  const v = o.model;
  if (v === undefined) {
    throw badRequest("you must provide a model parameter", "model", "missing_required_parameter");
  }
  if (typeof v !== "string") wrongType("model", "a string", v);
  return v;
}

/** `stop`: a string or up to 4 non-empty strings. */
function parseStop(o: Obj): string[] {
  const v = o.stop;
  if (isAbsent(v)) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list)) wrongType("stop", "a string or an array of strings", v);
  if (list.length > 4) {
    throw badRequest(`'stop' has ${list.length} entries; at most 4 are allowed.`, "stop", "invalid_value");
  }
  return list.map((s, i) => {
    if (typeof s !== "string") wrongType(`stop[${i}]`, "a string", s);
    if (s.length === 0) throw badRequest("'stop' strings must not be empty.", "stop", "invalid_value");
    return s;
  });
}

function parseStopTokenIds(o: Obj): number[] {
  const v = o.stop_token_ids;
  if (isAbsent(v)) return [];
  if (!Array.isArray(v)) wrongType("stop_token_ids", "an array of integers", v);
  if (v.length > 8) {
    throw badRequest(`'stop_token_ids' has ${v.length} entries; at most 8 are allowed.`, "stop_token_ids");
  }
  return v.map((x, i) => {
    if (typeof x !== "number" || !Number.isInteger(x) || x < 0 || x >= 2 ** 31) {
      wrongType(`stop_token_ids[${i}]`, "a non-negative integer", x);
    }
    return x;
  });
}

function parseSampling(o: Obj): SamplingParams {
  const temperature = optNumber(o, "temperature", 0, 2, 1);
  const topP = optNumber(o, "top_p", 0, 1, 1, true);
  let topK = optInt(o, "top_k", -1) ?? 0;
  if (topK === -1) topK = 0; // vLLM's "disabled"
  const seedV = o.seed;
  let seed: number | undefined;
  if (!isAbsent(seedV)) {
    if (typeof seedV !== "number" || !Number.isInteger(seedV)) wrongType("seed", "an integer", seedV);
    seed = Number(BigInt.asUintN(32, BigInt(seedV)));
  }
  return { temperature, topP, topK, seed, stop: parseStop(o), stopTokenIds: parseStopTokenIds(o) };
}

/** Checks shared by both endpoints: n, stream, stream_options, penalties, logit_bias. */
function parseCommon(o: Obj, maxTokensKeys: string[]): Omit<BaseRequest, "model" | "sampling"> {
  const returnTokenIds = optBool(o, "return_token_ids") ?? false;
  const n = optInt(o, "n", 1);
  if (n !== undefined && n !== 1) {
    unsupported(`n = ${n} is not supported; this server returns one choice (n = 1).`, "n");
  }
  const stream = optBool(o, "stream") ?? false;
  const so = o.stream_options;
  let includeUsage = false;
  if (!isAbsent(so)) {
    if (typeof so !== "object" || Array.isArray(so)) wrongType("stream_options", "an object", so);
    if (!stream) {
      throw badRequest(
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "stream_options",
        "invalid_value",
      );
    }
    includeUsage = optBool(so as Obj, "include_usage") ?? false;
  }
  for (const key of ["frequency_penalty", "presence_penalty"]) {
    const v = optNumber(o, key, -2, 2, 0);
    if (v !== 0) unsupported(`${key} = ${v} is not supported by this server (only 0).`, key);
  }
  const rp = optNumber(o, "repetition_penalty", 0, Number.MAX_VALUE, 1, true);
  if (rp !== 1) {
    unsupported(`repetition_penalty = ${rp} is not supported by this server (only 1).`, "repetition_penalty");
  }
  const lb = o.logit_bias;
  if (!isAbsent(lb)) {
    if (typeof lb !== "object" || Array.isArray(lb)) wrongType("logit_bias", "an object", lb);
    if (Object.keys(lb as Obj).length > 0) {
      unsupported("logit_bias is not supported by this server.", "logit_bias");
    }
  }
  let maxTokens: number | undefined;
  for (const key of maxTokensKeys) {
    const v = optInt(o, key, 1);
    if (v !== undefined && maxTokens === undefined) maxTokens = v;
  }
  return { maxTokens, stream, includeUsage, returnTokenIds };
}

/** The text of one message's `content` (string, or text parts joined). */
function messageContent(v: unknown, i: number, role: string): string {
  const param = `messages[${i}].content`;
  if (isAbsent(v)) {
    if (role === "assistant") return "";
    throw badRequest(`All non-assistant messages must contain 'content' (${param}).`, param, "invalid_value");
  }
  if (typeof v === "string") return v;
  if (!Array.isArray(v)) wrongType(param, "a string or an array of content parts", v);
  let text = "";
  v.forEach((part, j) => {
    const p = `${param}[${j}]`;
    if (part === null || typeof part !== "object" || Array.isArray(part)) wrongType(p, "an object", part);
    const type = (part as Obj).type;
    if (type !== "text") {
      unsupported(`Content part type ${JSON.stringify(type)} is not supported; only "text".`, `${p}.type`);
    }
    const t = (part as Obj).text;
    if (typeof t !== "string") wrongType(`${p}.text`, "a string", t);
    text += t;
  });
  return text;
}

function parseMessages(o: Obj): ChatMessage[] {
  const v = o.messages;
  if (v === undefined) {
    throw badRequest("Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
  }
  if (!Array.isArray(v)) wrongType("messages", "an array", v);
  if (v.length === 0) throw badRequest("'messages' must not be empty.", "messages", "invalid_value");
  return v.map((m, i) => {
    if (m === null || typeof m !== "object" || Array.isArray(m)) wrongType(`messages[${i}]`, "an object", m);
    const mo = m as Obj;
    const role = mo.role;
    if (typeof role !== "string") wrongType(`messages[${i}].role`, "a string", role);
    if (role === "tool" || role === "function") {
      unsupported(`Role '${role}' is not supported: this server has no tool calling.`, `messages[${i}].role`);
    }
    if (role !== "system" && role !== "developer" && role !== "user" && role !== "assistant") {
      throw badRequest(
        `Invalid value: '${role}'. Supported values are: 'system', 'developer', 'user' and 'assistant'.`,
        `messages[${i}].role`,
        "invalid_value",
      );
    }
    if (!isAbsent(mo.tool_calls) && !(Array.isArray(mo.tool_calls) && mo.tool_calls.length === 0)) {
      unsupported("tool_calls are not supported by this server.", `messages[${i}].tool_calls`);
    }
    return { role: role === "developer" ? "system" : role, content: messageContent(mo.content, i, role) };
  });
}

const CHAT_KEYS = new Set([
  "model",
  "messages",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "top_k",
  "seed",
  "stop",
  "stop_token_ids",
  "n",
  "stream",
  "stream_options",
  "frequency_penalty",
  "presence_penalty",
  "repetition_penalty",
  "logit_bias",
  "logprobs",
  "top_logprobs",
  "response_format",
  "tools",
  "tool_choice",
  "functions",
  "function_call",
  "parallel_tool_calls",
  "user",
  "metadata",
  "store",
  "service_tier",
  "return_token_ids",
]);

/** Validate a `/v1/chat/completions` body. */
export function parseChatRequest(body: unknown, onUnknownKey?: UnknownKeyHook): ChatRequest {
  const o = requireObject(body);
  const model = requireModel(o);
  const messages = parseMessages(o);
  const lp = optBool(o, "logprobs");
  const tlp = optInt(o, "top_logprobs", 0);
  if (tlp !== undefined && !lp) {
    throw badRequest(
      "when using `top_logprobs`, `logprobs` must be set to true.",
      "top_logprobs",
      "invalid_value",
    );
  }
  if (lp) unsupported("logprobs are not supported by this server yet.", "logprobs");
  const rf = o.response_format;
  if (!isAbsent(rf)) {
    if (typeof rf !== "object" || Array.isArray(rf)) wrongType("response_format", "an object", rf);
    const t = (rf as Obj).type;
    if (t !== "text") {
      unsupported(
        `response_format type ${JSON.stringify(t)} is not supported by this server.`,
        "response_format",
      );
    }
  }
  const tools = o.tools;
  if (!isAbsent(tools)) {
    if (!Array.isArray(tools)) wrongType("tools", "an array", tools);
    if (tools.length > 0) unsupported("tools are not supported by this server.", "tools");
  }
  const tc = o.tool_choice;
  if (!isAbsent(tc) && tc !== "none") unsupported('tool_choice must be absent or "none".', "tool_choice");
  if (!isAbsent(o.functions)) unsupported("functions are not supported by this server.", "functions");
  if (!isAbsent(o.function_call)) {
    unsupported("function_call is not supported by this server.", "function_call");
  }
  const common = parseCommon(o, ["max_completion_tokens", "max_tokens"]);
  const sampling = parseSampling(o);
  if (onUnknownKey) { for (const k of Object.keys(o)) if (!CHAT_KEYS.has(k)) onUnknownKey(k); }
  return { model, messages, sampling, ...common };
}

const COMPLETION_KEYS = new Set([
  ...CHAT_KEYS,
  "prompt",
  "echo",
  "suffix",
  "best_of",
]);

function parsePrompt(o: Obj): string | number[] {
  const v = o.prompt;
  if (v === undefined) {
    throw badRequest("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
  }
  if (typeof v === "string") return v;
  if (!Array.isArray(v)) wrongType("prompt", "a string or an array", v);
  if (v.length === 0) throw badRequest("'prompt' must not be empty.", "prompt", "invalid_value");
  const isIds = (a: unknown[]): boolean =>
    a.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0 && x < 2 ** 31);
  if (typeof v[0] === "number") {
    if (!isIds(v)) {
      wrongType(
        "prompt",
        "an array of non-negative integer token ids",
        v.find((x) => typeof x !== "number"),
      );
    }
    return v as number[];
  }
  if (v.length > 1) {
    unsupported(
      `${v.length} prompts in one request are not supported; send one prompt per request.`,
      "prompt",
    );
  }
  const one = v[0];
  if (typeof one === "string") return one;
  if (Array.isArray(one)) {
    if (one.length === 0) throw badRequest("'prompt' must not be empty.", "prompt", "invalid_value");
    if (!isIds(one)) wrongType("prompt[0]", "an array of non-negative integer token ids", one);
    return one as number[];
  }
  wrongType("prompt[0]", "a string or an array of token ids", one);
}

/** Validate a `/v1/completions` body. */
export function parseCompletionRequest(body: unknown, onUnknownKey?: UnknownKeyHook): CompletionRequest {
  const o = requireObject(body);
  const model = requireModel(o);
  const prompt = parsePrompt(o);
  if (optBool(o, "echo")) unsupported("echo is not supported by this server.", "echo");
  if (!isAbsent(o.suffix)) {
    if (typeof o.suffix !== "string") wrongType("suffix", "a string", o.suffix);
    if (o.suffix !== "") unsupported("suffix is not supported by this server.", "suffix");
  }
  const bestOf = optInt(o, "best_of", 1);
  if (bestOf !== undefined && bestOf !== 1) {
    unsupported(`best_of = ${bestOf} is not supported (only 1).`, "best_of");
  }
  const lp = o.logprobs;
  if (!isAbsent(lp)) {
    if (typeof lp !== "number" || !Number.isInteger(lp)) wrongType("logprobs", "an integer", lp);
    unsupported("logprobs are not supported by this server yet.", "logprobs");
  }
  const common = parseCommon(o, ["max_tokens"]);
  const sampling = parseSampling(o);
  if (onUnknownKey) { for (const k of Object.keys(o)) if (!COMPLETION_KEYS.has(k)) onUnknownKey(k); }
  return { model, prompt, sampling, ...common };
}
