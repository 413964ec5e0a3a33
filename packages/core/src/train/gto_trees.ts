/**
 * The decode-time draft trees of P prefixes of one sequence, grown, verified and scored in a few
 * batched dispatches — the tree half of a GTO Phase II step (arXiv 2509.22134 §3). Every tree is
 * built exactly as the speculative decoder builds it at that prefix (same tree kernels, same draft
 * layer; `gto_pipeline_ref.ts` is the CPU oracle), but P trees share each dispatch:
 *
 * ```
 * draft prefix:  fc(features) → draft forward over the S pairs (causal) into draft KV rows [0, S);
 *                rows r_p − 1 gathered → (P, H) hidden, (P, Vd) logits
 * level 0:       treeLevel(logits, 0) (top-k with the log-softmax fused in)
 * expansion e:   hidden = prevOut[outIds]; draft forward of the P·k frontier rows at KV rows
 *                S + e·P·k.., positions r_p + e, segmented attention (tree p sees draft rows [0, r_p)
 *                plus its own expanded ancestors); treeLevel(logits, e + 1)
 * finalize:      roots x[r_p]
 * verification:  chunks of c trees: target forward of c·N rows at KV rows S.., positions r_p + depth,
 *                segmented attention (tree p sees target rows [0, r_p) plus its own ancestors); logits
 *                → rewards (gto.wgsl). `verifyInternal` (what training uses): only the nodes that have
 *                a child, compacted to c·I rows per chunk after one small readback of the trees
 * ```
 * No tree sees any row at or after its root in the caller's caches (the segmented mode scans only
 * [0, r_p) plus the tree's own keys), so nothing after the root leaks into a tree, its probabilities
 * or its reward. Everything is allocated once in the constructor; a step uploads four small arrays.
 * @module
 */
import type { GpuDevice } from "../gpu/device.ts";
import { BufferArena, writeTensor } from "../gpu/arena.ts";
import type { Recorder } from "../gpu/recorder.ts";
import { Tensor } from "../gpu/tensor.ts";
import type { Eagle3Draft } from "../model/eagle3.ts";
import type { LlamaModel } from "../model/llama.ts";
import type { KvCache } from "../model/kv_cache.ts";
import { ShapeError } from "../errors.ts";
import { resolveTreeConfig, type TreeConfig } from "../tree/config.ts";
import { gatherRows, TreeBuffers, treeFinalize, treeLevel } from "../tree/tree_ops.ts";
import { GtoRewardBuffers, recordTreePositions, recordTreeRewards } from "./gto_ops.ts";
import { continuationRows } from "./gto_groups.ts";

/** Sizes of a {@link GtoTreeBatch}. */
export interface GtoTreeBatchOptions {
  /** P: trees (prefixes) per batch. */
  trees: number;
  /** Most tokens of a sequence (S). */
  maxSeqLen: number;
  /** Tree shape (default 60/7/10, as at decode time). */
  tree?: TreeConfig;
  /** Trees per verification forward (default all P; keep c·N ≡ 0 mod 64 when c < P). */
  verifyChunk?: number;
}

