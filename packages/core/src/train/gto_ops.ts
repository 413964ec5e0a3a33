/**
 * GPU recording of the GTO Phase II reward pipeline (`kernels/gto.wgsl`): from the target's
 * verification logits of P batched draft trees ({@link TreeBuffers} with `trees: P`) to per-node
 * target log-probabilities, per-branch expected accepted lengths, tree rewards, Ŝ / l, and from the
 * rewards of the current and the frozen reference draft to advantages, ratios and the coefficient of
 * each prefix's log M(Ŝ) in the gradient — all without CPU readback, so a training step records them
 * and reads the few metrics back only every `--log-every` steps. The semantics are those of the f64
 * reference `gto_ref.ts` (equation numbers and the open choices are documented there).
 *
 * ```
 * // per verification chunk of `count` trees (logits (count·N, V), tree tree0 + q at rows q·N):
 * recordTreeRewards(rec, gb, tb, logits, cont, { eta, tree0 })      // 3 dispatches
 * // once per step, M's and M₀'s rewards (P, 8) and log M₀(Ŝ) (P):
 * recordGtoCoefficients(rec, coef, gbM.treeStats, gbM0.treeStats, logM0, opts) // 1 dispatch
 * ```
 * @module
 */
import { GTO_WGSL } from "@gto/kernels";
import type { GpuDevice } from "../gpu/device.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { BufferArena } from "../gpu/arena.ts";
import { ShapeError } from "../errors.ts";
import { grid1d } from "../ops/dispatch.ts";
import { memoKernel, rowGrid } from "../ops/kernel_memo.ts";
import type { TreeBuffers } from "../tree/tree_ops.ts";
import type { DynamicValue } from "../ops/attention.ts";
import { GTO_DEFAULTS, type RewardAggregate, type StdKind } from "./gto_ref.ts";

/** Columns of {@link GtoRewardBuffers.treeStats} (one row of 8 f32 per tree). */
export const GTO_TREE_COLS = {
  /** r = (1/η)·log Σ exp(η·L) (Eq. 5). */
  lse: 0,
  /** max_b L_b. */
  max: 1,
  /** mean_b L_b. */
  mean: 2,
  /** l = |Ŝ| by data-path acceptance. */
  length: 3,
  /** log M(Ŝ): the draft's cumulative log-prob of Ŝ's last node (0 when l = 0). */
  logM: 4,
  /** Greedy (T = 0) accepted length, bonus not counted. */
  greedyLength: 5,
  /** Number of branches (leaves). */
  branches: 6,
  /** Node index of Ŝ's last node (0 = root when l = 0). */
  lastNode: 7,
} as const;

/** Columns of the coefficient output of {@link recordGtoCoefficients} (one row of 8 f32 per prefix). */
export const GTO_COEF_COLS = {
  /** R = r(M) − r(M₀) (or r(M) without debiasing). */
  reward: 0,
  /** A, the group-standardised advantage. */
  advantage: 1,
  /** s = exp((log M(Ŝ) − log M₀(Ŝ))/max(l, 1)). */
  ratio: 2,
  /** ∂L_GTO/∂log M(Ŝ) (0 when clipped or l = 0). */
  coeff: 3,
  /** min(s·A, clip(s, 1 ± ε)·A). */
  term: 4,
  /** 1 when the clipped branch is active. */
  clipped: 5,
  /** l. */
  length: 6,
  /** log M(Ŝ) − log M₀(Ŝ). */
  logRatio: 7,
} as const;

const AGG_INDEX: Record<RewardAggregate, number> = { lse: 0, max: 1, mean: 2 };

/**
 * Outputs of {@link recordTreeRewards} for P trees of N nodes (allocated once from an arena this
 * object owns; call {@link GtoRewardBuffers.destroy}):
 * - `rowStats` (P·N, 2) u32: per verification row, [bits of logsumexp (f32), argmax];
 * - `nodes` (P·N, 2) u32: per node, [bits of log p_T (f32; 0 for the root), greedy agreement 0/1];
 * - `branches` (P·(N−1)) f32: L per retrieve row (0 past the leaf count);
 * - `treeStats` (P, 8) f32: columns {@link GTO_TREE_COLS}.
 */
