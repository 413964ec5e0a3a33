/**
 * The part of `@gto/core`'s `Engine` that the server uses, written structurally. The HTTP layer depends
 * only on this type, so its tests run against a fake engine without a GPU, and the real `Engine` (see
 * ENGINE_API: `Engine.load`, `chat`, `complete`, `tokenize`, ...) satisfies it without an adapter.
 * @module
 */

/** A chat role the engine renders with the model's chat template. */
export type Role = "system" | "user" | "assistant";

/** One chat message (text only). */
export interface ChatMessage {
  /** Who wrote it. */
  role: Role;
  /** The message text. */
  content: string;
}

/** One verification cycle of speculative decoding (only when `onCycle` is given). */
export interface CycleTrace {
  /** Tree node token ids; node 0 is the root (the last committed token). */
  tokens: number[];
  /** Parent node index per node; -1 for the root. */
  parents: number[];
  /** Depth per node (root 0). */
  depths: number[];
  /** Node indices of the accepted path, root first. */
  accepted: number[];
  /** The bonus / correction token emitted after the accepted path. */
  bonus: number;
  /** Token ids this cycle committed (accepted drafts + bonus), in order. */
  newTokens: number[];
}

/** Per-request generation options. */
export interface GenerateOptions {
  /** Most new tokens (≥ 1). */
  maxTokens: number;
  /** 0 = greedy. */
  temperature?: number;
  /** Nucleus mass in (0, 1]. */
  topP?: number;
  /** Keep the K most likely tokens (0 = off). */
  topK?: number;
  /** u32 sampling seed. */
  seed?: number;
  /** Stop strings (the output is truncated before the first match). */
  stop?: string[];
  /** Extra stop token ids (the model's eos ids always stop). */
  stopTokenIds?: number[];
  /** Cancels the generation within one readback batch (finish reason "abort"). */
  signal?: AbortSignal;
  /** UTF-8-safe text deltas as they are read back. */
  onText?: (delta: string) => void;
  /** Per-cycle draft-tree trace (speculative decoding only). */
  onCycle?: (c: CycleTrace) => void;
  /** false: plain decoding even when a draft is loaded (default: speculative whenever one is). */
  speculative?: boolean;
}

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
