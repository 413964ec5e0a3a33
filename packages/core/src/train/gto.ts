/**
 * One GTO Phase II training step (arXiv 2509.22134 §3; the objective and its open choices are
 * documented in `gto_ref.ts`): the EAGLE-3 token loss of the current draft M plus ω·L_GTO, in one
 * optimizer step. Recorded with no CPU readback; the metrics are read only on request.
 *
 * Per step, for each sequence b of the batch (one submit each, since the small per-sequence uploads
 * reuse buffers):
 * 1. roots: K windows of m adjacent response roots (`sampleGroupRoots`, seeded by (seed, step, b));
 *    sequences with fewer windows are padded with copies of their first window, which get no weight;
 *    a sequence not ending in an eos was cut, and its roots keep a whole continuation before the cut
 *    (`rootSpanLength`); one ending in an eos caps greedy acceptance there (`continuationRows`);
 * 2. a target pass over the sequence (features + KV rows [0, S));
 * 3. the trees of M and of the frozen M₀ at those roots, verified (only the nodes that have a child:
 *    `GtoTreeBatch.verifyInternal`, one small readback each) and scored; their (P, 8) rows are copied
 *    into batch-level (B·P, 8) tensors (M₀'s only when debiasing).
 * Then for the batch:
 * 4. log M₀(Ŝ) of M's Ŝ: a forward-only M₀ TTT (8 steps, token loss weight 0) with unit hard weights
 *    on Ŝ's rows (`recordHardWeights`), summed back (`recordPathLogProbs`);
 * 5. advantages, ratios and coefficients (`recordGtoCoefficients`, L_GTO averaged over the real
 *    prefixes of the batch);
 * 6. M's TTT step (7 weighted steps + an 8th of weight 0 for depth-8 paths) with hard weights
 *    h = −ω·∂L_GTO/∂log M(Ŝ) on Ŝ's rows: the token loss and the surrogate share one gradient, one
 *    clip and one AdamW update. At M = M₀ every R is exactly 0, so A, the coefficients and the hard
 *    weights are 0 and the update equals the ω = 0 control's.
 * Rewards, advantages, trees and Ŝ carry no gradient (they are data to step 6).
 *
 * Cost note: the target runs three passes over each sequence (here, and in each TTT); reusing the
 * TTT's features and KV is the known next saving.
 * @module
 */
import type { GpuDevice } from "../gpu/device.ts";
import { BufferArena, writeTensor } from "../gpu/arena.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { Eagle3Draft } from "../model/eagle3.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { KvCache } from "../model/kv_cache.ts";
import { copyRows } from "../ops/elementwise.ts";
import { ShapeError } from "../errors.ts";
import { featureTaps } from "../speculative/verify.ts";
import { resolveTreeConfig, type TreeConfig } from "../tree/config.ts";
import { GTO_DEFAULTS, type RewardAggregate, type StdKind } from "./gto_ref.ts";
import {
  GTO_COEF_COLS,
  GTO_TREE_COLS,
  recordGtoCoefficients,
  recordHardWeights,
  recordPathLogProbs,
} from "./gto_ops.ts";
import {
  gtoRowLayout,
  type GtoStepMetrics,
  rootSpanLength,
  sampleGroupRoots,
  summarizeGtoStep,
} from "./gto_groups.ts";
import { GtoTreeBatch } from "./gto_trees.ts";
import { TTT_DEFAULT_STEPS, TTT_MAX_STEPS, type TttBatch, TttTrainer, type TttUpdateOptions } from "./ttt.ts";

/** Settings of a {@link GtoObjective} (defaults: the paper's, see `GTO_DEFAULTS`). */
export interface GtoOptions {
  /** Most sequences per batch. */
  maxBatch: number;
  /** Most tokens per sequence. */
  maxSeqLen: number;
  /** K: groups per sequence (default 16). */
  groups?: number;
  /** m: adjacent prefixes per group (default 8). */
  groupSize?: number;
  /** ω: weight of L_GTO (default 0.5; 0 = the equal-budget control). */
  omega?: number;
  /** ε (default 0.2). */
  clipEps?: number;
  /** δ (default 1e-4). */
  stdFloor?: number;
  /** Std kind (default sample). */
  std?: StdKind;
  /** Branch aggregation (default lse). */
  aggregate?: RewardAggregate;
  /** η (default 1). */
  eta?: number;
  /** R = r(M) − r(M₀) (default true). */
  debias?: boolean;
  /** The decode tree (default 60/7/10). */
  tree?: TreeConfig;
  /** Trees per verification forward (default: all P when P·N ≤ 1024, else the largest c with c·N ≡ 0 mod 64). */
  verifyChunk?: number;
  /** Run seed (root placement). */
  seed?: number;
  /**
   * Scale of the token loss L_token (default 1; 0 = L_GTO alone, the behaviour test's switch). The
   * per-step weights are tokenWeight·0.8^k.
   */
  tokenWeight?: number;
}