export class GtoRewardBuffers {
  /** P. */
  readonly trees: number;
  /** N. */
  readonly totalTokens: number;
  /** (P·N, 2) u32. */
  readonly rowStats: Tensor;
  /** (P·N, 2) u32. */
  readonly nodes: Tensor;
  /** (P·(N−1)) f32. */
  readonly branches: Tensor;
  /** (P, 8) f32. */
  readonly treeStats: Tensor;
  readonly #arena: BufferArena;

  /** Allocate for `trees` trees of `totalTokens` nodes. Throws {@link ShapeError} on bad sizes. */
  constructor(gpu: GpuDevice, opts: { trees: number; totalTokens: number }) {
    const { trees: P, totalTokens: N } = opts;
    if (!Number.isInteger(P) || P < 1 || !Number.isInteger(N) || N < 2 || N > 256) {
      throw new ShapeError(`gto: trees ${P} must be ≥ 1 and totalTokens ${N} in [2, 256]`);
    }
    this.trees = P;
    this.totalTokens = N;
    const arena = this.#arena = new BufferArena(gpu, 4 * P * (5 * N + 8) + 4 * 256, "gto");
    this.rowStats = arena.alloc([P * N, 2], "u32", "gto.rowStats");
    this.nodes = arena.alloc([P * N, 2], "u32", "gto.nodes");
    this.branches = arena.alloc([P * (N - 1)], "f32", "gto.branches");
    this.treeStats = arena.alloc([P, 8], "f32", "gto.treeStats");
  }

  /** Release the buffers (no recorded work may still use them). */
  destroy(): void {
    this.#arena.destroy();
  }
}

/** Options of {@link recordTreeRewards}. */
export interface TreeRewardOptions {
  /** η of the log-sum-exp reward (default 1). */
  eta?: number;
  /** First tree of this verification chunk (default 0). */
  tree0?: number;
  /**
   * Internal-only verification: the chunk's logits hold `perTree` rows per tree (its nodes that have
   * a child, compacted, then padding), and `map` (P·N) i32 gives each node's logits row within the
   * chunk (−1 for leaves, whose logits no reward needs). Default: N rows per tree, node i at row i.
   */
  rows?: { map: Tensor; perTree: number };
}

/**
 * Record the reward pipeline of trees [tree0, tree0 + count) of `tb`: `logits` (count·N, V) f32 are
 * the target's verification logits (tree tree0 + q's node i at row q·N + i: the next-token logits
 * after node i given the prefix and node i's ancestors-or-self; with `opts.rows`, only the nodes
 * that have a child, at the rows the map gives); `cont` (P, W − 1) u32 holds each
 * tree's data continuation x_{r+1}, x_{r+2}, … (NONE = 0xffffffff past the sequence end), W =
 * pathWidth. Writes rows of `gb` for those trees. Three dispatches (row_lse, node_logprob,
 * tree_reward). Throws {@link ShapeError} on mismatched shapes.
 */
