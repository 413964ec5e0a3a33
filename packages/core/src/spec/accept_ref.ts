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