/** One GTO training step's sequences: the TTT batch plus where each sequence's response starts. */
export interface GtoBatch extends TttBatch {
  /** (B) prompt length of each sequence (roots lie in [promptLen, n − 2]). */
  promptLens: readonly number[];
  /** (B) real tokens of each sequence (≤ seqLen; the rest is padding). */
  lengths: readonly number[];
}

/** Default verification chunk: all trees when small, else the largest 64-row-aligned chunk ≤ 1024 rows. */
function defaultChunk(P: number, N: number): number {
  if (P * N <= 1024) return P;
  for (let c = Math.min(P, Math.floor(1024 / N)); c >= 1; c--) if ((c * N) % 64 === 0) return c;
  return P;
}

/** GTO Phase II for one (target, M, M₀) triple; every GPU buffer is allocated in {@link GtoObjective.create}. */
export class GtoObjective {
  /** M's TTT (8 steps, hard rows); its optimizer is the run's. */
  readonly ttt: TttTrainer;
  /** M₀'s forward-only TTT (hard rows, token loss weight 0). */
  readonly ttt0: TttTrainer;
  /** Trees per sequence P = K·m. */
  readonly prefixesPerSequence: number;
  /** The resolved settings. */
  readonly settings: Required<Omit<GtoOptions, "tree" | "verifyChunk">> & { verifyChunk: number };
  readonly #target: LlamaModel;
  readonly #draft: Eagle3Draft;
  readonly #draft0: Eagle3Draft;
  readonly #treesM: GtoTreeBatch;
  readonly #trees0: GtoTreeBatch;
  readonly #kv: KvCache;
  readonly #arena: BufferArena;
  readonly #gpu: GpuDevice;
  readonly #ids: Tensor; // (S) u32
  readonly #feats: Tensor; // (S, F)
  readonly #statsM: Tensor; // (B·P, 8)
  readonly #stats0: Tensor; // (B·P, 8)
  readonly #coef: Tensor; // (B·P, 8)
  readonly #logM0: Tensor; // (B·P)
  readonly #rows: Tensor; // (B·P) u32
  readonly #rowMap: Tensor; // (B·S) i32
  readonly #toDraft: Int32Array;
  readonly #eos: Set<number>;
  readonly #pathWidth: number;
  readonly #zeroWeights: Float32Array;
  #measured = false;
  #lastReal: boolean[] = [];
  #lastP = 0;

