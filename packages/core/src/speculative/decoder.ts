/**
 * GPU-resident tree speculative decoding (EAGLE-3 draft, dynamic draft tree, lossless verification).
 *
 * A cycle, all recorded into the open pass with no CPU round trip (lengths live in the state tensor,
 * see state.ts):
 * ```
 * draft extension   gather the verified features of the accepted path → fc → draft forward over the
 *                   Dp new pairs (feature of a_p, embedding of a_{p+1}); take row L (last pair)
 * tree growth       level 0 from the last pair's log-probs; D draft expansions of the k frontier nodes
 *                   (prefix + tree masks); re-rank → N nodes, ancestor mask, depths, paths
 * verification      one target forward over the N tree tokens at positions committed + depth, tree
 *                   attention on top of the KV cache, hidden taps captured
 * acceptance        T=0: longest path matching the target argmax (+ bonus); T>0: recursive rejection
 *                   sampling; tokens go into the ring, eos / max tokens set `done`
 * KV compaction     the accepted path's target KV rows move into place
 * ```
 * The first cycle replaces the draft extension by the prompt prefill (target + draft). The CPU encodes
 * `cyclesPerRead` cycles per submit and reads the state and ring back once per batch, double-buffered:
 * the next batch is encoded and submitted before the previous batch's readback is awaited. Cycles
 * after `done` are wasted GPU work and change nothing. An `AbortSignal` is checked after each batch.
 *
 * The phases are public functions over explicit buffers — tree growth `growDraftTree` (tree/grow.ts),
 * verification `verifyTree` (verify.ts), the pure T=0 path `greedyPath` (greedy_path.ts) — and this
 * class adds only what belongs to the loop: the state words, the token ring, the commit
 * (`commitPath`, `acceptSample`), KV compaction and the draft extension. The KV caches are values
 * (`KvCache`): passed in, or allocated once here.
 * @module
 */
import type { Recorder } from "../gpu/recorder.ts";
import { type DispatchProfile, perUnit } from "../gpu/profiler.ts";
import { BufferArena, writeTensor } from "../gpu/arena.ts";
import { Tensor } from "../gpu/tensor.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { Eagle3Draft } from "../model/eagle3.ts";
import type { KvCache } from "../model/kv_cache.ts";
import { ShapeError } from "../errors.ts";
import { argmax, filteredProbs, sample } from "../ops/select.ts";
import { copyRows } from "../ops/elementwise.ts";
import { gatherRows, TreeBuffers } from "../tree/tree_ops.ts";
import { type ResolvedTreeConfig, resolveTreeConfig, type TreeConfig } from "../tree/config.ts";
import { allocGrowScratch, growDraftTree, type GrowScratch, growScratchBytes } from "../tree/grow.ts";
import { acceptSample, commitPath } from "./accept.ts";
import { ReadBatches } from "../decode/read_batches.ts";
import { submitsRunInline } from "../gpu/software_threads.ts";
import { kvCompactAll } from "./kv_compact.ts";
import { greedyPath } from "./greedy_path.ts";
import { featureTaps, verifyTree } from "./verify.ts";
import { STATE, STATE_WORDS } from "./state.ts";
import { type CycleTrace, decodeTraces, recordTrace, traceWords } from "./trace.ts";
import type { FinishReason, SamplingOptions } from "../decode/generate.ts";

/** Cycles whose accepted length is logged individually. */
const LOG_CAP = 4096;

/** The two KV caches of a speculative decoder (target: L layers, draft: one layer). */
export interface SpecKvCaches {
  /** The target's cache (`target.createKvCache(rows)`). */
  target: KvCache;
  /** The draft's cache (`draft.createKvCache(rows)`). */
  draft: KvCache;
}

/** KV rows a generation needs, from {@link SpecDecoder.requiredRows}. */
export interface SpecKvRows {
  /** Target cache rows: prompt + new tokens + one verified tree + a path. */
  target: number;
  /** Draft cache rows: prompt + new tokens + the tree's k·depth expansion rows + a path. */
  draft: number;
}

