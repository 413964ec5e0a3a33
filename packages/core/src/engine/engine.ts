/**
 * `Engine`: the one way apps decode. It owns the GPU device (or borrows one), the `Recorder`, the
 * target, the optional EAGLE-3 draft and the decoders, all allocated once at load and sized for
 * `maxContext` tokens (prompt + new) and the draft tree, so no GPU object is created per request.
 *
 * A request goes: validate (→ {@link EngineInputError} naming the field, before any GPU work) →
 * chat encoding (`encodeChat`, the project's one chat → ids path) → FIFO queue (one generation at a
 * time: one GPU queue and a non-reentrant `Recorder`; batch-1 serialisation is the design) →
 * plain or speculative decoding (`decoding.ts`) → after each readback: the UTF-8-safe streaming
 * detokenizer (`TextStream`), stop strings (`StopMatcher`: held back until they can no longer
 * match, output cut before them) and the `AbortSignal`, both of which end the decoder's loop within
 * that readback batch.
 *
 * The API is plain data (ids and text in, results out, callbacks for streaming), so the engine can
 * later move into a Worker without changing its callers. The contract the HTTP server builds on is
 * written out in `docs/engine.md`.
 *
 * ```ts
 * const engine = await Engine.load({ target: "models/tiny" });
 * const r = await engine.chat([{ role: "user", content: "What is 12 plus 7?" }], { maxTokens: 32 });
 * console.log(r.text, r.finishReason, r.usage);
 * await engine.close();
 * ```
 * @module
 */
import { describeGpu, type GpuDevice, requestGpu } from "../gpu/device.ts";
import { llamaParamCount, softwareThreadsFor } from "../gpu/software_threads.ts";
import { KernelCache } from "../gpu/kernel.ts";
import { Recorder } from "../gpu/recorder.ts";
import { type ChatMessage, encodeChat } from "../io/chat.ts";
import { loadModelDir, type ModelDir } from "../io/model_dir.ts";
import { ModelLoadError, ShapeError } from "../errors.ts";
import { LlamaModel } from "../model/llama.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { type CycleTrace, Decoders, requiredRows, resolveTree } from "./decoding.ts";
import {
  type AutoTreeChoice,
  chooseTree,
  describeTree,
  perfectAcceptance,
  type TreeShape,
} from "./auto_tree.ts";
import { calibrateAutoTree, CALIBRATION_MESSAGES } from "./calibrate.ts";
import {
  defaultCacheDir,
  fingerprintDir,
  readTreeCache,
  TREE_CACHE_VERSION,
  type TreeCacheEntry,
  treeCachePath,
  writeTreeCache,
} from "./tree_cache.ts";
import { FifoLock } from "./fifo.ts";
import { StopMatcher } from "./stop.ts";
import { TextStream } from "./text_stream.ts";
import {
  checkContext,
  type CheckedOptions,
  checkMessages,
  checkOptions,
  checkPromptIds,
  EngineInputError,
} from "./validate.ts";

export type { CycleTrace } from "./decoding.ts";

/** Options of {@link Engine.load}. */
export interface EngineLoadOptions {
  /** Target model directory (Hugging Face layout). */
  target: string;
  /**
   * EAGLE-3 draft directory; null = plain decoding. Default: `models/tiny-draft` when the target is
   * the bundled `models/tiny` and that draft exists, else none.
   */
  draft?: string | null;
  /**
   * Draft tree shape, or `"auto"` (the default with a draft): the cost-aware choice — costs measured
   * on this adapter and the draft's acceptance, cached per (adapter, target, draft), pick the tree
   * (or plain decoding) with the most predicted tokens/s (docs/engine.md §6). A fixed shape needs a
   * draft; `"auto"` without one is plain decoding.
   */
  tree?: TreeShape | "auto";
  /**
   * Directory of the auto tree's calibration cache (default `$GTO_CACHE_DIR`, `$XDG_CACHE_HOME/gto` or
   * `~/.cache/gto`); null = do not cache (calibrate at every load).
   */
  cacheDir?: string | null;
  /** Where the auto tree's one-line decision goes (default console.error). */
  log?: (line: string) => void;
  /** GPU storage of the target's weight matrices (default auto). */
  weightDtype?: "auto" | "f32" | "f16";
  /** Most prompt + new tokens per request (default min(max_position_embeddings, 2048)). */
  maxContext?: number;
  /** A device to use instead of requesting one (the engine then does not destroy it on close). */
  gpu?: GpuDevice;
}