  private constructor(
    gpu: GpuDevice,
    target: LlamaModel,
    draft: Eagle3Draft,
    draft0: Eagle3Draft,
    opts: GtoOptions,
  ) {
    this.#gpu = gpu;
    this.#target = target;
    this.#draft = draft;
    this.#draft0 = draft0;
    const d = GTO_DEFAULTS;
    const cfg = resolveTreeConfig(opts.tree ?? {}, draft.config.draftVocabSize);
    const K = opts.groups ?? 16, m = opts.groupSize ?? d.groupSize;
    if (!Number.isInteger(K) || K < 1 || !Number.isInteger(m) || m < 1) {
      throw new ShapeError(`GtoObjective: groups ${K} and groupSize ${m} must be integers ≥ 1`);
    }
    const tw = opts.tokenWeight ?? 1;
    if (!(tw >= 0 && tw < Infinity)) {
      throw new ShapeError(`GtoObjective: tokenWeight ${tw} must be finite and ≥ 0`);
    }
    const P = this.prefixesPerSequence = K * m;
    const N = cfg.totalTokens;
    this.#pathWidth = cfg.pathWidth;
    this.#eos = new Set(target.config.eosTokenIds);
    const c = opts.verifyChunk ?? defaultChunk(P, N);
    this.settings = {
      maxBatch: opts.maxBatch,
      maxSeqLen: opts.maxSeqLen,
      groups: K,
      groupSize: m,
      omega: opts.omega ?? 0.5,
      clipEps: opts.clipEps ?? d.clipEps,
      stdFloor: opts.stdFloor ?? d.stdFloor,
      std: opts.std ?? d.std,
      aggregate: opts.aggregate ?? d.aggregate,
      eta: opts.eta ?? d.eta,
      debias: opts.debias ?? d.debias,
      seed: opts.seed ?? 0,
      tokenWeight: tw,
      verifyChunk: c,
    };
    if (draft0.config.draftVocabSize !== draft.config.draftVocabSize) {
      throw new ShapeError("GtoObjective: M and M₀ must share the draft vocabulary");
    }
    const B = opts.maxBatch, S = opts.maxSeqLen;
    const sizes = { maxBatch: B, maxSeqLen: S };
    const stepWeights = [...Array.from({ length: TTT_DEFAULT_STEPS }, (_, k) => tw * 0.8 ** k), 0];
    this.ttt = TttTrainer.create(gpu, target, draft, {
      ...sizes,
      steps: TTT_MAX_STEPS,
      stepWeights,
      hardLabels: true,
    });
    this.#zeroWeights = new Float32Array(this.ttt.hard!.weights.size);
    this.ttt0 = TttTrainer.create(gpu, target, draft0, {
      ...sizes,
      steps: TTT_MAX_STEPS,
      stepWeights: new Array(TTT_MAX_STEPS).fill(0),
      hardLabels: true,
      backward: false,
    });
    const tree = opts.tree;
    this.#treesM = new GtoTreeBatch(gpu, draft, { trees: P, maxSeqLen: S, tree, verifyChunk: c });
    this.#trees0 = new GtoTreeBatch(gpu, draft0, { trees: P, maxSeqLen: S, tree, verifyChunk: c });
    this.#kv = target.createKvCache(S + c * N, "gto.target_kv");
    const F = draft.config.auxLayerIds.length * target.config.hiddenSize;
    const a = this.#arena = new BufferArena(gpu, 4 * (S + S * F + B * P * 28 + B * S) + 10 * 256, "gto");
    this.#ids = a.alloc([S], "u32", "gto.ids");
    this.#feats = a.alloc([S, F], "f32", "gto.features");
    this.#statsM = a.alloc([B * P, 8], "f32", "gto.statsM");
    this.#stats0 = a.alloc([B * P, 8], "f32", "gto.stats0");
    this.#coef = a.alloc([B * P, 8], "f32", "gto.coef");
    this.#logM0 = a.alloc([B * P], "f32", "gto.logM0");
    this.#rows = a.alloc([B * P], "u32", "gto.rows");
    this.#rowMap = a.alloc([B * S], "i32", "gto.rowMap");
    const V = draft.config.vocabSize;
    this.#toDraft = new Int32Array(V).fill(-1);
    const d2t = draft.d2tHost;
    for (let i = 0; i < d2t.length; i++) this.#toDraft[i + d2t[i]] = i;
  }

  /**
   * Build the objective for the current draft `draft` (trained) and the frozen reference `draft0`
   * (same vocabulary; never updated). The target's maxBatch must hold c·N verification rows and
   * both drafts' maxBatch max(S, P·k) rows. Throws {@link ShapeError} on bad sizes.
   */
  static create(
    gpu: GpuDevice,
    target: LlamaModel,
    draft: Eagle3Draft,
    draft0: Eagle3Draft,
    opts: GtoOptions,
  ): GtoObjective {
    return new GtoObjective(gpu, target, draft, draft0, opts);
  }

