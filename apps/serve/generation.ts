/**
 * One admitted generation, shared by the chat, completions and playground routes: model and context
 * checks (400 with both numbers), admission through the queue (503), the engine call wired to the
 * client's abort signal, and the metrics when it ends. For streams, `started` settles when the engine
 * has produced its first text or finished or failed, so a route can still answer an engine-side input
 * error with a real 400 before it commits to an SSE 200. The queue slot is released when the engine
 * call settles (an aborted call ends within one readback batch), never when the client leaves.
 * @module
 */
import { ApiError, badRequest } from "./errors.ts";
import type { ServerContext } from "./context.ts";
import type { SamplingParams } from "./validate.ts";
import type { ChatMessage, CycleTrace, GenerateResult } from "./types.ts";

/** What to generate, after validation. */
export interface GenerationJob {
  /** Chat messages, or a raw prompt. */
  input: { messages: ChatMessage[] } | { prompt: string | number[] };
  /** Prompt length in tokens. */
  promptTokens: number;
  /** Max new tokens (already checked against the context). */
  maxTokens: number;
  /** Sampling and stopping. */
  sampling: SamplingParams;
  /** false: plain decoding for this request (the playground's baseline). */
  speculative?: boolean;
}

/** Check the model id (404) and that the engine is ready (503). */
export function checkModel(ctx: ServerContext, model: string | undefined): string {
  const names = ctx.modelNames();
  if (model !== undefined && !names.includes(model)) {
    throw new ApiError(404, `The model \`${model}\` does not exist.`, {
      type: "invalid_request_error",
      param: "model",
      code: "model_not_found",
    });
  }
  return names[0];
}

/**
 * Count the prompt, choose max tokens and check the context: prompt + max ≤ maxContext, else 400
 * `context_length_exceeded` with vLLM's wording plus llama.cpp's `n_prompt_tokens` / `n_ctx`.
 */
export function prepareJob(
  ctx: ServerContext,
  input: GenerationJob["input"],
  requested: number | undefined,
  defaultMax: number | "remaining",
  sampling: SamplingParams,
): GenerationJob {
  const engine = ctx.engine();
  const n = engine.info.maxContext;
  let promptTokens: number;
  try {
    promptTokens = "messages" in input
      ? engine.countChatTokens(input.messages)
      : typeof input.prompt === "string"
      ? engine.tokenize(input.prompt).length
      : input.prompt.length;
  } catch (e) {
    throw engineInputToApi(e) ?? e;
  }
  const param = "messages" in input ? "messages" : "prompt";
  if (promptTokens === 0) throw badRequest("The prompt is empty (0 tokens).", param, "invalid_value");
  const extra = { n_prompt_tokens: promptTokens, n_ctx: n };
  if (promptTokens >= n) {
    throw new ApiError(
      400,
      `This model's maximum context length is ${n} tokens. However, your request has ${promptTokens} input tokens. Please reduce the length of the input.`,
      { param, code: "context_length_exceeded", extra },
    );
  }
  let maxTokens: number;
  if (requested !== undefined) {
    if (promptTokens + requested > n) {
      throw new ApiError(
        400,
        `'max_tokens' or 'max_completion_tokens' is too large: ${requested}. This model's maximum context length is ${n} tokens and your request has ${promptTokens} input tokens (${requested} > ${n} - ${promptTokens}).`,
        { param: "max_tokens", code: "context_length_exceeded", extra },
      );
    }
    maxTokens = requested;
  } else if (defaultMax === "remaining") {
    maxTokens = Math.min(n - promptTokens, ctx.opts.maxTokensDefault);
  } else {
    maxTokens = Math.min(defaultMax, n - promptTokens);
  }
  return { input, promptTokens, maxTokens, sampling };
}

/** An `EngineInputError` (bad input found by the engine) as a 400 naming its field; else undefined. */
export function engineInputToApi(e: unknown): ApiError | undefined {
  if (e instanceof ApiError) return e;
  if (e instanceof Error && e.name === "EngineInputError") {
    const field = (e as Error & { field?: string }).field ?? null;
    return badRequest(e.message, field, "invalid_value");
  }
  return undefined;
}

/** Streaming hooks of a running generation. */
export interface RunHooks {
  /** Text deltas. */
  onText?: (delta: string) => void;
  /** Per-cycle traces (playground only). */
  onCycle?: (c: CycleTrace) => void;
}