/** Options of one generation ({@link Engine.chat}, {@link Engine.complete}). */
export interface GenerateOptions {
  /** Most new tokens, ≥ 1. */
  maxTokens: number;
  /** Softmax temperature; 0 (default) is greedy. */
  temperature?: number;
  /** Nucleus sampling mass in (0, 1] (default 1 = off). */
  topP?: number;
  /** Keep the k most likely tokens (default 0 = off). */
  topK?: number;
  /** Sampling seed, a u32 (default 0). */
  seed?: number;
  /** Stop strings: held back until they can no longer match; the output is cut before them. */
  stop?: string[];
  /** Extra stop token ids (the model's eos ids from generation_config are always honoured). */
  stopTokenIds?: number[];
  /** Honoured within one readback batch → finishReason "abort". */
  signal?: AbortSignal;
  /** UTF-8-safe text deltas as they are read back (their concatenation is `text`). */
  onText?: (delta: string) => void;
  /** Per-cycle draft-tree trace (speculative only; opt-in; T=0 output unchanged). */
  onCycle?: (c: CycleTrace) => void;
  /** Use the draft for this call (default: whenever one is loaded); false = plain decoding. */
  speculative?: boolean;
  /** Decode steps (plain) or cycles (speculative) per GPU readback (default 16 / 4). */
  readEvery?: number;
}

/** What a generation returns. */
export interface GenerateResult {
  /** The new text (special tokens skipped; cut before a matched stop string). */
  text: string;
  /** The new token ids (eos excluded; up to the token that completed a stop string). */
  tokens: number[];
  /** eos or a stop string/id (`stop`), max tokens (`length`), or the signal (`abort`). */
  finishReason: "stop" | "length" | "abort";
  /** Token counts. */
  usage: { promptTokens: number; completionTokens: number };
  /** Acceptance of speculative decoding over the cycles run (absent for plain calls). */
  speculative?: {
    /** Verification cycles. */
    cycles: number;
    /** τ: new tokens per cycle, bonus included. */
    acceptanceLength: number;
    /** Fraction of cycles accepting a draft at depth j = 1..Dp−1. */
    acceptedPerPosition: number[];
    /** Cycles per accepted length 0..Dp−1. */
    acceptHistogram: number[];
  };
  /** Wall-clock times of the call (queueing excluded). */
  timing: { firstTokenSeconds: number; totalSeconds: number };
}

/** What an engine serves. */
export interface EngineInfo {
  /** Target directory basename. */
  model: string;
  /**
   * Draft directory basename, null without a draft. With a draft, calls are speculative by default
   * unless the auto tree chose plain decoding (`autoTree.tree === null`); `speculative` overrides.
   */
  draft: string | null;
  /** The adapter, in words. */
  adapter: string;
  /** Most prompt + new tokens per request. */
  maxContext: number;
  /** The draft tree of speculative calls (null without a draft; the auto tree's best tree when it chose plain). */
  tree: { totalTokens: number; depth: number; topK: number } | null;
  /** The auto tree's decision and its prediction (absent with a fixed tree or without a draft). */
  autoTree?: AutoTreeInfo;
  /** The model's eos ids (always stop generation). */
  eosIds: number[];
  /** GPU storage type of the target's weight matrices. */
  weightDtype: "f32" | "f16";
  /** Whether the model has a chat template (`chat` and `tokenize({chat})` need one). */
  chatTemplate: boolean;
}