/** Options of {@link SpecDecoder}. */
export interface SpecDecoderOptions {
  /** Tree shape (EAGLE-3 defaults: totalTokens 60, depth 7, topK 10). */
  tree?: TreeConfig;
  /** Most eos ids honoured (default 8). */
  maxEos?: number;
  /**
   * The KV caches to decode in (the caller's; size them with {@link SpecDecoder.requiredRows}).
   * Default: allocated here with `target.maxSeqLen` / `draft.maxSeqLen` rows, freed by `destroy`.
   */
  kv?: SpecKvCaches;
  /** Most `cyclesPerRead` with `onCycle` tracing (sizes the trace buffer; default 32). */
  maxTraceCycles?: number;
}

/** Options of {@link SpecDecoder.generate}. */
export interface SpecGenerateOptions extends SamplingOptions {
  /** Most new tokens. */
  maxTokens: number;
  /** Token ids that end generation (not included in the output). */
  eosIds?: readonly number[];
  /**
   * Cycles encoded per submit / readback. Default: 2, doubling up to 16 while a batch takes under
   * ~110 ms (decode/read_batches.ts); with `onCycle` at most `maxTraceCycles`.
   */
  cyclesPerRead?: number;
  /** Called with each batch of new tokens as soon as it is read back. */
  onTokens?: (ids: number[]) => void;
  /** Checked after each readback batch: once aborted, generation ends there (finishReason `abort`). */
  signal?: AbortSignal;
  /**
   * Opt-in per-cycle trace (tree, accepted path, bonus, committed tokens), called for each cycle of a
   * batch as the batch is read back, before that batch's `onTokens`. Costs one small copy dispatch
   * per cycle and rides on the batch's readback; needs cyclesPerRead ≤ `maxTraceCycles`.
   */
  onCycle?: (cycle: CycleTrace) => void;
}

/** What {@link SpecDecoder.generate} returns. */
export interface SpecGenerateResult {
  /** New tokens, without the stop token. */
  tokens: number[];
  /** Prompt length. */
  promptTokens: number;
  /** `stop` (eos), `length` (maxTokens) or `abort` (the signal). */
  finishReason: FinishReason;
  /** Verification cycles run. */
  cycles: number;
  /** τ: new tokens per verification cycle, bonus included (Σ_L hist[L]·(L+1) / cycles). */
  acceptanceLength: number;
  /** Fraction of cycles that accepted a draft at depth j = 1..Dp−1. */
  acceptedPerPosition: number[];
  /** Cycles per accepted length 0..Dp−1. */
  acceptHistogram: number[];
  /** Drafts accepted in each cycle, in order (the first 4096 cycles). */
  acceptLengths: number[];
  /** Seconds until the first batch of cycles was read back (prefill + first cycles). */
  prefillSeconds: number;
  /** Seconds of the whole call. */
  totalSeconds: number;
}

/** Per-phase cost of one cycle, from {@link SpecDecoder.profile}. */
export interface CycleProfile {
  /** Draft extension + tree growth + re-rank, ms per cycle. */
  draftingMs: number;
  /** The target's forward over the tree, ms per cycle. */
  verificationMs: number;
  /** Acceptance + KV compaction (full cycle − the two above), ms. */
  bookkeepingMs: number;
  /** A full cycle, ms. */
  cycleMs: number;
  /** Dispatches per phase and per full cycle. */
  dispatches: { drafting: number; verification: number; cycle: number };
  /** With `kernels: true`: GPU ms and dispatches per kernel per cycle, scoped by phase. */
  kernels?: DispatchProfile;
}

