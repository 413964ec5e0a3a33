/**
 * A deterministic stand-in for `@gto/core`'s `Engine`, for the server's tests and for developing the
 * playground without a GPU. Tokens are Unicode code points (no special tokens); a chat renders as
 * `role: content\n` lines plus `assistant: `; the reply is `You said: <last user message>. Bye.` then
 * eos: the first token from the "prefill", then "cycles" of 1–3 tokens with a small fake draft tree per
 * cycle (whose accepted path spells the real next tokens; output = first token + every cycle's
 * `newTokens`, as with the real decoder), honouring maxTokens, stop strings (held back while they could still
 * match), stop ids and the abort signal between cycles. Magic user messages trigger the failure
 * paths: `[[input-error]]` throws an `EngineInputError` before any output, `[[crash]]` throws after
 * the first text, `[[slow]]` waits 30 ms per cycle. It counts calls in flight, so tests can assert that
 * nothing leaks.
 * @module
 */
import type {
  ChatMessage,
  CycleTrace,
  EngineInfo,
  GenerateOptions,
  GenerateResult,
  ServeEngine,
} from "./types.ts";

/** Mirrors `@gto/core`'s EngineInputError (matched by name). */
export class EngineInputError extends Error {
  /** The offending field. */
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = "EngineInputError";
    this.field = field;
  }
}

/** Fake engine options. */
export interface FakeEngineOptions {
  /** Most prompt + new tokens (default 256). */
  maxContext?: number;
  /** Milliseconds per cycle (default 0: a microtask turn only). */
  cycleDelayMs?: number;
  /** Plain decoding (no draft, no cycles) when false (default true). */
  speculative?: boolean;
}

const EOS = 0;

/** The fake engine. */
export class FakeEngine implements ServeEngine {
  readonly info: EngineInfo;
  readonly #delay: number;
  /** Generations in flight (must return to 0). */
  active = 0;
  /** Generations started. */
  calls = 0;
  /** Generations that ended with finish reason "abort". */
  aborted = 0;
  /** Options of the last call. */
  lastOptions: GenerateOptions | null = null;

  constructor(opts: FakeEngineOptions = {}) {
    const spec = opts.speculative ?? true;
    this.info = {
      model: "fake",
      draft: spec ? "fake-draft" : null,
      adapter: "fake adapter",
      maxContext: opts.maxContext ?? 256,
      tree: spec ? { totalTokens: 8, depth: 3, topK: 2 } : null,
      eosIds: [EOS],
    };
    this.#delay = opts.cycleDelayMs ?? 0;
  }

  /** The chat prompt text. */
  static render(messages: ChatMessage[]): string {
    return messages.map((m) => `${m.role}: ${m.content}\n`).join("") + "assistant: ";
  }

  /** The reply the fake gives to a chat. */
  static reply(messages: ChatMessage[]): string {
    const last = [...messages].reverse().find((m) => m.role === "user")?.content ?? "";
    return `You said: ${last}. Bye.`;
  }

  tokenize(text: string, opts?: { chat?: ChatMessage[]; addSpecialTokens?: boolean }): number[] {
    const t = opts?.chat ? FakeEngine.render(opts.chat) : text;
    return Array.from(t, (ch) => ch.codePointAt(0)!);
  }

  detokenize(ids: number[]): string {
    for (const id of ids) {
      if (id > 0x10ffff || (id >= 0xd800 && id <= 0xdfff)) {
        throw new EngineInputError("tokens", `token id ${id} is outside the vocabulary`);
      }
    }
    return ids.filter((id) => id !== EOS).map((id) => String.fromCodePoint(id)).join("");
  }

  countChatTokens(messages: ChatMessage[]): number {
    return this.tokenize("", { chat: messages }).length;
  }

  chat(messages: ChatMessage[], opts: GenerateOptions): Promise<GenerateResult> {
    if (messages.length === 0) return Promise.reject(new EngineInputError("messages", "messages is empty"));
    const last = messages[messages.length - 1].content;
    return this.#run(this.countChatTokens(messages), FakeEngine.reply(messages), last, opts);
  }

  complete(prompt: string | number[], opts: GenerateOptions): Promise<GenerateResult> {
    const text = typeof prompt === "string" ? prompt : this.detokenize(prompt);
    const n = typeof prompt === "string" ? this.tokenize(prompt).length : prompt.length;
    return this.#run(n, ` and then ${text.split("").reverse().join("")}.`, text, opts);
  }