/** The auto tree's decision (`EngineInfo.autoTree`). */
export interface AutoTreeInfo {
  /**
   * The chosen tree, null = plain decoding: calls decode plainly unless they pass
   * `speculative: true`, which then uses `bestTree` (the draft stays loaded).
   */
  tree: TreeShape | null;
  /** The draft directory's basename the decision was made for. */
  draft: string;
  /** Predicted tokens/s of the choice. */
  predictedTokPerSec: number;
  /** Predicted τ of the choice (1 for plain decoding). */
  predictedTau: number;
  /** Predicted tokens/s of plain decoding. */
  plainTokPerSec: number;
  /** The best tree's prediction, also when plain decoding won (τ is the upper bound min(N, D + 2) when acceptance was not measured). */
  bestTree: { tree: TreeShape; tau: number; tokPerSec: number; cycleMs: number };
  /** Whether the measurements came from the cache. */
  cached: boolean;
  /** The cache file (null: not cached). */
  cacheFile: string | null;
  /** Seconds the calibration took (when it was made). */
  calibrationSeconds: number;
  /** The one-line log of the decision. */
  line: string;
}

/** Most stop ids (eos + stopTokenIds) one speculative call honours. */
const MAX_EOS = 16;
/** Tokens per target forward: prefill chunk (plain), and at least the tree (speculative). */
const PLAIN_BATCH = 256, SPEC_BATCH = 128;

const basename = (p: string): string => p.replace(/\/+$/, "").split("/").pop() || p;

async function realPath(p: string): Promise<string | null> {
  try {
    return await Deno.realPath(p);
  } catch {
    return null;
  }
}

/** The bundled model and draft directories (null when this module is not loaded from a checkout). */
function bundled(): { target: string; draft: string } | null {
  const root = new URL("../../../../models/", import.meta.url);
  if (root.protocol !== "file:") return null;
  const dir = decodeURIComponent(root.pathname);
  return { target: `${dir}tiny`, draft: `${dir}tiny-draft` };
}

/**
 * The default draft of `target`: the bundled `models/tiny-draft` when `target` is the bundled
 * `models/tiny` and the draft directory exists (it has a config.json); otherwise null.
 */
export async function defaultDraftFor(target: string): Promise<string | null> {
  const b = bundled();
  if (!b) return null;
  const [t, bt] = await Promise.all([realPath(target), realPath(b.target)]);
  if (!t || t !== bt) return null;
  return (await realPath(`${b.draft}/config.json`)) ? b.draft : null;
}

/** The buffers of an auto tree are sized for the largest candidate (the grid's bounds). */
const AUTO_SIZING_TREE: TreeShape = { totalTokens: 64, depth: 6, topK: 8 };

/**
 * The auto tree: measurements from the cache or a fresh calibration (then cached), the choice, and
 * its one-line description.
 */