/** Speculative decoder for one target + draft pair; all buffers are allocated once here. */
export class SpecDecoder {
  /** The target model. */
  readonly target: LlamaModel;
  /** The draft model. */
  readonly draft: Eagle3Draft;
  /** The resolved tree shape. */
  readonly tree: ResolvedTreeConfig;
  /** Dp: path length bound (root + deepest accepted draft). */
  readonly pathWidth: number;
  /** The KV caches decoded in. */
  readonly kv: Readonly<SpecKvCaches>;
  readonly #ownsKv: boolean;
  readonly #rec: Recorder;
  readonly #arena: BufferArena;
  readonly #tb: TreeBuffers;
  readonly #grow: GrowScratch;
  readonly #state: Tensor; // (STATE_WORDS) u32
  readonly #ring: Tensor; // (S) u32
  readonly #promptFeats: Tensor; // (S, nTaps·Ht)
  readonly #verifyFeats: Tensor; // (N, nTaps·Ht)
  readonly #draftFeats: Tensor; // (Dp, nTaps·Ht)
  readonly #fused: Tensor; // (max(Dp, draft chunk), H)
  readonly #am: Tensor; // (N) u32
  readonly #probs: Tensor; // (N, V) f32
  readonly #path: Tensor; // (Dp) u32
  readonly #pathP: Tensor; // (1, Dp) u32 view of #path (greedyPath's (P, Dp))
  readonly #result: Tensor; // (1, 2) u32 [accepted drafts, bonus]
  readonly #seq: Tensor; // (Dp + 1) u32
  readonly #hist: Tensor; // (2·Dp + 1 + LOG_CAP) u32: histograms, then per-cycle accept lengths
  readonly #eos: Tensor; // (maxEos) u32
  readonly #lastHidden: Tensor; // (1, H)
  readonly #lastLogits: Tensor; // (1, Vd)
  readonly #trace: Tensor; // (maxTraceCycles, traceWords(N, Dp)) u32
  readonly #maxEos: number;

  /**
   * KV rows a generation of `maxTokens` after a `promptLen`-token prompt needs with `tree` (size the
   * caches with it: `target.createKvCache(rows.target)`, `draft.createKvCache(rows.draft)`).
   */
  static requiredRows(tree: TreeConfig, promptLen: number, maxTokens: number): SpecKvRows {
    const t = resolveTreeConfig(tree);
    const n = promptLen + maxTokens;
    return { target: n + t.totalTokens + t.pathWidth, draft: n + t.topK * t.depth + t.pathWidth };
  }