/** A generation in flight. */
export interface Running {
  /** Settles at the first text, or when the generation ends (rejects if it failed first). */
  started: Promise<void>;
  /** The result. */
  done: Promise<GenerateResult>;
}

/** The client went away before its generation started (rendered as an unread 499). */
export class ClientGoneError extends Error {
  constructor() {
    super("client disconnected while queued");
    this.name = "ClientGoneError";
  }
}

/** Wait for the engine slot. Throws ApiError 503 (full / timeout) or ClientGoneError. */
export async function admit(
  ctx: ServerContext,
  signal: AbortSignal,
): Promise<{ release: () => void; queueSeconds: number }> {
  const t0 = performance.now();
  try {
    const release = await ctx.queue.acquire(signal);
    return { release, queueSeconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    if (e instanceof ApiError) throw e;
    if (signal.aborted) throw new ClientGoneError();
    throw e;
  }
}

/**
 * Run an admitted job on the engine. `arrival` is the request's `performance.now()` at arrival (for
 * TTFT and e2e). Releases the slot and records metrics when the engine call settles.
 */
export function run(
  ctx: ServerContext,
  job: GenerationJob,
  slot: { release: () => void; queueSeconds: number },
  arrival: number,
  signal: AbortSignal,
  hooks: RunHooks = {},
): Running {
  let firstText: number | undefined;
  let markStarted!: () => void;
  const started = new Promise<void>((res) => (markStarted = res));
  const s = job.sampling;
  const opts = {
    maxTokens: job.maxTokens,
    temperature: s.temperature,
    topP: s.topP,
    topK: s.topK,
    seed: s.seed,
    stop: s.stop.length ? s.stop : undefined,
    stopTokenIds: s.stopTokenIds.length ? s.stopTokenIds : undefined,
    ...(job.speculative !== undefined ? { speculative: job.speculative } : {}),
    signal,
    onText: (delta: string) => {
      if (delta.length === 0) return;
      if (firstText === undefined) {
        firstText = performance.now();
        markStarted();
      }
      hooks.onText?.(delta);
    },
    onCycle: hooks.onCycle,
  };
  let done: Promise<GenerateResult>;
  try {
    const engine = ctx.engine();
    done = "messages" in job.input
      ? engine.chat(job.input.messages, opts)
      : engine.complete(job.input.prompt, opts);
  } catch (e) {
    done = Promise.reject(e);
  }
  done = done.then(
    (r) => {
      slot.release();
      const end = performance.now();
      ctx.metrics.finished({
        finishReason: r.finishReason,
        promptTokens: r.usage.promptTokens,
        completionTokens: r.usage.completionTokens,
        ttftSeconds: firstText === undefined ? undefined : (firstText - arrival) / 1000,
        e2eSeconds: (end - arrival) / 1000,
        queueSeconds: slot.queueSeconds,
        decodeSeconds: Math.max(0, r.timing.totalSeconds - r.timing.firstTokenSeconds),
        speculative: r.speculative,
        treeTokens: ctx.engine().info.tree?.totalTokens,
      });
      if (r.finishReason === "abort") ctx.metrics.disconnects.inc();
      return r;
    },
    (e) => {
      slot.release();
      ctx.metrics.requestSuccess.inc({ finished_reason: "error" });
      throw engineInputToApi(e) ?? e;
    },
  );
  // `started` follows `done` when no text comes first; its own rejection is handled by whoever awaits it.
  const startedOrDone = Promise.race([started, done.then(() => {})]);
  startedOrDone.catch(() => {});
  return { started: startedOrDone, done };
}

/** Snake-case speculative extension object (never inside `usage`). */
export function speculativeJson(
  r: GenerateResult,
): { cycles: number; acceptance_length: number; accepted_per_position: number[] } | undefined {
  const s = r.speculative;
  if (!s) return undefined;
  return {
    cycles: s.cycles,
    acceptance_length: Number(s.acceptanceLength.toFixed(4)),
    accepted_per_position: s.acceptedPerPosition.map((x) => Number(x.toFixed(4))),
  };
}

/** OpenAI `usage`. */
export function usageJson(
  r: GenerateResult,
): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const { promptTokens, completionTokens } = r.usage;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

/** `chatcmpl-…` / `cmpl-…` ids. */
export function newId(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().replaceAll("-", "")}`;
}