export function recordTreeRewards(
  rec: Recorder,
  gb: GtoRewardBuffers,
  tb: TreeBuffers,
  logits: Tensor,
  cont: Tensor,
  opts: TreeRewardOptions = {},
): void {
  const P = tb.trees, N = tb.config.totalTokens, W = tb.config.pathWidth;
  const eta = opts.eta ?? GTO_DEFAULTS.eta;
  const tree0 = opts.tree0 ?? 0;
  if (gb.trees !== P || gb.totalTokens !== N) {
    throw new ShapeError(
      `recordTreeRewards: reward buffers (${gb.trees}, ${gb.totalTokens}) ≠ trees (${P}, ${N})`,
    );
  }
  if (!(eta > 0) || !Number.isFinite(eta)) {
    throw new ShapeError(`recordTreeRewards: eta must be > 0, got ${eta}`);
  }
  const per = opts.rows?.perTree ?? N;
  if (!Number.isInteger(per) || per < 1 || per > N) {
    throw new ShapeError(`recordTreeRewards: rows.perTree ${per} must be in [1, ${N}]`);
  }
  if (logits.shape.length !== 2 || logits.shape[0] % per !== 0) {
    throw new ShapeError(
      `recordTreeRewards: ${logits.name} must be (count·${per}, V), got [${logits.shape}]`,
    );
  }
  const count = logits.shape[0] / per, V = logits.shape[1];
  logits.expectShape([count * per, V], "f32"); // (count·per, V)
  opts.rows?.map.expectShape([P * N], "i32"); // (P·N)
  if (!Number.isInteger(tree0) || tree0 < 0 || count < 1 || tree0 + count > P) {
    throw new ShapeError(`recordTreeRewards: trees [${tree0}, ${tree0 + count}) outside [0, ${P})`);
  }
  cont.expectShape([P, W - 1], "u32"); // (P, W − 1)
  const kern = (entry: string, storage: number, params: string) =>
    memoKernel(rec, entry, () => ({
      name: entry,
      code: GTO_WGSL,
      entryPoint: entry,
      storage: new Array(storage).fill("rw"),
      params,
    }));
  const rows = count * per;
  rec.dispatch(kern("row_lse", 2, "uuu"), [logits, gb.rowStats], [V, rows, tree0 * N], rowGrid(rec, rows));
  rec.dispatch(
    kern("node_logprob", 6, "uuuuu"),
    [logits, gb.rowStats, tb.tokens, tb.parents, gb.nodes, opts.rows?.map ?? tb.parents],
    [V, count, N, tree0, opts.rows ? 1 : 0],
    grid1d(count * N),
  );
  rec.dispatch(
    kern("tree_reward", 8, "uuuuuuf"),
    [gb.nodes, tb.tokens, tb.parents, tb.retrieve, cont, tb.state, gb.branches, gb.treeStats],
    [N, W, W - 1, tb.layout.size, tb.layout.nodeScore, tree0, eta],
    [count],
  );
}

/** Options of {@link recordGtoCoefficients} (defaults: {@link GTO_DEFAULTS}). */
export interface GtoCoefficientOptions {
  /** m: prefixes per advantage group (P must be a multiple). */
  groupSize?: number;
  /** δ. */
  stdFloor?: number;
  /** Standard deviation kind. */
  std?: StdKind;
  /** ε. */
  clipEps?: number;
  /** Which reward column R uses. */
  aggregate?: RewardAggregate;
  /**
   * Prefixes L_GTO is averaged over (default P; larger when one batch spans several dispatches,
   * smaller when some rows are padding that is never used).
   */
  totalPrefixes?: number;
}

/**
 * Record advantages and gradient coefficients for P prefixes: `treesM` (P, 8) f32 are the current
 * draft's tree rows (columns {@link GTO_TREE_COLS}), `treesM0` (P, 8) the frozen reference draft's
 * at the same prefixes (null: no debiasing, R = r(M)), `logM0` (P) f32 = log M₀(Ŝ) of M's Ŝ. Writes
 * `out` (P, 8) f32, columns {@link GTO_COEF_COLS}. One dispatch. Throws {@link ShapeError} on bad
 * shapes or options.
 */