  /** Allocate every buffer of the loop for `target` + `draft` (and the KV caches unless given). */
  constructor(target: LlamaModel, draft: Eagle3Draft, rec: Recorder, opts: SpecDecoderOptions = {}) {
    const tc = target.config, dc = draft.config;
    if (dc.vocabSize !== tc.vocabSize) {
      throw new ShapeError(`draft vocab_size ${dc.vocabSize} differs from the target's ${tc.vocabSize}`);
    }
    if (dc.targetHiddenSize !== tc.hiddenSize) {
      throw new ShapeError(
        `draft target_hidden_size ${dc.targetHiddenSize} differs from the target's ${tc.hiddenSize}`,
      );
    }
    this.target = target;
    this.draft = draft;
    this.#rec = rec;
    this.#maxEos = opts.maxEos ?? 8;
    this.#tb = new TreeBuffers(target.gpu, { ...opts.tree, draftVocab: dc.draftVocabSize }, draft.d2t);
    const tree = this.tree = this.#tb.config;
    const Dp = this.pathWidth = tree.pathWidth;
    const N = tree.totalTokens, k = tree.topK;
    if (N > target.maxBatch) {
      throw new ShapeError(`tree of ${N} tokens exceeds the target's maxBatch ${target.maxBatch}`);
    }
    if (k > draft.maxBatch || Dp > draft.maxBatch) {
      throw new ShapeError(`draft maxBatch ${draft.maxBatch} is below the tree width ${Math.max(k, Dp)}`);
    }
    if (N > 64) throw new ShapeError(`tree of ${N} tokens: acceptance supports at most 64`);
    if (opts.kv) {
      opts.kv.target.expect(tc.numLayers, tc.numKvHeads * tc.headDim, 0, "SpecDecoder target");
      opts.kv.draft.expect(1, dc.numKvHeads * dc.headDim, 0, "SpecDecoder draft");
    }
    this.#ownsKv = !opts.kv;
    this.kv = opts.kv ?? { target: target.createKvCache(), draft: draft.createKvCache() };
    const S = this.kv.target.capacity, F = dc.auxLayerIds.length * tc.hiddenSize, H = dc.hiddenSize;
    const V = tc.vocabSize;
    const fusedRows = Math.max(Dp, Math.min(draft.maxBatch, target.maxBatch));
    const maxTrace = opts.maxTraceCycles ?? 32;
    if (!Number.isInteger(maxTrace) || maxTrace < 1) {
      throw new ShapeError(`SpecDecoder: maxTraceCycles ${maxTrace} must be an integer ≥ 1`);
    }
    const floats = S * F + N * F + Dp * F + fusedRows * H + N * V + 2 * dc.draftVocabSize + H + S +
      maxTrace * traceWords(N, Dp);
    this.#arena = new BufferArena(
      target.gpu,
      4 * (floats + 4 * Dp + N + 64) + 32 * 256 + growScratchBytes(draft, tree),
      "spec",
    );
    const a = this.#arena;
    this.#state = a.alloc([STATE_WORDS], "u32", "spec.state");
    this.#ring = a.alloc([S], "u32", "spec.ring");
    this.#promptFeats = a.alloc([S, F], "f32", "spec.promptFeats");
    this.#verifyFeats = a.alloc([N, F], "f32", "spec.verifyFeats");
    this.#draftFeats = a.alloc([Dp, F], "f32", "spec.draftFeats");
    this.#fused = a.alloc([fusedRows, H], "f32", "spec.fused");
    this.#am = a.alloc([N], "u32", "spec.argmax");
    this.#probs = a.alloc([N, V], "f32", "spec.probs");
    this.#path = a.alloc([Dp], "u32", "spec.path");
    this.#pathP = this.#path.reshape([1, Dp]);
    this.#result = a.alloc([1, 2], "u32", "spec.acceptResult");
    this.#seq = a.alloc([Dp + 1], "u32", "spec.seq");
    this.#hist = a.alloc([2 * Dp + 1 + LOG_CAP], "u32", "spec.hist");
    this.#eos = a.alloc([this.#maxEos], "u32", "spec.eos");
    this.#lastHidden = a.alloc([1, H], "f32", "spec.lastHidden");
    this.#lastLogits = a.alloc([1, dc.draftVocabSize], "f32", "spec.lastLogits");
    this.#grow = allocGrowScratch(a, draft, tree);
    this.#trace = a.alloc([maxTrace, traceWords(N, Dp)], "u32", "spec.trace");
  }

  /**
   * Record the prompt prefill: target over the prompt, the first token (argmax, or sampled at T>0 —
   * twice with the same counter-based u, into the ring and into the state), draft over the prompt pairs.
   */
  #encodePrefill(P: number, opts: SpecGenerateOptions): void {
    const rec = this.#rec, target = this.target, draft = this.draft;
    for (let at = 0; at < P; at += target.maxBatch) {
      const T = Math.min(target.maxBatch, P - at);
      const logits = target.forward(rec, this.kv.target, this.#ring, at, T, at, {
        logits: at + T === P ? "last" : "none",
        capture: featureTaps(draft.config.auxLayerIds, target.config.hiddenSize, this.#promptFeats, at),
      });
      if (logits) {
        const temperature = opts.temperature ?? 0;
        for (const [out, outOffset] of [[this.#ring, P], [this.#state, STATE.root]] as const) {
          if (temperature <= 0) argmax(rec, out, logits, { outOffset });
          else {
            sample(rec, out, logits, {
              temperature,
              topK: opts.topK ?? 0,
              topP: opts.topP ?? 1,
              seed: opts.seed ?? 0,
              step: 0xffffffff, // a counter no verification cycle uses
              outOffset,
            });
          }
        }
      }
    }
    const F = this.#promptFeats.shape[1], H = draft.config.hiddenSize;
    const chunk = this.#fused.shape[0];
    for (let at = 0; at < P; at += chunk) {
      const T = Math.min(chunk, P - at);
      const feats = new Tensor(
        this.#promptFeats.buffer,
        this.#promptFeats.offset + 4 * at * F,
        [T, F],
        "f32",
        "promptFeats.chunk",
      );
      const fused = this.#fused.rows(T);
      draft.fuse(rec, fused, feats);
      const last = at + T === P;
      const r = draft.forward(rec, {
        kv: this.kv.draft,
        hidden: fused,
        ids: this.#ring,
        idsOffset: at + 1,
        T,
        cacheRow: at,
        pos0: at,
        kvLen: at + T,
        logits: "none",
      });
      if (last) {
        copyRows(
          rec,
          this.#lastHidden,
          { offset: 0, stride: H },
          r.out,
          { offset: (T - 1) * H, stride: H },
          1,
          H,
        );
        draft.head(rec, this.#lastLogits, this.#lastHidden); // only the last row's logits are used
      }
    }
  }

  /** Record the draft extension with the last cycle's accepted tokens (rows draftBase ..). */
  #encodeDraftExtension(): void {
    const rec = this.#rec, draft = this.draft, Dp = this.pathWidth;
    gatherRows(rec, this.#draftFeats, this.#verifyFeats, this.#path);
    const fused = this.#fused.rows(Dp);
    draft.fuse(rec, fused, this.#draftFeats);
    const base = { meta: this.#state, index: STATE.draftBase };
    const r = draft.forward(rec, {
      kv: this.kv.draft,
      hidden: fused,
      ids: this.#seq,
      idsOffset: 1,
      T: Dp,
      cacheRow: 0,
      dynamicRow: base,
      pos0: 0,
      dynamicPos: base,
      kvLen: Dp,
      dynamicLen: base,
      logits: "none",
    });
    // Only the last accepted row's logits seed the next tree: lm_head on 1 row, not Dp.
    gatherRows(rec, this.#lastHidden, r.out, this.#state, STATE.lastAccept);
    draft.head(rec, this.#lastLogits, this.#lastHidden);
  }

  /** Record tree growth from the last pair (draft rows draftLen ..) and the final re-rank. */
  #encodeTree(): void {
    growDraftTree(this.#rec, this.draft, this.#tb, {
      kv: this.kv.draft,
      lastHidden: this.#lastHidden,
      lastLogits: this.#lastLogits,
      prefix: { meta: this.#state, index: STATE.draftLen },
      root: { meta: this.#state, index: STATE.root },
      scratch: this.#grow,
    });
  }

  /** Record verification (greedy: with the target argmax); returns the tree logits (N, V). */
  #encodeVerification(greedy: boolean): Tensor {
    return verifyTree(this.#rec, this.target, this.#tb, {
      kv: this.kv.target,
      committed: { meta: this.#state, index: STATE.committed },
      features: { layers: this.draft.config.auxLayerIds, dst: this.#verifyFeats },
      argmax: greedy ? this.#am : undefined,
    });
  }

  /** Record verification, acceptance (the pure path + the loop's commit) and KV compaction. */
  #encodeVerify(opts: SpecGenerateOptions, numEos: number): void {
    const logits = this.#encodeVerification((opts.temperature ?? 0) <= 0);
    this.#encodeAccept(logits, opts, numEos);
  }

  /** Record acceptance of the verified tree (`logits` (N, V)) and KV compaction. */
  #encodeAccept(logits: Tensor, opts: SpecGenerateOptions, numEos: number): void {
    const rec = this.#rec, tb = this.#tb;
    const temperature = opts.temperature ?? 0;
    const loop = {
      tokens: tb.tokens,
      state: this.#state,
      ring: this.#ring,
      path: this.#path,
      seq: this.#seq,
      hist: this.#hist,
      eos: this.#eos,
    };
    if (temperature <= 0) {
      greedyPath(rec, {
        argmax: this.#am,
        tokens: tb.tokens,
        paths: tb.retrieve,
        leafCount: { meta: tb.info, index: 0 },
        path: this.#pathP,
        result: this.#result,
      });
      commitPath(rec, { ...loop, result: this.#result }, numEos);
    } else {
      filteredProbs(rec, this.#probs, logits, { temperature, topK: opts.topK ?? 0, topP: opts.topP ?? 1 });
      acceptSample(
        rec,
        { ...loop, probs: this.#probs, parents: tb.parents },
        this.pathWidth,
        numEos,
        opts.seed ?? 0,
      );
    }
    kvCompactAll(rec, this.kv.target, this.#state, this.#path); // every layer, one dispatch
  }

  /**
   * Generate up to `maxTokens` tokens after `prompt`. T=0 output is token-identical to plain greedy
   * decoding; at T>0 it is distributed as plain sampling with the same temperature / top-k / top-p.
   */
  async generate(prompt: readonly number[], opts: SpecGenerateOptions): Promise<SpecGenerateResult> {
    const t0 = performance.now();
    const rec = this.#rec, target = this.target;
    const P = prompt.length, maxTokens = opts.maxTokens;
    const Dp = this.pathWidth;
    if (P === 0) throw new ShapeError("generate: the prompt is empty (needs at least one token)");
    if (!Number.isInteger(maxTokens) || maxTokens < 1) {
      throw new ShapeError(`generate: maxTokens=${maxTokens} must be ≥ 1`);
    }
    const need = SpecDecoder.requiredRows(this.tree, P, maxTokens);
    if (need.target > this.kv.target.capacity || need.draft > this.kv.draft.capacity) {
      throw new ShapeError(
        `generate: prompt (${P}) + max tokens (${maxTokens}) + tree needs ${need.target} target / ${need.draft} draft ` +
          `KV rows; the caches hold ${this.kv.target.capacity} / ${this.kv.draft.capacity}`,
      );
    }
    const V = target.config.vocabSize;
    for (const id of prompt) {
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new ShapeError(`generate: prompt token ${id} is outside the vocabulary (${V})`);
      }
    }
    const eos = [...new Set(opts.eosIds ?? [])];
    if (eos.length > this.#maxEos) {
      throw new ShapeError(`generate: ${eos.length} eos ids; at most ${this.#maxEos}`);
    }
    const K = opts.cyclesPerRead;
    if (K !== undefined && (!Number.isInteger(K) || K < 1)) {
      throw new ShapeError(`generate: cyclesPerRead=${K} must be an integer ≥ 1`);
    }
    const tracing = opts.onCycle !== undefined;
    const maxTrace = this.#trace.shape[0];
    if (tracing && K !== undefined && K > maxTrace) {
      throw new ShapeError(
        `generate: cyclesPerRead=${K} with onCycle exceeds maxTraceCycles ${this.#trace.shape[0]}`,
      );
    }
    if ((opts.temperature ?? 0) > 0) {
      const seed = opts.seed ?? 0;
      if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
        throw new ShapeError(`generate: seed must be a u32`);
      }
    }

    if (opts.signal?.aborted) {
      return {
        tokens: [],
        promptTokens: P,
        finishReason: "abort",
        cycles: 0,
        acceptanceLength: 0,
        acceptedPerPosition: new Array(Dp - 1).fill(0),
        acceptHistogram: new Array(Dp).fill(0),
        acceptLengths: [],
        prefillSeconds: 0,
        totalSeconds: (performance.now() - t0) / 1000,
      };
    }
    const gpu = target.gpu;
    const state = new Uint32Array(STATE_WORDS);
    state[STATE.committed] = P;
    state[STATE.outLen] = 1;
    state[STATE.done] = maxTokens <= 1 ? 1 : 0;
    state[STATE.draftLen] = P;
    state[STATE.promptLen] = P;
    state[STATE.maxTokens] = maxTokens;
    writeTensor(gpu, this.#state, state);
    writeTensor(gpu, this.#ring, new Uint32Array(prompt));
    writeTensor(gpu, this.#hist, new Uint32Array(2 * Dp + 1 + LOG_CAP));
    writeTensor(gpu, this.#eos, new Uint32Array(this.#maxEos).map((_, i) => eos[i] ?? 0));

    const ringOut = new Tensor(
      this.#ring.buffer,
      this.#ring.offset + 4 * P,
      [maxTokens],
      "u32",
      "ring.output",
    );
    // Cycles per batch: fixed when given, else growing (see ReadBatches); each batch remembers its size.
    const batches = new ReadBatches({ fixed: K, first: 2, max: tracing ? Math.min(16, maxTrace) : 16 });
    let encoded = 0; // cycles encoded so far
    const encodeBatch = (first: boolean): { k: number; reads: Promise<ArrayBuffer[]> } => {
      const k = batches.size;
      encoded += k;
      for (let c = 0; c < k; c++) {
        if (first && c === 0) this.#encodePrefill(P, opts);
        else this.#encodeDraftExtension();
        this.#encodeTree();
        this.#encodeVerify(opts, eos.length);
        if (tracing) {
          const tb = this.#tb;
          recordTrace(
            rec,
            {
              tokens: tb.tokens,
              parents: tb.parents,
              depths: tb.depths,
              path: this.#path,
              seq: this.#seq,
              state: this.#state,
            },
            this.#trace,
            c,
          );
        }
      }
      const reads = [rec.readback(this.#state), rec.readback(ringOut), rec.readback(this.#hist)];
      if (tracing) reads.push(rec.readback(this.#trace.rows(k)));
      rec.submit();
      return { k, reads: Promise.all(reads) };
    };

    const tokens: number[] = [];
    let finish: FinishReason = "length";
    let aborted = false;
    let prefillSeconds = 0;
    const inline = submitsRunInline(this.target.gpu);
    let inflight = encodeBatch(true);
    let tRead = performance.now();
    let st = state, hist = new Uint32Array(2 * Dp + 1 + LOG_CAP);
    let traced = { cycles: 0, outLen: 1 }; // cycles traced so far; output length before the next cycle
    for (let batch = 0;; batch++) {
      // Guard against a loop that makes no progress (a bug, never expected): each cycle emits ≥ 1 token.
      // With inline dispatch the first batch is read before the next is encoded (see generate.ts).
      const ahead = !(inline && batch === 0);
      let next = ahead && encoded < maxTokens + 2 ? encodeBatch(false) : null;
      const [sBuf, rBuf, hBuf, tBuf] = await inflight.reads;
      rec.checkErrors();
      const now = performance.now();
      if (batch === 0) prefillSeconds = (now - t0) / 1000;
      else batches.next(now - tRead);
      tRead = now;
      st = new Uint32Array(sBuf);
      hist = new Uint32Array(hBuf);
      const ring = new Uint32Array(rBuf);
      const outLen = Math.min(st[STATE.outLen], maxTokens);
      const fresh = outLen > tokens.length ? Array.from(ring.subarray(tokens.length, outLen)) : [];
      tokens.push(...fresh);
      if (tracing) {
        const d = decodeTraces(new Uint32Array(tBuf), inflight.k, this.tree.totalTokens, Dp, tokens, traced);
        traced = d;
        for (const t of d.traces) opts.onCycle!(t);
      }
      if (fresh.length > 0) opts.onTokens?.(fresh);
      if (st[STATE.done] || opts.signal?.aborted) {
        aborted = !st[STATE.done];
        if (next) await next.reads; // let the GPU finish before the caller reuses the buffers
        rec.checkErrors();
        break;
      }
      if (!ahead && encoded < maxTokens + 2) next = encodeBatch(false);
      if (!next) {
        throw new Error(`speculative decoding made no progress after ${batch + 1} batches (state ${st})`);
      }
      inflight = next;
    }
    finish = aborted ? "abort" : st[STATE.outLen] < maxTokens ? "stop" : "length";
    if (maxTokens <= 1 && tokens.length === 1 && eos.includes(tokens[0])) {
      tokens.length = 0; // done before any cycle: the prefill's token was eos
      finish = "stop";
    }
    const cycles = st[STATE.cycles];
    // τ = new tokens per cycle, bonus included: Σ_L hist[L]·(L + 1) / cycles.
    let emitted = 0;
    for (let L = 0; L < Dp; L++) emitted += hist[L] * (L + 1);
    return {
      tokens,
      promptTokens: P,
      finishReason: finish,
      cycles,
      acceptanceLength: cycles > 0 ? emitted / cycles : 0,
      acceptedPerPosition: Array.from(
        { length: Dp - 1 },
        (_, j) => (cycles > 0 ? hist[Dp + 2 + j] / cycles : 0),
      ),
      acceptHistogram: Array.from(hist.subarray(0, Dp)),
      acceptLengths: Array.from(hist.subarray(2 * Dp + 1, 2 * Dp + 1 + Math.min(cycles, LOG_CAP))),
      prefillSeconds,
      totalSeconds: (performance.now() - t0) / 1000,
    };
  }

  /**
   * Cost of a cycle's phases (benchmarks): after a prefill and one cycle on `prompt`, each phase is
   * recorded `reps` times into one submit and timed from submit to `onSubmittedWorkDone`, less the
   * completion latency of an empty round trip (Deno's ~11 ms, measured here). Drafting = draft extension + tree
   * growth + re-rank; verification = the target's tree forward; a full cycle adds acceptance and KV
   * compaction (bookkeeping = full − drafting − verification). Also counts dispatches per phase.
   * `kernels: true` (needs `timestamp-query`) adds per-kernel GPU ms of a full cycle, scoped by phase
   * ("draft extension", "tree growth", "verification", "bookkeeping"), from `reps` more cycles.
   */
  async profile(
    prompt: readonly number[],
    opts: { reps?: number; temperature?: number; kernels?: boolean } = {},
  ): Promise<CycleProfile> {
    const reps = opts.reps ?? 20;
    const rec = this.#rec;
    const gen = {
      maxTokens: reps * this.pathWidth + 8,
      eosIds: [],
      temperature: opts.temperature ?? 0,
      cyclesPerRead: 1,
    };
    await this.generate(prompt, { ...gen, maxTokens: 2 }); // warm-up: compiles every pipeline
    // Deno resolves onSubmittedWorkDone a fixed ~11 ms after the GPU is done (docs/engine.md §2); an
    // empty round trip measures it (fastest of 3: load only adds time) and it is subtracted, so a
    // phase's figure is its GPU time, not that latency / reps (2.9 ms at reps 4, which made small
    // trees look 2× dearer than they are on the CPU adapter).
    const latency = await rec.completionLatencyMs();
    const time = async (encode: () => void): Promise<{ ms: number; dispatches: number }> => {
      const d0 = rec.stats.dispatches;
      const t = performance.now();
      for (let r = 0; r < reps; r++) encode();
      await rec.finish();
      const ms = Math.max(0, performance.now() - t - latency) / reps;
      return { ms, dispatches: (rec.stats.dispatches - d0) / reps };
    };
    // Put the decoder into a mid-generation state: prefill + one cycle, not done.
    const state = new Uint32Array(STATE_WORDS);
    const P = prompt.length;
    state[STATE.committed] = P;
    state[STATE.outLen] = 1;
    state[STATE.draftLen] = P;
    state[STATE.promptLen] = P;
    state[STATE.maxTokens] = gen.maxTokens;
    writeTensor(this.target.gpu, this.#state, state);
    writeTensor(this.target.gpu, this.#ring, new Uint32Array(prompt));
    this.#encodePrefill(P, gen);
    this.#encodeTree();
    this.#encodeVerify(gen, 0);
    await rec.finish();
    const drafting = await time(() => {
      this.#encodeDraftExtension();
      this.#encodeTree();
    });
    const verification = await time(() => this.#encodeVerification(false));
    const cycle = await time(() => {
      this.#encodeDraftExtension();
      this.#encodeTree();
      this.#encodeVerify(gen, 0);
    });
    let kernels: DispatchProfile | undefined;
    if (opts.kernels) {
      // Per-kernel GPU time of the same full cycle, each dispatch timestamped (profiler.ts).
      rec.startProfile();
      for (let r = 0; r < reps; r++) {
        rec.profileScope("draft extension");
        this.#encodeDraftExtension();
        rec.profileScope("tree growth");
        this.#encodeTree();
        rec.profileScope("verification");
        const logits = this.#encodeVerification((gen.temperature ?? 0) <= 0);
        rec.profileScope("bookkeeping");
        this.#encodeAccept(logits, gen, 0);
      }
      kernels = perUnit(await rec.stopProfile(), reps);
    }
    return {
      ...(kernels ? { kernels } : {}),
      draftingMs: drafting.ms,
      verificationMs: verification.ms,
      bookkeepingMs: Math.max(0, cycle.ms - drafting.ms - verification.ms),
      cycleMs: cycle.ms,
      dispatches: {
        drafting: drafting.dispatches,
        verification: verification.dispatches,
        cycle: cycle.dispatches,
      },
    };
  }

  /** Internal buffers, for diagnostics and tests (read them only after a generate call). */
  get buffers(): { probs: Tensor; tree: TreeBuffers; state: Tensor; path: Tensor; seq: Tensor } {
    return { probs: this.#probs, tree: this.#tb, state: this.#state, path: this.#path, seq: this.#seq };
  }

  /** Free the decoder's own buffers and the KV caches it allocated (not the models, not given caches). */
  destroy(): void {
    this.#tb.destroy();
    this.#arena.destroy();
    if (this.#ownsKv) {
      this.kv.target.destroy();
      this.kv.draft.destroy();
    }
  }
}
