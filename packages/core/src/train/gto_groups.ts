/**
 * Which prefixes a GTO step trains on, and what it logs about them — the CPU-side bookkeeping of
 * Phase II that needs no GPU: per sequence, K groups of m adjacent tree roots ({@link sampleGroupRoots}),
 * each root's data continuation for data-path acceptance ({@link continuationRows}), and the step
 * metrics from the rows the GPU reward kernels wrote ({@link summarizeGtoStep}, read back only every
 * `--log-every` steps).
 *
 * Root placement (a choice the paper leaves open, see `gto_ref.ts`): roots r ∈ [promptLen, n − 2], so
 * the root x_r and the first drafted token x_{r+1} are response tokens (decode trees exist only
 * there; the first tree's root is the first response token). K_eff = min(K, ⌊span/m⌋) non-overlapping
 * windows of m consecutive roots, span = n − 1 − promptLen, placed uniformly over all placements
 * (stars and bars over the slack), from a PRNG seeded by hash(seed, step, sequence): a step is a
 * pure function of its inputs, so `--resume` replays it exactly. A sequence cut before its text ended
 * (no eos at its end) gives roots only up to n − W ({@link rootSpanLength}), so every Ŝ is decidable.
 * @module
 */
import { mulberry32 } from "../util/random.ts";
import { ShapeError } from "../errors.ts";
import { GTO_COEF_COLS, GTO_TREE_COLS } from "./gto_ops.ts";

/** The u32 that ends a continuation row past the data: what follows is unknown (a cut, or no data). */
export const CONTINUATION_END = 0xffffffff;

/**
 * The u32 that marks where the text itself ended (the target stopped: the token before it is the
 * eos): decoding stops there too, so the greedy accepted length is capped at this index.
 */
export const CONTINUATION_STOP = 0xfffffffe;