async function decideAutoTree(
  gpu: GpuDevice,
  dir: ModelDir,
  draftDir: string,
  target: LlamaModel,
  draft: Eagle3Draft,
  rec: Recorder,
  opts: EngineLoadOptions,
): Promise<AutoTreeInfo> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const adapter = describeGpu(gpu);
  const [tfp, dfp] = await Promise.all([fingerprintDir(dir.dir), fingerprintDir(draftDir)]);
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  const file = cacheDir === null ? null : await treeCachePath(cacheDir, adapter, tfp, dfp);
  let entry = file ? await readTreeCache(file, { adapter, target: tfp, draft: dfp }) : null;
  const cached = entry !== null;
  if (!entry) {
    const prompts = CALIBRATION_MESSAGES.map((m) =>
      dir.chatTemplate !== undefined
        ? encodeChat(dir, [{ role: "user", content: m }])
        : dir.tokenizer.encode(m)
    );
    const c = await calibrateAutoTree(target, draft, rec, { prompts, eosIds: dir.config.eosTokenIds });
    entry = {
      version: TREE_CACHE_VERSION,
      adapter,
      target: tfp,
      draft: dfp,
      costs: c.costs,
      acceptance: c.acceptance,
      calibrationSeconds: c.seconds,
      date: new Date().toISOString(),
    } satisfies TreeCacheEntry;
    if (file) {
      try {
        await writeTreeCache(file, entry);
      } catch (e) {
        log(`warning: auto tree: cannot write the calibration cache ${file}: ${(e as Error).message}`);
      }
    }
  }
  const measured = entry.acceptance !== null;
  const ch: AutoTreeChoice = chooseTree(entry.costs, entry.acceptance ?? perfectAcceptance());
  const c = ch.choice, b = ch.bestTree;
  const line =
    `auto tree: ${describeTree(c.tree)} (${basename(draftDir)}) · predicted ${c.tokPerSec.toFixed(1)} tok/s` +
    (c.tree ? ` (τ ${c.tau.toFixed(2)}, cycle ${c.cycleMs.toFixed(1)} ms)` : "") +
    ` · plain ${ch.plain.tokPerSec.toFixed(1)} tok/s · best tree ${describeTree(b.tree)} ${
      b.tokPerSec.toFixed(1)
    } tok/s` +
    ` (τ ${b.tau.toFixed(2)}${measured ? "" : " if every draft were accepted"}, cycle ${
      b.cycleMs.toFixed(1)
    } ms)` +
    ` · ${ch.candidates} candidates · ${
      cached ? `cached (${file})` : `calibrated in ${entry.calibrationSeconds.toFixed(1)} s`
    }`;
  return {
    tree: c.tree,
    draft: basename(draftDir),
    predictedTokPerSec: c.tokPerSec,
    predictedTau: c.tau,
    plainTokPerSec: ch.plain.tokPerSec,
    bestTree: { tree: b.tree!, tau: b.tau, tokPerSec: b.tokPerSec, cycleMs: b.cycleMs },
    cached,
    cacheFile: file,
    calibrationSeconds: entry.calibrationSeconds,
    line,
  };
}

/** Run `f`; a tree-shape ShapeError ("tree: ...") becomes an EngineInputError on `tree`. */
function treeOrInputError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ShapeError && e.message.startsWith("tree: ")) {
      throw new EngineInputError("tree", e.message.slice(6));
    }
    throw e;
  }
}

/** A loaded model (+ draft) serving generations one at a time. */
export class Engine {
  /** What this engine serves. */
  readonly info: EngineInfo;
  readonly #dir: ModelDir;
  readonly #gpu: GpuDevice;
  readonly #ownsGpu: boolean;
  readonly #rec: Recorder;
  readonly #target: LlamaModel;
  readonly #draft: Eagle3Draft | null;
  readonly #decoders: Decoders;
  readonly #lock = new FifoLock();
  /** Calls without `speculative` use the draft (false without one, or when the auto tree chose plain). */
  readonly #speculativeByDefault: boolean;
  #closed = false;

  private constructor(
    info: EngineInfo,
    parts: {
      dir: ModelDir;
      gpu: GpuDevice;
      ownsGpu: boolean;
      rec: Recorder;
      target: LlamaModel;
      draft: Eagle3Draft | null;
      decoders: Decoders;
    },
  ) {
    this.info = info;
    this.#dir = parts.dir;
    this.#gpu = parts.gpu;
    this.#ownsGpu = parts.ownsGpu;
    this.#rec = parts.rec;
    this.#target = parts.target;
    this.#draft = parts.draft;
    this.#decoders = parts.decoders;
    this.#speculativeByDefault = parts.draft !== null && info.autoTree?.tree !== null;
  }