/** P draft trees of one sequence with their verification and rewards (see the module comment). */
export class GtoTreeBatch {
  /** P. */
  readonly trees: number;
  /** S max. */
  readonly maxSeqLen: number;
  /** Trees per verification forward. */
  readonly verifyChunk: number;
  /** The P trees. */
  readonly tb: TreeBuffers;
  /** Their rewards (filled by {@link GtoTreeBatch.recordVerify}). */
  readonly rewards: GtoRewardBuffers;
  /** The draft's cache: prefix rows [0, S), then D·P·k expansion rows. */
  readonly draftKv: KvCache;
  /** (P) u32: r_p (the prefix length each tree sees, in both caches). */
  readonly prefix: Tensor;
  /** (P) u32: root tokens x[r_p]. */
  readonly rootTokens: Tensor;
  /** (P, W − 1) u32: data continuations (for Ŝ). */
  readonly continuation: Tensor;
  readonly #lastRows: Tensor; // (P) u32: r_p − 1
  readonly #fused: Tensor; // (S, H)
  readonly #lastHidden: Tensor; // (P, H)
  readonly #lastLogits: Tensor; // (P, Vd)
  readonly #posE: Tensor; // (P·k) u32
  readonly #posV: Tensor; // (c·N) u32
  readonly #cTokens: Tensor; // (P·N) u32: internal-only verification rows (chunk k from t0·N)
  readonly #cPos: Tensor; // (P·N) u32
  readonly #cMask: Tensor; // (P·N·⌈N/32⌉) u32
  readonly #rowMap: Tensor; // (P·N) i32: node → its logits row in the chunk, −1 for leaves
  readonly #arena: BufferArena;
  readonly #gpu: GpuDevice;
  #roots: number[] = [];
  #seqLen = 0;

  /**
   * Allocate for `draft` (maxBatch ≥ max(S, P·k)) and a target of vocabulary V. Throws
   * {@link ShapeError} on inconsistent sizes.
   */
  constructor(gpu: GpuDevice, draft: Eagle3Draft, opts: GtoTreeBatchOptions) {
    const cfg = resolveTreeConfig(opts.tree ?? {}, draft.config.draftVocabSize);
    const P = opts.trees, S = opts.maxSeqLen;
    const { topK: k, depth: D, totalTokens: N, pathWidth: W } = cfg;
    const c = opts.verifyChunk ?? P;
    if (!Number.isInteger(P) || P < 1) throw new ShapeError(`GtoTreeBatch: trees must be ≥ 1, got ${P}`);
    if (!Number.isInteger(S) || S < 2) throw new ShapeError(`GtoTreeBatch: maxSeqLen must be ≥ 2, got ${S}`);
    if (!Number.isInteger(c) || c < 1 || c > P) {
      throw new ShapeError(`GtoTreeBatch: verifyChunk ${c} must be in [1, trees = ${P}]`);
    }
    if (c < P && (c * N) % 64 !== 0) {
      throw new ShapeError(
        `GtoTreeBatch: verifyChunk·N = ${c * N} must be a multiple of 64 (256-byte views)`,
      );
    }
    if (draft.maxBatch < Math.max(S, P * k)) {
      throw new ShapeError(
        `GtoTreeBatch: the draft's maxBatch ${draft.maxBatch} is below max(S, P·k) = ${Math.max(S, P * k)}`,
      );
    }
    this.#gpu = gpu;
    this.trees = P;
    this.maxSeqLen = S;
    this.verifyChunk = c;
    const { hiddenSize: H, draftVocabSize: Vd } = draft.config;
    this.tb = new TreeBuffers(gpu, { ...cfg, draftVocab: Vd, trees: P }, draft.d2t);
    this.rewards = new GtoRewardBuffers(gpu, { trees: P, totalTokens: N });
    this.draftKv = draft.createKvCache(S + D * P * k, "gto.draft_kv");
    const wN = Math.ceil(N / 32);
    const words = 4 * (3 * P + P * (W - 1) + S * H + P * (H + Vd) + P * k + c * N + P * N * (3 + wN)) +
      20 * 256;
    const a = this.#arena = new BufferArena(gpu, words, "gto.trees");
    this.prefix = a.alloc([P], "u32", "gto.prefix");
    this.rootTokens = a.alloc([P], "u32", "gto.rootTokens");
    this.continuation = a.alloc([P, W - 1], "u32", "gto.continuation");
    this.#lastRows = a.alloc([P], "u32", "gto.lastRows");
    this.#fused = a.alloc([S, H], "f32", "gto.fused");
    this.#lastHidden = a.alloc([P, H], "f32", "gto.lastHidden");
    this.#lastLogits = a.alloc([P, Vd], "f32", "gto.lastLogits");
    this.#posE = a.alloc([P * k], "u32", "gto.posE");
    this.#posV = a.alloc([c * N], "u32", "gto.posV");
    this.#cTokens = a.alloc([P * N], "u32", "gto.internalTokens");
    this.#cPos = a.alloc([P * N], "u32", "gto.internalPositions");
    this.#cMask = a.alloc([P * N * wN], "u32", "gto.internalMask");
    this.#rowMap = a.alloc([P * N], "i32", "gto.internalRowMap");
  }