/** 32-bit mix of three integers (murmur3 finaliser over a running combination). */
function hash3(a: number, b: number, c: number): number {
  let h = 0x9e3779b9;
  for (const v of [a, b, c]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** Inputs of {@link sampleGroupRoots}. */
export interface GroupRootOptions {
  /** Tokens of the prompt (the response starts at this index). */
  promptLen: number;
  /** n: tokens of the whole sequence (prompt + response). */
  length: number;
  /** K: groups wanted per sequence. */
  groups: number;
  /** m: roots per group. */
  groupSize: number;
  /** Run seed. */
  seed: number;
  /** Optimizer step. */
  step: number;
  /** Sequence index within the step's batch. */
  sequence: number;
}

/**
 * The tree roots of one sequence, ascending: K_eff·m indices, group i = roots [i·m, (i+1)·m), each
 * group m consecutive integers in [promptLen, length − 2]; empty when not even one group fits.
 */
export function sampleGroupRoots(o: GroupRootOptions): number[] {
  const { promptLen, length: n, groups: K, groupSize: m } = o;
  for (const [name, v] of Object.entries({ promptLen, length: n, groups: K, groupSize: m })) {
    if (!Number.isInteger(v) || v < 0) {
      throw new ShapeError(`sampleGroupRoots: ${name} must be an integer ≥ 0`);
    }
  }
  if (m < 1) throw new ShapeError(`sampleGroupRoots: groupSize must be ≥ 1, got ${m}`);
  const span = Math.max(0, n - 1 - promptLen);
  const k = Math.min(K, Math.floor(span / m));
  if (k === 0) return [];
  const slack = span - k * m;
  // A uniform k-subset of {0 .. slack + k − 1} (partial Fisher–Yates), sorted: the stars-and-bars code.
  const rand = mulberry32(hash3(o.seed, o.step, o.sequence));
  const pool = Array.from({ length: slack + k }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  const picks = pool.slice(0, k).sort((a, b) => a - b);
  const roots: number[] = [];
  picks.forEach((c, i) => {
    const start = promptLen + (c - i) + i * m; // (c − i) slack before this window
    for (let j = 0; j < m; j++) roots.push(start + j);
  });
  return roots;
}

/**
 * Data continuations (P, width) u32 for roots `roots` of `tokens`: row p = tokens[r_p + 1 ..
 * r_p + width], then {@link CONTINUATION_STOP} right after the last token when `ended` (the text
 * ends there: the target stopped on the eos that is the last token) and {@link CONTINUATION_END}
 * for the rest. width = pathWidth − 1 of the tree.
 */
export function continuationRows(
  tokens: ArrayLike<number>,
  roots: readonly number[],
  width: number,
  ended = false,
): Uint32Array {
  const out = new Uint32Array(roots.length * width).fill(CONTINUATION_END);
  roots.forEach((r, p) => {
    if (!Number.isInteger(r) || r < 0 || r >= tokens.length) {
      throw new ShapeError(`continuationRows: root ${r} outside the ${tokens.length} tokens`);
    }
    for (let j = 0; j < width && r + 1 + j < tokens.length; j++) out[p * width + j] = tokens[r + 1 + j];
    const stop = tokens.length - 1 - r; // index right after the last token
    if (ended && stop < width) out[p * width + stop] = CONTINUATION_STOP;
  });
  return out;
}

/**
 * The `length` to give {@link sampleGroupRoots} for a sequence of n real tokens: n when the data ends
 * where the text ended (`ended`: its last token is the eos the target stopped on), else n − (W − 2)
 * (W = the tree's pathWidth), so that every root r ≤ n − W has its whole continuation x_{r+1..r+W−1}
 * inside the data. Past a cut (`--seq-len` truncation, the regeneration's token limit) the greedy
 * continuation is unknown, and a root there would get an Ŝ cut short where greedy verification of
 * the same tree accepts more (measured: the cause of the Ŝ-agreement drops; docs/gto.md).
 */
export function rootSpanLength(n: number, ended: boolean, pathWidth: number): number {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(pathWidth) || pathWidth < 2) {
    throw new ShapeError(`rootSpanLength: n ${n} and pathWidth ${pathWidth} must be integers (≥ 0, ≥ 2)`);
  }
  return ended ? n : Math.max(0, n - (pathWidth - 2));
}

/** Metrics of one GTO step (what the trainer logs every `--log-every` steps). */
export interface GtoStepMetrics {
  /** Prefixes in the step. */
  prefixes: number;
  /** Mean tree reward of M (the chosen aggregate). */
  rewardM: number;
  /** Mean tree reward of M₀. */
  rewardM0: number;
  /** Mean R. */
  meanR: number;
  /** Mean |A|. */
  meanAbsA: number;
  /** Fraction of groups whose reward std is below δ (no signal). */
  flatGroups: number;
  /** Fraction of prefixes whose clipped branch is active. */
  clipFraction: number;
  /** Smallest and largest ratio s over prefixes with l > 0 (1, 1 when none). */
  ratioMin: number;
  /** See ratioMin. */
  ratioMax: number;
  /** L_GTO = −(1/P_tot)·Σ min(s·A, clip(s)·A) over these prefixes. */
  lossGto: number;
  /** Mean l (data-path accepted length). */
  meanLength: number;
  /** Tree-simulated τ = mean(l_greedy + 1) under M's trees (bonus token included). */
  simulatedTau: number;
  /** Fraction of prefixes whose data-path and greedy lengths agree. */
  agreement: number;
}

/**
 * Summarise a step from the read-back rows: `treesM`, `treesM0` (P, 8) ({@link GTO_TREE_COLS}),
 * `coef` (P, 8) ({@link GTO_COEF_COLS}); `column` = the aggregate's column (0 lse, 1 max, 2 mean),
 * m = group size, δ = std floor (sample std, as the advantages), `totalPrefixes` = P_tot.
 */
export function summarizeGtoStep(
  treesM: Float32Array,
  treesM0: Float32Array | null,
  coef: Float32Array,
  o: { column: number; groupSize: number; stdFloor: number; totalPrefixes?: number },
): GtoStepMetrics {
  const P = treesM.length / 8;
  if (!Number.isInteger(P) || coef.length !== P * 8 || (treesM0 && treesM0.length !== P * 8)) {
    throw new ShapeError(
      `summarizeGtoStep: rows (${treesM.length}, ${treesM0?.length}, ${coef.length}) not (P, 8)`,
    );
  }
  const T = GTO_TREE_COLS, C = GTO_COEF_COLS, m = o.groupSize;
  const mean = (f: (i: number) => number) => {
    let s = 0;
    for (let i = 0; i < P; i++) s += f(i);
    return P ? s / P : 0;
  };
  let flat = 0, groups = 0;
  for (let g = 0; g + m <= P && m > 1; g += m) {
    let mu = 0, ss = 0;
    for (let i = g; i < g + m; i++) mu += coef[i * 8 + C.reward];
    mu /= m;
    for (let i = g; i < g + m; i++) ss += (coef[i * 8 + C.reward] - mu) ** 2;
    groups++;
    if (Math.sqrt(ss / (m - 1)) < o.stdFloor) flat++;
  }
  let rmin = Infinity, rmax = -Infinity, terms = 0;
  for (let i = 0; i < P; i++) {
    terms += coef[i * 8 + C.term];
    if (coef[i * 8 + C.length] > 0) {
      rmin = Math.min(rmin, coef[i * 8 + C.ratio]);
      rmax = Math.max(rmax, coef[i * 8 + C.ratio]);
    }
  }
  return {
    prefixes: P,
    rewardM: mean((i) => treesM[i * 8 + o.column]),
    rewardM0: treesM0 ? mean((i) => treesM0[i * 8 + o.column]) : NaN,
    meanR: mean((i) => coef[i * 8 + C.reward]),
    meanAbsA: mean((i) => Math.abs(coef[i * 8 + C.advantage])),
    flatGroups: groups ? flat / groups : 0,
    clipFraction: mean((i) => coef[i * 8 + C.clipped]),
    ratioMin: rmin === Infinity ? 1 : rmin,
    ratioMax: rmax === -Infinity ? 1 : rmax,
    lossGto: P ? -terms / (o.totalPrefixes ?? P) : 0,
    meanLength: mean((i) => treesM[i * 8 + T.length]),
    simulatedTau: mean((i) => treesM[i * 8 + T.greedyLength] + 1),
    agreement: mean((i) => treesM[i * 8 + T.length] === treesM[i * 8 + T.greedyLength] ? 1 : 0),
  };
}

/** TTT row indices of a step's prefixes (see {@link gtoRowLayout}). */
export interface GtoRowLayout {
  /** (P) u32: TTT row b·S + r − 1 of each prefix (the last pair before its root). */
  rows: Uint32Array;
  /** (rowsTotal) i32: prefix index of each TTT row, −1 for rows of no prefix. */
  rowMap: Int32Array;
  /** (steps·stride) u32 hard labels: at step k, prefix p's row holds the draft id of x[r + k + 1]
   * (CONTINUATION_END when past the sequence end or outside the draft vocabulary). */
  labels: Uint32Array;
}

/**
 * The TTT-side layout of a GTO step over B sequences of S tokens: `roots[b]` are sequence b's roots
 * (P = Σ_b roots, prefix order = sequence-major), `toDraft` maps a target id to its draft id (−1 when
 * outside the draft vocabulary), `stride` = the trainer's `rowStride`. Step k at row b·S + r − 1
 * predicts x[r + k + 1], so Ŝ's (k+1)-th token is step k's label there.
 */
export function gtoRowLayout(
  ids: ArrayLike<number>,
  roots: readonly (readonly number[])[],
  o: { seqLen: number; steps: number; stride: number; toDraft: (target: number) => number },
): GtoRowLayout {
  const S = o.seqLen, B = roots.length;
  if (ids.length !== B * S || o.stride < B * S) {
    throw new ShapeError(`gtoRowLayout: ${ids.length} ids for ${B}×${S}, stride ${o.stride}`);
  }
  const rows: number[] = [];
  const rowMap = new Int32Array(B * S).fill(-1);
  const labels = new Uint32Array(o.steps * o.stride).fill(CONTINUATION_END);
  roots.forEach((rs, b) => {
    for (const r of rs) {
      if (!Number.isInteger(r) || r < 1 || r >= S) {
        throw new ShapeError(`gtoRowLayout: root ${r} outside [1, ${S})`);
      }
      const t = b * S + r - 1;
      if (rowMap[t] >= 0) throw new ShapeError(`gtoRowLayout: root ${r} of sequence ${b} given twice`);
      rowMap[t] = rows.length;
      rows.push(t);
      for (let k = 0; k < o.steps && r + k + 1 < S; k++) {
        const d = o.toDraft(ids[b * S + r + k + 1]);
        if (d >= 0) labels[k * o.stride + t] = d;
      }
    }
  });
  return { rows: Uint32Array.from(rows), rowMap, labels };
}