  /**
   * Load the target (and draft) and allocate every buffer of decoding. Throws ModelLoadError
   * (naming the file) for a bad model or draft directory, EngineInputError for bad options,
   * ShapeError for a bad tree, GpuUnavailableError without an adapter.
   */
  static async load(opts: EngineLoadOptions): Promise<Engine> {
    if (typeof opts !== "object" || opts === null) {
      throw new EngineInputError("options", "expected an object");
    }
    const known = ["target", "draft", "tree", "weightDtype", "maxContext", "gpu", "cacheDir", "log"];
    for (const k of Object.keys(opts)) {
      if (!known.includes(k)) {
        throw new EngineInputError(k, `unknown load option (known: ${known.join(", ")})`);
      }
    }
    if (typeof opts.target !== "string" || opts.target === "") {
      throw new EngineInputError("target", "expected a model directory path");
    }
    const wd = opts.weightDtype ?? "auto";
    if (wd !== "auto" && wd !== "f32" && wd !== "f16") {
      throw new EngineInputError("weightDtype", `expected auto, f32 or f16, got ${JSON.stringify(wd)}`);
    }
    const draftDir = opts.draft === undefined ? await defaultDraftFor(opts.target) : opts.draft;
    if (draftDir !== null && (typeof draftDir !== "string" || draftDir === "")) {
      throw new EngineInputError("draft", "expected a draft directory path or null");
    }
    if (opts.tree !== undefined && opts.tree !== "auto" && draftDir === null) {
      throw new EngineInputError(
        "tree",
        "a draft tree needs a draft (draft is null and there is no default)",
      );
    }
    if (opts.cacheDir !== undefined && opts.cacheDir !== null && typeof opts.cacheDir !== "string") {
      throw new EngineInputError("cacheDir", "expected a directory path or null");
    }
    const auto = draftDir !== null && (opts.tree === undefined || opts.tree === "auto");
    // The tree shape first: a bad one should fail before seconds of model loading. The auto tree
    // sizes the buffers for the largest candidate.
    const tree = draftDir === null
      ? null
      : treeOrInputError(() => resolveTree(auto ? AUTO_SIZING_TREE : opts.tree as TreeShape));
    const dir = await loadModelDir(opts.target);
    const maxPos = dir.config.maxPositionEmbeddings;
    const maxContext = opts.maxContext ?? Math.min(maxPos, 2048);
    if (!Number.isSafeInteger(maxContext) || maxContext < 2 || maxContext > maxPos) {
      throw new EngineInputError(
        "maxContext",
        `expected an integer in [2, ${maxPos}] (the model's max_position_embeddings), got ${opts.maxContext}`,
      );
    }
    const rows = requiredRows(tree, maxContext);
    // A small target on a software adapter runs each dispatch inline (gpu/software_threads.ts).
    const gpu = opts.gpu ??
      await requestGpu({ softwareThreads: softwareThreadsFor(llamaParamCount(dir.config)) });
    const owned: { destroy(): void }[] = [];
    try {
      const batch = tree ? Math.max(SPEC_BATCH, tree.totalTokens) : PLAIN_BATCH;
      const target = await LlamaModel.load(gpu, dir, {
        weightDtype: wd,
        maxSeqLen: rows.target,
        maxBatch: batch,
      });
      owned.push(target);
      let draft: Eagle3Draft | null = null;
      if (draftDir !== null) {
        draft = await Eagle3Draft.load(gpu, draftDir, dir, { maxSeqLen: rows.draft, maxBatch: batch });
        owned.push(draft);
      }
      const rec = new Recorder(gpu, new KernelCache(gpu));
      owned.push(rec);
      let chosen = auto ? undefined : opts.tree as TreeShape | undefined;
      let autoTree: AutoTreeInfo | undefined;
      if (auto && draft) {
        autoTree = await decideAutoTree(gpu, dir, draftDir!, target, draft, rec, opts);
        (opts.log ?? ((l: string) => console.error(l)))(autoTree.line);
        // Plain decoding won: calls decode plainly by default, but the draft stays loaded (with the
        // best tree) so a caller can still ask for speculative decoding — the playground shows the
        // draft tree on every adapter, and benchmarks can compare both on one engine.
        chosen = autoTree.tree ?? autoTree.bestTree.tree;
      }
      const decoders = treeOrInputError(() =>
        new Decoders(target, draft, rec, { tree: chosen, maxEos: MAX_EOS })
      );
      const t = decoders.tree;
      const info: EngineInfo = {
        model: basename(dir.dir),
        draft: draftDir === null || draft === null ? null : basename(draftDir),
        adapter: describeGpu(gpu),
        maxContext,
        tree: t ? { totalTokens: t.totalTokens, depth: t.depth, topK: t.topK } : null,
        ...(autoTree ? { autoTree } : {}),
        eosIds: [...dir.config.eosTokenIds],
        weightDtype: target.weightDtype,
        chatTemplate: dir.chatTemplate !== undefined,
      };
      return new Engine(info, { dir, gpu, ownsGpu: !opts.gpu, rec, target, draft, decoders });
    } catch (e) {
      for (const o of owned.reverse()) o.destroy();
      if (!opts.gpu) gpu.device.destroy();
      throw e;
    }
  }