  /**
   * Upload this step's roots (P indices into `tokens`, each in [1, S − 1]) of a sequence of S =
   * tokens.length ≤ maxSeqLen tokens: prefixes, root tokens, last-pair rows and continuations.
   * `ended`: the text ends with the last token (the eos the target stopped on), so the greedy
   * accepted length stops there ({@link continuationRows}); default false (unknown past the end).
   */
  setRoots(tokens: ArrayLike<number>, roots: readonly number[], ended = false): void {
    const S = tokens.length, P = this.trees;
    if (S < 2 || S > this.maxSeqLen) {
      throw new ShapeError(`GtoTreeBatch: ${S} tokens, at most ${this.maxSeqLen}`);
    }
    if (roots.length !== P) throw new ShapeError(`GtoTreeBatch: ${roots.length} roots for ${P} trees`);
    for (const r of roots) {
      if (!Number.isInteger(r) || r < 1 || r >= S) {
        throw new ShapeError(`GtoTreeBatch: root ${r} outside [1, ${S})`);
      }
    }
    const gpu = this.#gpu;
    writeTensor(gpu, this.prefix, Uint32Array.from(roots));
    writeTensor(gpu, this.rootTokens, Uint32Array.from(roots, (r) => tokens[r]));
    writeTensor(gpu, this.#lastRows, Uint32Array.from(roots, (r) => r - 1));
    writeTensor(
      gpu,
      this.continuation,
      continuationRows(tokens, roots, this.tb.config.pathWidth - 1, ended),
    );
    this.#roots = [...roots];
    this.#seqLen = S;
  }

  /**
   * Record the draft prefix pass and the growth of all P trees. `features` (S, n·Ht) f32: the target
   * features of the sequence (hidden states entering the draft's aux layers), `ids` (≥ idsOffset + S)
   * u32: its token ids on the GPU.
   */
  recordGrow(rec: Recorder, draft: Eagle3Draft, features: Tensor, ids: Tensor, idsOffset = 0): void {
    const S = this.#seqLen, P = this.trees;
    if (S === 0) throw new ShapeError("GtoTreeBatch: setRoots before recordGrow");
    const { topK: k, depth: D } = this.tb.config;
    const tb = this.tb;
    const fused = this.#fused.rows(S);
    draft.fuse(rec, fused, features.rows(S));
    // Pair t = (fc(g_t), x_{t+1}) at position t; the last pair of tree p is row r_p − 1.
    const pre = draft.forward(rec, {
      kv: this.draftKv,
      hidden: fused,
      ids,
      idsOffset: idsOffset + 1,
      T: S - 1,
      cacheRow: 0,
      kvLen: S - 1,
      logits: "all",
    });
    gatherRows(rec, this.#lastHidden, pre.out, this.#lastRows);
    gatherRows(rec, this.#lastLogits, pre.logits!, this.#lastRows);
    // Per-row top-k on the raw logits with the log-softmax fused in (bit for bit logSoftmax → topk).
    treeLevel(rec, tb, this.#lastLogits, 0, { fromLogits: true });
    let prevOut = this.#lastHidden;
    for (let e = 0; e < D; e++) {
      recordTreePositions(rec, this.#posE, { meta: this.prefix, index: 0 }, { perTree: k, add: e });
      const r = draft.forward(rec, {
        kv: this.draftKv,
        hidden: prevOut,
        hiddenRows: tb.outIds, // each frontier node continues its parent's row (as growDraftTree)
        ids: tb.frontierTokens,
        T: P * k,
        cacheRow: this.maxSeqLen + e * P * k,
        positions: this.#posE,
        kvLen: this.draftKv.capacity,
        segmented: {
          prefix: { meta: this.prefix, index: 0 },
          queriesPerGroup: k,
          mask: tb.draftMasks[e],
          treeLen: k * (e + 1),
          treeBase: this.maxSeqLen,
          blockSize: k,
          blockStride: P * k,
        },
        logits: "all",
      });
      treeLevel(rec, tb, r.logits!, e + 1, { fromLogits: true });
      prevOut = r.out;
    }
    treeFinalize(rec, tb, { meta: this.rootTokens, index: 0 });
  }

  /**
   * Record the verification of all P trees against `targetKv`, whose rows [0, S) hold the sequence's
   * target keys/values (the caller's target pass); tree rows are written at rows S.. (capacity ≥
   * maxSeqLen + c·N; target maxBatch ≥ c·N), then the rewards (η = `eta`).
   */
  recordVerify(rec: Recorder, target: LlamaModel, targetKv: KvCache, eta = 1): void {
    const P = this.trees, c = this.verifyChunk, N = this.tb.config.totalTokens;
    const base = this.maxSeqLen, tb = this.tb;
    if (targetKv.capacity < base + c * N) {
      throw new ShapeError(
        `GtoTreeBatch: the target cache (${targetKv.capacity}) needs ${base + c * N} rows`,
      );
    }
    const words = Math.ceil(N / 32);
    for (let t0 = 0; t0 < P; t0 += c) {
      const cnt = Math.min(c, P - t0), rows = cnt * N;
      const pos = this.#posV.rows(rows);
      recordTreePositions(rec, pos, { meta: this.prefix, index: t0 }, {
        perTree: N,
        offsets: { tensor: tb.depths, offset: t0 * N },
      });
      const m = tb.treeMask;
      const mask = new Tensor(m.buffer, m.offset + 4 * t0 * N * words, [rows, words], "u32", m.name);
      const logits = target.forward(rec, targetKv, tb.tokens, t0 * N, rows, base, {
        logits: "all",
        positions: pos,
        segmented: {
          prefix: { meta: this.prefix, index: t0 },
          queriesPerGroup: N,
          mask,
          treeLen: N,
          treeBase: base,
        },
      })!; // (cnt·N, V)
      recordTreeRewards(rec, this.rewards, tb, logits, this.continuation, { eta, tree0: t0 });
    }
  }

  /**
   * Verify and score all P trees like {@link recordVerify}, but run the target only on the nodes that
   * have a child: a leaf's logits would score its children (it has none) and its key is seen by no
   * other node, so dropping it changes no reward, p_T, Ŝ or greedy length (up to the f32 rounding of
   * a different row count; tested against {@link recordVerify}). Reads the trees back (one wait),
   * compacts each chunk to I = its largest internal-node count rows per tree (padding rows see only
   * themselves), uploads their tokens, positions (r_p + depth) and ancestor masks, then records c·I
   * rows per chunk instead of c·N. On tiny with the bundled draft a 60/7/10 tree has ~20 internal
   * nodes (max ~30 per 32 trees): about half the verification work.
   */
  async verifyInternal(rec: Recorder, target: LlamaModel, targetKv: KvCache, eta = 1): Promise<void> {
    const P = this.trees, c = this.verifyChunk, N = this.tb.config.totalTokens;
    const base = this.maxSeqLen, tb = this.tb, wN = Math.ceil(N / 32);
    if (targetKv.capacity < base + c * N) {
      throw new ShapeError(
        `GtoTreeBatch: the target cache (${targetKv.capacity}) needs ${base + c * N} rows`,
      );
    }
    const [parRaw, tokRaw] = await Promise.all([rec.read(tb.parents), rec.read(tb.tokens)]);
    const parents = new Int32Array(parRaw.buffer, parRaw.byteOffset, P * N);
    const tokens = new Uint32Array(tokRaw.buffer, tokRaw.byteOffset, P * N);
    const cTok = new Uint32Array(P * N), cPos = new Uint32Array(P * N);
    const cMask = new Uint32Array(P * N * wN), map = new Int32Array(P * N).fill(-1);
    const perChunk: number[] = [];
    const depth = new Int32Array(N), idx = new Int32Array(N);
    for (let t0 = 0; t0 < P; t0 += c) {
      const cnt = Math.min(c, P - t0);
      const lists: number[][] = [];
      for (let q = 0; q < cnt; q++) {
        const off = (t0 + q) * N, hasChild = new Uint8Array(N);
        for (let j = 1; j < N; j++) hasChild[parents[off + j]] = 1;
        lists.push(Array.from({ length: N }, (_, j) => j).filter((j) => hasChild[j]));
      }
      const I = Math.max(1, ...lists.map((l) => l.length)), wI = Math.ceil(I / 32);
      perChunk.push(I);
      lists.forEach((list, q) => {
        const p = t0 + q, off = p * N, r = this.#roots[p];
        depth[0] = 0;
        for (let j = 1; j < N; j++) depth[j] = depth[parents[off + j]] + 1; // parents precede children
        list.forEach((j, i) => idx[j] = i);
        for (let i = 0; i < I; i++) {
          const row = q * I + i, at = t0 * N + row, m = t0 * N * wN + row * wI;
          if (i >= list.length) { // padding: the root token at the root position, seeing itself only
            cTok[at] = tokens[off];
            cPos[at] = r;
            cMask[m + (i >> 5)] |= 1 << (i & 31);
            continue;
          }
          const j = list[i];
          cTok[at] = tokens[off + j];
          cPos[at] = r + depth[j];
          map[off + j] = row;
          for (let a = j; a >= 0; a = a === 0 ? -1 : parents[off + a]) {
            cMask[m + (idx[a] >> 5)] |= 1 << (idx[a] & 31); // ancestors-or-self (all internal)
          }
        }
      });
    }
    const gpu = this.#gpu;
    writeTensor(gpu, this.#cTokens, cTok);
    writeTensor(gpu, this.#cPos, cPos);
    writeTensor(gpu, this.#cMask, cMask);
    writeTensor(gpu, this.#rowMap, map);
    const view = (t: Tensor, off: number, shape: number[], dtype: "u32" | "i32") =>
      new Tensor(t.buffer, t.offset + 4 * off, shape, dtype, t.name);
    perChunk.forEach((I, k) => {
      const t0 = k * c, cnt = Math.min(c, P - t0), rows = cnt * I;
      const logits = target.forward(rec, targetKv, this.#cTokens, t0 * N, rows, base, {
        logits: "all",
        positions: view(this.#cPos, t0 * N, [rows], "u32"),
        segmented: {
          prefix: { meta: this.prefix, index: t0 },
          queriesPerGroup: I,
          mask: view(this.#cMask, t0 * N * wN, [rows, Math.ceil(I / 32)], "u32"),
          treeLen: I,
          treeBase: base,
        },
      })!; // (cnt·I, V)
      recordTreeRewards(rec, this.rewards, tb, logits, this.continuation, {
        eta,
        tree0: t0,
        rows: { map: this.#rowMap, perTree: I },
      });
    });
  }

  /** The roots of the last {@link setRoots}. */
  get roots(): readonly number[] {
    return this.#roots;
  }

  /** Release the GPU memory. */
  destroy(): void {
    this.tb.destroy();
    this.rewards.destroy();
    this.draftKv.destroy();
    this.#arena.destroy();
  }
}