export function recordGtoCoefficients(
  rec: Recorder,
  out: Tensor,
  treesM: Tensor,
  treesM0: Tensor | null,
  logM0: Tensor,
  opts: GtoCoefficientOptions = {},
): void {
  const P = treesM.shape[0];
  treesM.expectShape([P, 8], "f32"); // (P, 8)
  treesM0?.expectShape([P, 8], "f32"); // (P, 8)
  logM0.expectShape([P], "f32"); // (P)
  out.expectShape([P, 8], "f32"); // (P, 8)
  const m = opts.groupSize ?? GTO_DEFAULTS.groupSize;
  const delta = opts.stdFloor ?? GTO_DEFAULTS.stdFloor;
  const eps = opts.clipEps ?? GTO_DEFAULTS.clipEps;
  const std = opts.std ?? GTO_DEFAULTS.std;
  const agg = opts.aggregate ?? GTO_DEFAULTS.aggregate;
  const total = opts.totalPrefixes ?? P;
  if (!Number.isInteger(m) || m < 1 || P % m !== 0) {
    throw new ShapeError(`gto: group size ${m} must be a positive divisor of the ${P} prefixes`);
  }
  if (!(delta >= 0)) throw new ShapeError(`gto: stdFloor must be ≥ 0, got ${delta}`);
  if (!(eps >= 0)) throw new ShapeError(`gto: clipEps must be ≥ 0, got ${eps}`);
  if (!(agg in AGG_INDEX)) throw new ShapeError(`gto: aggregate must be lse, max or mean, got ${agg}`);
  if (std !== "sample" && std !== "population") throw new ShapeError(`gto: std must be sample or population`);
  if (!Number.isInteger(total) || total < 1) {
    throw new ShapeError(`gto: totalPrefixes ${total} must be an integer ≥ 1`);
  }
  const kern = memoKernel(rec, "gto_coeff", () => ({
    name: "gto_coeff",
    code: GTO_WGSL,
    entryPoint: "gto_coeff",
    storage: ["rw", "rw", "rw", "rw"],
    params: "uuuufufu",
  }));
  rec.dispatch(
    kern,
    [treesM, treesM0 ?? treesM, logM0, out],
    [P, m, AGG_INDEX[agg], treesM0 ? 1 : 0, delta, std === "sample" ? 1 : 0, eps, total],
    grid1d(P),
  );
}

/**
 * Record absolute RoPE positions for rows of P trees: `out` (count·per) u32, row i of tree q =
 * `prefix.meta[prefix.index + q] + (offsets ? offsets.tensor[offsets.offset + i] : add)`. Verification
 * of a chunk: per = N, offsets = the trees' depths (root x_r at position r, a node at r + depth);
 * draft expansion e: per = k, add = e (a frontier node at r + e). One dispatch. Throws
 * {@link ShapeError} on bad shapes.
 */
export function recordTreePositions(
  rec: Recorder,
  out: Tensor,
  prefix: DynamicValue,
  opts: { perTree: number; offsets?: { tensor: Tensor; offset: number }; add?: number },
): void {
  const rows = out.size;
  out.expectShape([rows], "u32"); // (count·per)
  const per = opts.perTree, add = opts.add ?? 0;
  if (!Number.isInteger(per) || per < 1 || rows % per !== 0) {
    throw new ShapeError(`recordTreePositions: perTree ${per} must divide the ${rows} rows of ${out.name}`);
  }
  prefix.meta.expectShape([-1], "u32");
  if (!Number.isInteger(prefix.index) || prefix.index < 0 || prefix.index + rows / per > prefix.meta.size) {
    throw new ShapeError(
      `recordTreePositions: ${rows / per} prefixes from ${prefix.index} outside ${prefix.meta.name}`,
    );
  }
  const offs = opts.offsets;
  if (offs) {
    offs.tensor.expectShape([-1], ["i32", "u32"]);
    if (!Number.isInteger(offs.offset) || offs.offset < 0 || offs.offset + rows > offs.tensor.size) {
      throw new ShapeError(
        `recordTreePositions: offsets ${offs.offset} + ${rows} outside ${offs.tensor.name}`,
      );
    }
  }
  if (!Number.isInteger(add) || add < 0) {
    throw new ShapeError(`recordTreePositions: add must be ≥ 0, got ${add}`);
  }
  const kern = memoKernel(rec, "tree_positions", () => ({
    name: "tree_positions",
    code: GTO_WGSL,
    entryPoint: "tree_positions",
    storage: ["rw", "rw", "rw"],
    params: "uuuuuu",
  }));
  rec.dispatch(
    kern,
    [prefix.meta, offs?.tensor ?? prefix.meta, out],
    [rows, per, prefix.index, offs ? 1 : 0, offs?.offset ?? 0, add],
    grid1d(rows),
  );
}

