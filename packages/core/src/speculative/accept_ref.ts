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

/**
 * TypeScript reference of T>0 tree acceptance (recursive rejection sampling), replaying the kernel's
 * uniforms exactly: u(d) for the d-th draw of the cycle (see `acceptSample`). Children are tried in
 * increasing node index; child x is accepted iff u·(1 − r) < p(x), r = rejected siblings' mass; the
 * bonus is drawn from p at the last node with the rejected tokens removed, by inverse CDF in index
 * order. Computed in f32 like the kernel (Math.fround), so the replay is exact.
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
  const removed = new Set<number>();
  let cur = 0, r = 0, d = 0;
  for (;;) {
    let accepted = false, hasChild = false;
    for (let c = cur + 1; c < N; c++) {
      if (parents[c] !== cur) continue;
      hasChild = true;
      const x = treeTokens[c];
      const px = probs[cur * V + x];
      if (f(u(d++) * f(1 - r)) < px) {
        accepted = true;
        nodes.push(c);
        cur = c;
        r = 0;
        removed.clear();
        break;
      }
      r = f(r + px);
      removed.add(x);
    }
    if (!accepted || !hasChild || nodes.length >= dp) break;
  }
  let total = 0, best = 0, bestP = -1;
  for (let i = 0; i < V; i++) {
    const w = removed.has(i) ? 0 : probs[cur * V + i];
    total = f(total + w);
    if (w > bestP) {
      bestP = w;
      best = i;
    }
  }
  const goal = f(u(d) * total);
  let bonus = best, acc = 0;
  for (let i = 0; i < V; i++) {
    const w = removed.has(i) ? 0 : probs[cur * V + i];
    acc = f(acc + w);
    if (w > 0 && acc > goal) {
      bonus = i;
      break;
    }
  }
  return { nodes, tokens: nodes.map((n) => treeTokens[n]), bonus };
}