  /** Calls queued or running (one generation runs at a time, in FIFO order). */
  get pending(): number {
    return this.#lock.pending;
  }

  /** Token ids of `text`; with `chat`, the chat prompt of those messages followed by `text`. */
  tokenize(text: string, opts: { chat?: ChatMessage[]; addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== "string") throw new EngineInputError("text", "expected a string");
    const tok = this.#dir.tokenizer;
    if (opts.chat !== undefined) {
      const ids = this.#encodeChat(checkMessages(opts.chat));
      return text === "" ? ids : [...ids, ...tok.encode(text, { addSpecialTokens: false })];
    }
    return tok.encode(text, { addSpecialTokens: opts.addSpecialTokens ?? true });
  }

  /** Text of `ids` (special tokens skipped, as in generated text). */
  detokenize(ids: number[]): string {
    if (!Array.isArray(ids)) throw new EngineInputError("ids", "expected an array of token ids");
    if (ids.length === 0) return "";
    return this.#dir.tokenizer.decode(checkPromptIds(ids, this.#target.config.vocabSize), {
      skipSpecialTokens: true,
    });
  }

  /** Prompt tokens of a chat (for admission checks). */
  countChatTokens(messages: ChatMessage[]): number {
    return this.#encodeChat(checkMessages(messages)).length;
  }

  /** Generate the assistant's reply to `messages` (rendered with the model's chat template). */
  chat(messages: ChatMessage[], opts: GenerateOptions): Promise<GenerateResult> {
    try {
      this.#checkOpen();
      const o = this.#check(opts);
      const prompt = this.#encodeChat(checkMessages(messages));
      checkContext("messages", prompt.length, o.maxTokens, this.info.maxContext);
      return this.#lock.run(() => this.#generate(prompt, o));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Continue `prompt`: raw text (tokenized with the tokenizer's special tokens) or token ids. */
  complete(prompt: string | number[], opts: GenerateOptions): Promise<GenerateResult> {
    try {
      this.#checkOpen();
      const o = this.#check(opts);
      let ids: number[];
      if (typeof prompt === "string") ids = this.#dir.tokenizer.encode(prompt);
      else if (Array.isArray(prompt)) ids = [...checkPromptIds(prompt, this.#target.config.vocabSize)];
      else throw new EngineInputError("prompt", "expected a string or an array of token ids");
      checkContext("prompt", ids.length, o.maxTokens, this.info.maxContext);
      return this.#lock.run(() => this.#generate(ids, o));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Wait for the queued calls, then free every GPU object (and the device, when the engine made it). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#lock.run(() => Promise.resolve());
    this.#decoders.destroy();
    this.#draft?.destroy();
    this.#target.destroy();
    this.#rec.destroy();
    if (this.#ownsGpu) this.#gpu.device.destroy();
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("Engine: closed");
  }

  #check(opts: GenerateOptions): CheckedOptions {
    const o = checkOptions(opts, { vocabSize: this.#target.config.vocabSize });
    if (o.speculative && !this.#draft) {
      throw new EngineInputError("speculative", "no draft is loaded (this engine decodes plainly)");
    }
    const eos = new Set([...this.info.eosIds, ...o.stopTokenIds]);
    if (this.#draft && o.speculative !== false && eos.size > MAX_EOS) {
      throw new EngineInputError(
        "stopTokenIds",
        `${eos.size} stop ids with the model's eos ids; at most ${MAX_EOS}`,
      );
    }
    return o;
  }

  #encodeChat(messages: ChatMessage[]): number[] {
    try {
      return encodeChat(this.#dir, messages);
    } catch (e) {
      // No template, or the template refused the messages (raise_exception, e.g. roles not alternating).
      if (e instanceof ModelLoadError) throw new EngineInputError("messages", e.message);
      throw e;
    }
  }

  /** One generation; runs under the FIFO lock. */
  async #generate(prompt: number[], o: CheckedOptions): Promise<GenerateResult> {
    const t0 = performance.now();
    const seconds = () => (performance.now() - t0) / 1000;
    const usage = (n: number) => ({ promptTokens: prompt.length, completionTokens: n });
    if (o.signal?.aborted) {
      return {
        text: "",
        tokens: [],
        finishReason: "abort",
        usage: usage(0),
        timing: { firstTokenSeconds: 0, totalSeconds: 0 },
      };
    }
    const tok = this.#dir.tokenizer;
    const decode = (ids: number[]) => (ids.length === 0 ? "" : tok.decode(ids, { skipSpecialTokens: true }));
    const streaming = o.onText !== undefined || o.stop.length > 0;
    const stream = new TextStream(decode);
    const stops = new StopMatcher(o.stop);
    const kept: number[] = []; // tokens up to the one that completed a stop string
    let firstToken: number | null = null;
    const emit = (delta: string) => {
      if (delta !== "") o.onText?.(delta);
    };
    const onTokens = (ids: number[]): boolean => {
      firstToken ??= seconds();
      if (streaming) {
        for (const id of ids) {
          kept.push(id);
          const delta = stream.push([id]);
          if (o.stop.length === 0) emit(delta);
          else {
            const r = stops.push(delta);
            emit(r.delta);
            if (r.stopped) return true;
          }
        }
      } else kept.push(...ids);
      return o.signal?.aborted ?? false;
    };
    const out = await this.#decoders.run({
      prompt,
      maxTokens: o.maxTokens,
      temperature: o.temperature,
      topP: o.topP,
      topK: o.topK,
      seed: o.seed,
      eosIds: [...new Set([...this.info.eosIds, ...o.stopTokenIds])],
      speculative: o.speculative ?? this.#speculativeByDefault,
      readEvery: o.readEvery,
      onTokens,
      onCycle: o.onCycle,
    });
    // A stop string wins even when the decoder also finished in that batch (eos / max tokens).
    let finishReason: GenerateResult["finishReason"] = stops.stopped
      ? "stop"
      : out.finishReason === "halted"
      ? "abort"
      : out.finishReason;
    let text: string;
    // A call that ran to its end reports the decoder's tokens (it may drop a prefill eos it had
    // already streamed); one ended by a stop string or the signal, what was read back up to then.
    const tokens = stops.stopped || out.finishReason === "halted" ? kept : out.tokens;
    if (!streaming) text = decode(tokens);
    else {
      if (!stops.stopped) {
        // The detokenizer's last held-back text (a broken final character) may still complete a stop.
        const tail = stream.flush();
        if (o.stop.length === 0) emit(tail);
        else {
          const r = stops.push(tail);
          emit(r.delta);
          if (r.stopped) finishReason = "stop";
          else emit(stops.flush());
        }
      }
      text = o.stop.length > 0 ? stops.text : stream.text;
    }
    const total = seconds();
    return {
      text,
      tokens,
      finishReason,
      usage: usage(tokens.length),
      ...(out.speculative ? { speculative: out.speculative } : {}),
      timing: { firstTokenSeconds: firstToken ?? total, totalSeconds: total },
    };
  }
}
