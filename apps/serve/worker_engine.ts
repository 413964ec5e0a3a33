/**
 * `WorkerEngine`: the server's `ServeEngine`, with the real `Engine` in a Worker (`engine_worker.ts`)
 * so GPU waits never block the HTTP thread (`/health`, `/metrics`, admission and streaming stay
 * responsive while a generation runs). Tokenization — which admission needs synchronously, and which
 * must not wait behind a running generation — uses a second, GPU-free copy of the model's tokenizer
 * and chat template on the main thread, through the same calls the `Engine` makes (`encodeChat`;
 * `tokenizer.encode` with special tokens unless told otherwise; `decode` skipping special tokens), so
 * counts match what the engine will see. Generations are forwarded as messages; an aborted signal
 * becomes an `abort` message, honoured by the engine within one readback batch. If the worker dies
 * (device lost, a crash), every pending call fails and `onFatal` is called (main.ts exits non-zero so
 * a supervisor restarts it).
 * @module
 */
import {
  type ChatTemplate,
  encodeChat,
  type EngineLoadOptions,
  loadChatTemplate,
  loadLlamaConfig,
  loadTokenizer,
  type TextTokenizer,
} from "@gto/core";
import type { ToWorker, WireError } from "./engine_worker.ts";
import type {
  ChatMessage,
  CycleTrace,
  EngineInfo,
  GenerateOptions,
  GenerateResult,
  ServeEngine,
} from "./types.ts";

function inputError(field: string, message: string): Error {
  const e = new Error(message) as Error & { field: string };
  e.name = "EngineInputError";
  e.field = field;
  return e;
}

function unwire(w: WireError): Error {
  const e = new Error(w.message) as Error & { field?: string };
  e.name = w.name;
  if (w.field !== undefined) e.field = w.field;
  return e;
}

type Tok = { dir: string; tokenizer: TextTokenizer; chatTemplate?: ChatTemplate };
type WireOptions = Extract<ToWorker, { type: "generate" }>["opts"];

interface Pending {
  resolve: (r: GenerateResult) => void;
  reject: (e: Error) => void;
  onText?: (d: string) => void;
  onCycle?: (c: CycleTrace) => void;
}

/** The engine in a Worker, behind the `ServeEngine` interface. */
export class WorkerEngine implements ServeEngine {
  readonly info: EngineInfo;
  readonly #worker: Worker;
  readonly #tok: Tok;
  readonly #vocab: number;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #dead: Error | null = null;
  #closed: (() => void) | null = null;
  /** Called once if the worker dies. */
  onFatal: (e: Error) => void = () => {};

  private constructor(worker: Worker, info: EngineInfo, tok: Tok, vocab: number) {
    this.#worker = worker;
    this.info = info;
    this.#tok = tok;
    this.#vocab = vocab;
    worker.onmessage = (ev) => this.#onMessage(ev.data);
    worker.onerror = (ev) => {
      ev.preventDefault();
      this.#die(new Error(`engine worker crashed: ${ev.message}`));
    };
  }

  /** Load the engine in a new Worker (and the tokenizer here). Rejects with the engine's error. */
  static async load(opts: Omit<EngineLoadOptions, "gpu">): Promise<WorkerEngine> {
    const [config, tokenizer, chatTemplate] = await Promise.all([
      loadLlamaConfig(opts.target),
      loadTokenizer(opts.target),
      loadChatTemplate(opts.target),
    ]);
    const worker = new Worker(new URL("./engine_worker.ts", import.meta.url), { type: "module" });
    const info = await new Promise<EngineInfo>((resolve, reject) => {
      worker.onmessage = (ev) => {
        if (ev.data.type === "loaded") resolve(ev.data.info);
        else if (ev.data.type === "failed") reject(unwire(ev.data.error));
      };
      worker.onerror = (ev) => {
        ev.preventDefault();
        reject(new Error(`engine worker failed to start: ${ev.message}`));
      };
      worker.postMessage({ type: "load", opts } satisfies ToWorker);
    }).catch((e) => {
      worker.terminate();
      throw e;
    });
    return new WorkerEngine(worker, info, { dir: opts.target, tokenizer, chatTemplate }, config.vocabSize);
  }

  #onMessage(m: { type: string; id?: number; [k: string]: unknown }): void {
    if (m.type === "closed") {
      this.#closed?.();
      return;
    }
    const p = this.#pending.get(m.id!);
    if (!p) return;
    if (m.type === "text") p.onText?.(m.delta as string);
    else if (m.type === "cycle") p.onCycle?.(m.trace as CycleTrace);
    else if (m.type === "done") {
      this.#pending.delete(m.id!);
      p.resolve(m.result as GenerateResult);
    } else if (m.type === "error") {
      this.#pending.delete(m.id!);
      p.reject(unwire(m.error as WireError));
    }
  }

  #die(e: Error): void {
    if (this.#dead) return;
    this.#dead = e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
    this.onFatal(e);
  }

  tokenize(text: string, opts: { chat?: ChatMessage[]; addSpecialTokens?: boolean } = {}): number[] {
    const tok = this.#tok.tokenizer;
    if (opts.chat !== undefined) {
      const ids = this.#chat(opts.chat);
      return text === "" ? ids : [...ids, ...tok.encode(text, { addSpecialTokens: false })];
    }
    return tok.encode(text, { addSpecialTokens: opts.addSpecialTokens ?? true });
  }

  detokenize(ids: number[]): string {
    if (ids.length === 0) return "";
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.#vocab) {
        throw inputError(`ids[${i}]`, `ids[${i}]: expected a token id in [0, ${this.#vocab}), got ${id}`);
      }
    });
    return this.#tok.tokenizer.decode(ids, { skipSpecialTokens: true });
  }

  countChatTokens(messages: ChatMessage[]): number {
    return this.#chat(messages).length;
  }

  #chat(messages: ChatMessage[]): number[] {
    try {
      return encodeChat(this.#tok, messages);
    } catch (e) {
      // No template, or the template refused the messages (e.g. roles not alternating).
      throw inputError("messages", `messages: ${(e as Error).message}`);
    }
  }

  chat(messages: ChatMessage[], opts: GenerateOptions): Promise<GenerateResult> {
    return this.#generate("chat", messages, opts);
  }

  complete(prompt: string | number[], opts: GenerateOptions): Promise<GenerateResult> {
    return this.#generate("complete", prompt, opts);
  }

  #generate(kind: "chat" | "complete", input: unknown, opts: GenerateOptions): Promise<GenerateResult> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    const { signal, onText, onCycle, ...rest } = opts;
    const plain: WireOptions = rest; // undefined fields survive structured cloning as undefined
    return new Promise<GenerateResult>((resolve, reject) => {
      const onAbort = () => this.#worker.postMessage({ type: "abort", id } satisfies ToWorker);
      this.#pending.set(id, {
        resolve: (r) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(r);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
        onText,
        onCycle,
      });
      this.#worker.postMessage(
        {
          type: "generate",
          id,
          kind,
          input,
          opts: plain,
          text: onText !== undefined,
          cycles: onCycle !== undefined,
        } satisfies ToWorker,
      );
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Let the engine finish, free the GPU, end the worker. */
  async close(): Promise<void> {
    if (!this.#dead) {
      await new Promise<void>((resolve) => {
        this.#closed = resolve;
        this.#worker.postMessage({ type: "close" } satisfies ToWorker);
        setTimeout(resolve, 10_000); // a stuck engine does not hold shutdown forever
      });
    }
    this.#worker.terminate();
  }
}