  async #run(
    promptTokens: number,
    reply: string,
    trigger: string,
    opts: GenerateOptions,
  ): Promise<GenerateResult> {
    if (promptTokens === 0) throw new EngineInputError("prompt", "the prompt is empty");
    if (!(opts.maxTokens >= 1)) throw new EngineInputError("maxTokens", "maxTokens must be ≥ 1");
    if (promptTokens + opts.maxTokens > this.info.maxContext) {
      throw new EngineInputError("maxTokens", "prompt + maxTokens exceeds maxContext");
    }
    if (opts.speculative === true && !this.info.draft) {
      throw new EngineInputError("speculative", "no draft is loaded");
    }
    if (trigger.includes("[[input-error]]")) throw new EngineInputError("messages", "fake input error");
    this.calls++;
    this.active++;
    this.lastOptions = opts;
    const t0 = performance.now();
    const delay = trigger.includes("[[slow]]") ? 30 : this.#delay;
    try {
      const target = [...Array.from(reply, (c) => c.codePointAt(0)!), EOS];
      const out: number[] = [];
      let shown = 0; // chars of `text` already passed to onText
      let text = "";
      let finish: GenerateResult["finishReason"] = "length";
      let first = 0;
      let cycles = 0, accepted = 0;
      const perPos = [0, 0];
      const stops = opts.stop ?? [];
      const hold = stops.reduce((m, s) => Math.max(m, s.length - 1), 0);
      let pos = 0;
      while (true) {
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        else await Promise.resolve();
        if (opts.signal?.aborted) {
          finish = "abort";
          break;
        }
        // The first token comes from the prefill; then cycles of 1, 2, 3, 1, ... tokens.
        const prefill = pos === 0;
        const len = prefill ? 1 : 1 + (cycles % 3);
        const fresh = target.slice(pos, pos + len);
        const root = out[out.length - 1];
        pos += fresh.length;
        let stopped = false;
        const committed: number[] = [];
        for (const id of fresh) {
          if (id === EOS || opts.stopTokenIds?.includes(id)) {
            finish = "stop";
            stopped = true;
            break;
          }
          out.push(id);
          committed.push(id);
          text += String.fromCodePoint(id);
          if (out.length >= opts.maxTokens) {
            finish = "length";
            stopped = true;
            break;
          }
        }
        if (!prefill && this.info.draft && opts.speculative !== false) {
          cycles++;
          accepted += fresh.length - 1;
          for (let i = 0; i < fresh.length - 1 && i < perPos.length; i++) perPos[i]++;
          opts.onCycle?.(this.#trace(root, fresh, committed));
        }
        if (first === 0) first = performance.now();
        const hit = stops.map((s) => text.indexOf(s)).filter((i) => i >= 0).sort((a, b) => a - b)[0];
        if (hit !== undefined) {
          text = text.slice(0, hit);
          finish = "stop";
          stopped = true;
        }
        const safe = stopped ? text.length : Math.max(shown, text.length - hold);
        if (safe > shown) {
          opts.onText?.(text.slice(shown, safe));
          shown = safe;
        }
        if (stopped) break;
        if (trigger.includes("[[crash]]")) throw new Error("fake engine crashed mid-generation");
      }
      if (finish === "abort") this.aborted++;
      const t1 = performance.now();
      return {
        text,
        tokens: out,
        finishReason: finish,
        usage: { promptTokens, completionTokens: out.length },
        speculative: this.info.draft && opts.speculative !== false
          ? {
            cycles,
            acceptanceLength: cycles ? (accepted + cycles) / cycles : 0,
            acceptedPerPosition: perPos.map((x) => (cycles ? x / cycles : 0)),
          }
          : undefined,
        timing: { firstTokenSeconds: ((first || t1) - t0) / 1000, totalSeconds: (t1 - t0) / 1000 },
      };
    } finally {
      this.active--;
    }
  }

  /**
   * A small tree: root → [next, decoy]; next → [next2, decoy]; ... accepted path = fresh minus bonus.
   * `newTokens` = what the cycle committed (cut at eos or max tokens), as the real decoder reports it.
   */
  #trace(root: number, fresh: number[], committed: number[]): CycleTrace {
    const tokens = [root], parents = [-1], depths = [0];
    const accepted = [0];
    let parent = 0;
    for (let d = 0; d < fresh.length - 1; d++) {
      tokens.push(fresh[d], 0x3f); // the real next token and a "?" decoy
      parents.push(parent, parent);
      depths.push(d + 1, d + 1);
      parent = tokens.length - 2;
      accepted.push(parent);
    }
    tokens.push(0x21); // one rejected "!" at the frontier
    parents.push(parent);
    depths.push(fresh.length);
    return { tokens, parents, depths, accepted, bonus: fresh[fresh.length - 1], newTokens: committed };
  }
}