  /**
   * Record (and submit, per sequence) one whole GTO step: trees, rewards, coefficients, and M's
   * TTT step with the surrogate's hard rows, updating the draft with `update`. `step` seeds the roots.
   * Awaits one small readback per sequence and draft (the grown trees, for internal-only
   * verification: `GtoTreeBatch.verifyInternal`); the metrics are not read. With ω = 0 and
   * `opts.metrics: false` only M's TTT step runs (the control's update is the same bit for bit; its
   * metrics are then unavailable): a trainer passes `metrics: true` on the steps it logs.
   */
  async step(
    rec: Recorder,
    batch: GtoBatch,
    step: number,
    update: TttUpdateOptions,
    opts: { metrics?: boolean } = {},
  ): Promise<void> {
    const { batch: B, seqLen: S } = batch;
    const st = this.settings, P = this.prefixesPerSequence, m = st.groupSize;
    if (B > st.maxBatch || S > st.maxSeqLen || batch.promptLens.length !== B || batch.lengths.length !== B) {
      throw new ShapeError(
        `GtoObjective: batch ${B}×${S} exceeds ${st.maxBatch}×${st.maxSeqLen} or is ragged`,
      );
    }
    this.#measured = true;
    if (st.omega === 0 && opts.metrics === false) {
      // The ω = 0 control without metrics: the surrogate's hard weights would be exactly +0 (−0·c + 0),
      // so trees, rewards and M₀'s pass change nothing in the update; skip them (tested bit for bit).
      writeTensor(this.#gpu, this.ttt.hard!.weights, this.#zeroWeights);
      rec.profileScope("gto.ttt");
      this.ttt.step(rec, batch, update);
      rec.profileScope("");
      this.#measured = false;
      return;
    }
    const roots: number[][] = [];
    const real: boolean[] = [];
    for (let b = 0; b < B; b++) {
      const n = batch.lengths[b];
      const tokens = Array.from({ length: n }, (_, t) => batch.ids[b * S + t]);
      // A sequence whose last token is an eos ended there; any other was cut (seq-len or the
      // regeneration's token limit): roots stop W − 2 earlier so no Ŝ runs into the cut.
      const ended = n > 0 && this.#eos.has(tokens[n - 1]);
      let rs = sampleGroupRoots({
        promptLen: batch.promptLens[b],
        length: rootSpanLength(n, ended, this.#pathWidth),
        groups: st.groups,
        groupSize: m,
        seed: st.seed,
        step,
        sequence: b,
      });
      roots.push(rs);
      for (let p = 0; p < P; p++) real.push(p < rs.length);
      if (rs.length === 0) continue; // no window fits: no trees for this sequence
      while (rs.length < P) rs = [...rs, ...rs.slice(0, m)]; // padding groups, never weighted
      rs = rs.slice(0, P);
      writeTensor(this.#gpu, this.#ids.rows(n), Uint32Array.from(tokens));
      rec.profileScope("gto.target");
      for (let at = 0; at < n; at += this.#target.maxBatch) {
        const T = Math.min(this.#target.maxBatch, n - at);
        this.#target.forward(rec, this.#kv, this.#ids, at, T, at, {
          logits: "none",
          capture: featureTaps(
            this.#draft.config.auxLayerIds,
            this.#target.config.hiddenSize,
            this.#feats,
            at,
          ),
        });
      }
      // Without debiasing M₀'s trees are not needed (log M₀(Ŝ) comes from its TTT below).
      const sides = [
        [this.#treesM, this.#draft, this.#statsM],
        [this.#trees0, this.#draft0, this.#stats0],
      ] as const;
      for (const [tb, dr, dst] of st.debias ? sides : sides.slice(0, 1)) {
        tb.setRoots(tokens, rs, ended);
        const side = tb === this.#treesM ? "M" : "M0";
        rec.profileScope(`gto.grow.${side}`);
        tb.recordGrow(rec, dr, this.#feats.rows(n), this.#ids);
        rec.profileScope(`gto.verify.${side}`);
        await tb.verifyInternal(rec, this.#target, this.#kv, st.eta);
        copyRows(
          rec,
          dst,
          { offset: b * P * 8, stride: 8 },
          tb.rewards.treeStats,
          { offset: 0, stride: 8 },
          P,
          8,
        );
        rec.submit(); // the next setRoots reuses the upload buffers
      }
    }
    // TTT row layout: real prefixes only (padding and empty sequences map to no row).
    const stride = this.ttt.rowStride(batch);
    const realRoots = roots.map((rs) => rs.slice(0, Math.min(rs.length, P)));
    const lay = gtoRowLayout(batch.ids, realRoots, {
      seqLen: S,
      steps: TTT_MAX_STEPS,
      stride,
      toDraft: (t) => this.#toDraft[t],
    });
    // Prefix index in the (B·P) batch order for each real prefix, and the row map into that order.
    const rowsBatch = new Uint32Array(B * P), rowMap = new Int32Array(B * S).fill(-1);
    let q = 0;
    realRoots.forEach((rs, b) => {
      rs.forEach((_, p) => {
        rowsBatch[b * P + p] = lay.rows[q];
        rowMap[lay.rows[q]] = b * P + p;
        q++;
      });
    });
    const realCount = q;
    writeTensor(this.#gpu, this.#rows.rows(B * P), rowsBatch);
    writeTensor(this.#gpu, this.#rowMap.rows(B * S), rowMap);
    for (const t of [this.ttt, this.ttt0]) writeTensor(this.#gpu, t.hard!.labels, lay.labels);
    const statsM = this.#statsM.rows(B * P), stats0 = this.#stats0.rows(B * P), coef = this.#coef.rows(B * P);
    // 4. log M₀(Ŝ): unit weights on M's Ŝ rows, M₀ forward only.
    rec.profileScope("gto.ttt0");
    recordHardWeights(rec, this.ttt0.hard!.weights, this.#rowMap, statsM, {
      steps: TTT_MAX_STEPS,
      stride,
      rows: B * S,
      lengthCol: GTO_TREE_COLS.length,
      valueCol: GTO_TREE_COLS.length,
      alpha: 0,
      beta: 1,
    });
    this.ttt0.recordGradients(rec, batch);
    recordPathLogProbs(rec, this.#logM0.rows(B * P), this.#rows.rows(B * P), this.ttt0.hard!.loss, {
      steps: TTT_MAX_STEPS,
      stride,
    });
    // 5. Coefficients over all B·P rows (padding rows are computed but never used).
    recordGtoCoefficients(rec, coef, statsM, st.debias ? stats0 : null, this.#logM0.rows(B * P), {
      groupSize: m,
      stdFloor: st.stdFloor,
      std: st.std,
      clipEps: st.clipEps,
      aggregate: st.aggregate,
      totalPrefixes: Math.max(realCount, 1),
    });
    // 6. M's step: hard weights −ω·coefficient on Ŝ's rows.
    recordHardWeights(rec, this.ttt.hard!.weights, this.#rowMap, coef, {
      steps: TTT_MAX_STEPS,
      stride,
      rows: B * S,
      lengthCol: GTO_COEF_COLS.length,
      valueCol: GTO_COEF_COLS.coeff,
      alpha: -st.omega,
      beta: 0,
    });
    rec.profileScope("gto.ttt");
    this.ttt.step(rec, batch, update);
    rec.profileScope("");
    this.#lastReal = real;
    this.#lastP = realCount;
  }

  /** Read the last step's GTO metrics (submits; call every `--log-every` steps only). */
  async readMetrics(rec: Recorder): Promise<GtoStepMetrics> {
    if (!this.#measured) {
      throw new ShapeError("GtoObjective.readMetrics: the last step ran with ω = 0 and metrics: false");
    }
    const n = this.#lastReal.length;
    const [tm, t0, cf] = await Promise.all([
      rec.readF32(this.#statsM.rows(n)),
      rec.readF32(this.#stats0.rows(n)),
      rec.readF32(this.#coef.rows(n)),
    ]);
    const keep = (a: Float32Array) => {
      const out: number[] = [];
      this.#lastReal.forEach((r, i) => r && out.push(...a.subarray(i * 8, i * 8 + 8)));
      return Float32Array.from(out);
    };
    const st = this.settings;
    return summarizeGtoStep(keep(tm), st.debias ? keep(t0) : null, keep(cf), {
      column: { lse: 0, max: 1, mean: 2 }[st.aggregate],
      groupSize: st.groupSize,
      stdFloor: st.stdFloor,
      totalPrefixes: Math.max(this.#lastP, 1),
    });
  }

  /** Release every GPU buffer this objective owns (not the models). */
  destroy(): void {
    this.ttt.destroy();
    this.ttt0.destroy();
    this.#treesM.destroy();
    this.#trees0.destroy();
    this.#kv.destroy();
    this.#arena.destroy();
  }
}