/**
 * Record the TTT hard-row weights of a GTO step: `out` (steps·stride) f32 (a trainer's
 * `hard.weights`), `rowMap` (≥ rows) i32 = the prefix whose root row (b·S + r − 1) each TTT row is,
 * or −1; `src` (P, 8) f32. Row t of step k gets alpha·src[p, valueCol] + beta when k < src[p,
 * lengthCol], else 0. The current draft's surrogate gradient: src = {@link recordGtoCoefficients}'
 * output, valueCol = {@link GTO_COEF_COLS}.coeff, lengthCol = .length, alpha = −ω, beta = 0. A frozen
 * draft's path log-probs: src = the current draft's tree rows, lengthCol = {@link GTO_TREE_COLS}.length,
 * alpha = 0, beta = 1. One dispatch.
 */
export function recordHardWeights(
  rec: Recorder,
  out: Tensor,
  rowMap: Tensor,
  src: Tensor,
  o: {
    steps: number;
    stride: number;
    rows: number;
    lengthCol: number;
    valueCol: number;
    alpha: number;
    beta: number;
  },
): void {
  const n = o.steps * o.stride;
  out.expectShape([-1], "f32");
  rowMap.expectShape([-1], "i32");
  src.expectShape([-1, 8], "f32"); // (P, 8)
  if (!Number.isInteger(n) || n < 1 || out.size < n || o.rows > o.stride || rowMap.size < o.rows) {
    throw new ShapeError(
      `recordHardWeights: steps ${o.steps} × stride ${o.stride} (rows ${o.rows}) do not fit ${out.name} ` +
        `[${out.shape}] / ${rowMap.name} [${rowMap.shape}]`,
    );
  }
  for (const c of [o.lengthCol, o.valueCol]) {
    if (!Number.isInteger(c) || c < 0 || c > 7) {
      throw new ShapeError(`recordHardWeights: column ${c} outside 0..7`);
    }
  }
  const kern = memoKernel(rec, "gto_hard_weights", () => ({
    name: "gto_hard_weights",
    code: GTO_WGSL,
    entryPoint: "gto_hard_weights",
    storage: ["rw", "rw", "rw"],
    params: "uuuuuff",
  }));
  rec.dispatch(
    kern,
    [rowMap, src, out],
    [o.steps, o.stride, o.rows, o.lengthCol, o.valueCol, o.alpha, o.beta],
    grid1d(n),
  );
}

/**
 * Record out[p] = −Σ_{k<steps} hardLoss[k·stride + rows[p]]: with unit hard weights on Ŝ's rows
 * (see {@link recordHardWeights}), the draft's log M(Ŝ_p). `rows` (P) u32, `hardLoss` (≥ steps·stride)
 * f32, `out` (P) f32. One dispatch.
 */
export function recordPathLogProbs(
  rec: Recorder,
  out: Tensor,
  rows: Tensor,
  hardLoss: Tensor,
  o: { steps: number; stride: number },
): void {
  const P = out.size;
  out.expectShape([P], "f32");
  rows.expectShape([P], "u32");
  hardLoss.expectShape([-1], "f32");
  if (!Number.isInteger(o.steps) || o.steps < 1 || hardLoss.size < o.steps * o.stride) {
    throw new ShapeError(`recordPathLogProbs: ${hardLoss.name} holds fewer than ${o.steps}·${o.stride} rows`);
  }
  const kern = memoKernel(rec, "gto_path_logprob", () => ({
    name: "gto_path_logprob",
    code: GTO_WGSL,
    entryPoint: "gto_path_logprob",
    storage: ["rw", "rw", "rw"],
    params: "uuu",
  }));
  rec.dispatch(kern, [rows, hardLoss, out], [P, o.steps, o.stride], grid1d(P));
}
