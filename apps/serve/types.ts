/**
 * The part of `@gto/core`'s `Engine` that the server uses, written structurally. The HTTP layer depends
 * only on this type, so its tests run against a fake engine without a GPU, and the real `Engine` (see
 * docs/engine.md §4: `Engine.load`, `chat`, `complete`, `tokenize`, ...) satisfies it without an adapter.
 * @module
 */

// The request-side types are core's own (type-only imports: nothing of the engine loads at run time);
// the result and info types below are the subset the server reads, so a fake engine can produce them.
import type { ChatMessage, CycleTrace, GenerateOptions } from "@gto/core";
export type { ChatMessage, CycleTrace, GenerateOptions };

/** A chat role the engine renders with the model's chat template. */
export type Role = ChatMessage["role"];

/** What a finished generation returns. */
export interface GenerateResult {
  /** The output text (stop string excluded). */
  text: string;
  /** The output token ids. */
  tokens: number[];
  /** Why it ended. */
  finishReason: "stop" | "length" | "abort";
  /** Token counts. */
  usage: { promptTokens: number; completionTokens: number };
  /** Speculative-decoding statistics (absent for plain decoding). */
  speculative?: { cycles: number; acceptanceLength: number; acceptedPerPosition: number[] };
  /** Wall times in seconds. */
  timing: { firstTokenSeconds: number; totalSeconds: number };
}

/** What the engine serves. */
export interface EngineInfo {
  /** Target model name. */
  model: string;
  /** Draft name, or null for plain decoding. */
  draft: string | null;
  /** The GPU adapter, in words. */
  adapter: string;
  /** Most prompt + new tokens per request. */
  maxContext: number;
  /** Draft tree shape (null for plain decoding). */
  tree: { totalTokens: number; depth: number; topK: number } | null;
  /** End-of-sequence token ids. */
  eosIds: number[];
  /** The auto tree's decision, when it made one (`tree: null`: requests decode plainly by default). */
  autoTree?: { tree: { totalTokens: number; depth: number; topK: number } | null };
}

/** The engine surface the server needs (a structural subset of `@gto/core`'s `Engine`). */
export interface ServeEngine {
  /** Static facts about the loaded model. */
  readonly info: EngineInfo;
  /** Generate an assistant reply to `messages` (rendered with the chat template). */
  chat(messages: ChatMessage[], opts: GenerateOptions): Promise<GenerateResult>;
  /** Continue a raw prompt (text, or token ids). */
  complete(prompt: string | number[], opts: GenerateOptions): Promise<GenerateResult>;
  /** Token ids of `text`, or of the rendered chat when `opts.chat` is given. */
  tokenize(text: string, opts?: { chat?: ChatMessage[]; addSpecialTokens?: boolean }): number[];
  /** Text of token ids. */
  detokenize(ids: number[]): string;
  /** Prompt length of a chat (template + generation prompt), for admission checks. */
  countChatTokens(messages: ChatMessage[]): number;
}
