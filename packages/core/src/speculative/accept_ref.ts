/**
 * TypeScript reference of T=0 tree acceptance (EAGLE `evaluate_posterior` with greedy decoding):
 * each root→leaf path accepts its longest prefix whose tokens equal the target argmax after the
 * preceding node; the first path with the most accepted tokens wins; the bonus token is the argmax
 * after the last accepted node.
 * @module
 */

/** Result of {@link acceptGreedyRef}. */
export interface GreedyAcceptance {
  /** Drafts accepted (bonus excluded). */
  acceptLength: number;
  /** Index of the winning path. */
  bestPath: number;
  /** Accepted node indices, root first (length acceptLength + 1). */
  nodes: number[];
  /** Accepted tokens: root, then accepted drafts (length acceptLength + 1). */
  tokens: number[];
  /** The target's token after the last accepted node. */
  bonus: number;
}

/**
 * @param treeTokens (N) tree tokens, root first
 * @param argmax (N) target argmax after each node
 * @param paths (leaves, DP) root→leaf node indices, −1 padded
 */
export function acceptGreedyRef(
  treeTokens: ArrayLike<number>,
  argmax: ArrayLike<number>,
  paths: ArrayLike<number>,
  leaves: number,
  dp: number,
): GreedyAcceptance {
  let best = 0, bestLen = 0;
  for (let i = 0; i < leaves; i++) {
    let len = 0;
    for (let j = 1; j < dp; j++) {
      const node = paths[i * dp + j];
      if (node < 0) break;
      if (treeTokens[node] !== argmax[paths[i * dp + j - 1]]) break;
      len = j;
    }
    if (len > bestLen) {
      bestLen = len;
      best = i;
    }
  }
  const nodes = Array.from({ length: bestLen + 1 }, (_, j) => paths[best * dp + j]);
  return {
    acceptLength: bestLen,
    bestPath: best,
    nodes,
    tokens: nodes.map((n) => treeTokens[n]),
    bonus: argmax[nodes[bestLen]],
  };
}

/** Result of {@link acceptSampleRef}. */
export interface SampledAcceptance {
  /** Accepted node indices, root first. */
  nodes: number[];
  /** Accepted tokens, root first. */
  tokens: number[];
  /** The token drawn after the last accepted node. */
  bonus: number;
}

/** Threads of the kernels' chunked inverse-CDF draw (one workgroup). */
const DRAW_THREADS = 256;

/**
 * The chunked inverse-CDF draw of `accept_sample`'s bonus (and of `sample` in select.wgsl), replayed
 * in f32: thread t sums the weights of its contiguous chunk [t·C, (t+1)·C), C = ⌈V/256⌉; an inclusive
 * Hillis–Steele scan of the 256 chunk sums gives the CDF at chunk ends; goal = u·total; the chunk
 * with excl ≤ goal < incl is walked with goal − excl from a running sum started at 0, and the first
 * positive weight that takes the sum past it is drawn (the chunk's last positive-weight index if
 * rounding leaves it short). Returns −1 when no chunk holds the goal (goal ≥ total by rounding, or
 * no positive weight): the caller's fallback.
 * @param w (V) f32 weights, not necessarily normalised
 * @param u uniform in [0, 1)
 */
export function chunkedDrawRef(w: Float32Array, u: number): number {
  const f = Math.fround, n = w.length;
  const chunk = Math.ceil(n / DRAW_THREADS);
  const scan = new Float32Array(DRAW_THREADS);
  const last = new Int32Array(DRAW_THREADS).fill(-1);
  for (let t = 0; t < DRAW_THREADS; t++) {
    const lo = Math.min(t * chunk, n), hi = Math.min(lo + chunk, n);
    let cs = 0;
    for (let i = lo; i < hi; i++) {
      cs = f(cs + w[i]);
      if (w[i] > 0) last[t] = i;
    }
    scan[t] = cs;
  }
  // Hillis–Steele, in place: descending t reads scan[t − off] before this step overwrites it.
  for (let off = 1; off < DRAW_THREADS; off <<= 1) {
    for (let t = DRAW_THREADS - 1; t >= off; t--) scan[t] = scan[t] + scan[t - off]; // f32 store rounds once
  }
  const goal = f(u * scan[DRAW_THREADS - 1]);
  for (let t = 0; t < DRAW_THREADS; t++) {
    const excl = t > 0 ? scan[t - 1] : 0;
    if (!(excl <= goal && goal < scan[t])) continue;
    const lo = Math.min(t * chunk, n), hi = Math.min(lo + chunk, n);
    const g = f(goal - excl);
    let acc = 0;
    for (let i = lo; i < hi; i++) {
      acc = f(acc + w[i]);
      if (w[i] > 0 && acc > g) return i;
    }
    return last[t];
  }
  return -1;
}

/**
 * TypeScript reference of T>0 tree acceptance (recursive rejection sampling), replaying the kernel's
 * uniforms and f32 arithmetic exactly (Math.fround): u(d) for the d-th draw of the cycle (see
 * `acceptSample`). Children are tried in increasing node index; child x is accepted iff
 * u·(1 − r) < p(x), r = rejected siblings' mass; a rejected child's p(x) is zeroed in the node's row
 * (a working copy), so a duplicate sibling has p = 0; a token ≥ V (NONE, from a NaN draft row) counts
 * as p = 0. The bonus is drawn from the last node's zeroed row by {@link chunkedDrawRef}; when that
 * finds nothing it falls back to the last positive-weight index, then to the last rejected child with
 * p > 0 (the children covered the support and f32 rounding rejected them all), then to token 0.
 * @param probs (N, V) filtered target distribution after each node
 */
export function acceptSampleRef(
  treeTokens: ArrayLike<number>,
  parents: ArrayLike<number>,
  probs: Float32Array,
  V: number,
  dp: number,
  u: (d: number) => number,
): SampledAcceptance {
  const f = Math.fround;
  const N = treeTokens.length;
  const nodes = [0];
  let cur = 0, r = 0, d = 0, fallback = -1;
  let row = probs.slice(0, V); // working copy of row `cur`
  for (;;) {
    let accepted = false, hasChild = false;
    for (let c = cur + 1; c < N; c++) {
      if (parents[c] !== cur) continue;
      hasChild = true;
      const x = treeTokens[c];
      const px = x < V ? row[x] : 0;
      if (f(u(d++) * f(1 - r)) < px) {
        accepted = true;
        nodes.push(c);
        cur = c;
        r = 0;
        fallback = -1;
        row = probs.slice(c * V, (c + 1) * V);
        break;
      }
      r = f(r + px);
      if (px > 0) {
        row[x] = 0;
        fallback = x;
      }
    }
    if (!accepted || !hasChild || nodes.length >= dp) break;
  }
  let bonus = chunkedDrawRef(row, u(d));
  if (bonus < 0) {
    let lastPos = -1;
    for (let i = 0; i < V; i++) if (row[i] > 0) lastPos = i;
    bonus = lastPos >= 0 ? lastPos : fallback >= 0 ? fallback : 0;
  }
  return { nodes, tokens: nodes.map((n) => treeTokens[n]), bonus };
}
