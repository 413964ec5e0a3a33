/**
 * The tree-inspection report: "what tree does this draft build at this point of the text, and what
 * is it worth?" as one JSON-ready object (`deno task tree --json`, the playground, tests) and as a
 * readable indented tree. Pure formatting over an evaluated tree (`gto_ref.evaluateTree` or the GPU
 * reward kernels read back): no GPU and no model here.
 *
 * Schema (snake_case, as printed):
 * ```
 * { tokens: [prompt ids],
 *   trees: [{ root_index, root_token,
 *             nodes: [{ token, parent (−1 root), depth, draft_score (cumulative draft log-prob, 0 at
 *                       the root), target_prob (p_T given the prefix and ancestors, T = 1; null at
 *                       the root), greedy_ok (token = target argmax after its parent; null at the
 *                       root) }],
 *             branches: [{ nodes: [node indices root→leaf], L }],
 *             reward: { lse, max, mean },
 *             accepted_length (T = 0 greedy verification, bonus not counted) }] }
 * ```
 * @module
 */
import { ShapeError } from "../errors.ts";

/** One node of a {@link TreeReportEntry}. */
export interface TreeReportNode {
  /** Target token id. */
  token: number;
  /** Parent node index, −1 for the root. */
  parent: number;
  /** Depth (root 0). */
  depth: number;
  /** Cumulative draft log-prob (0 for the root). */
  draft_score: number;
  /** Target probability given the prefix and the node's ancestors (null for the root). */
  target_prob: number | null;
  /** Whether the token is the target's argmax after its parent (null for the root). */
  greedy_ok: boolean | null;
}

/** One root→leaf branch. */
export interface TreeReportBranch {
  /** Node indices, root first. */
  nodes: number[];
  /** Expected accepted length L = Σ_j Π_{k≤j} p_k. */
  L: number;
}

/** The tree at one root index. */
export interface TreeReportEntry {
  /** Index of the root token in the prompt's token sequence. */
  root_index: number;
  /** The root token id. */
  root_token: number;
  /** Nodes, root first. */
  nodes: TreeReportNode[];
  /** Branches in increasing leaf index. */
  branches: TreeReportBranch[];
  /** Tree rewards. */
  reward: { lse: number; max: number; mean: number };
  /** Greedy (T = 0) accepted length. */
  accepted_length: number;
}

/** The whole report. */
export interface TreeReport {
  /** All prompt token ids. */
  tokens: number[];
  /** One entry per requested root index. */
  trees: TreeReportEntry[];
}

/** What {@link treeReportEntry} needs of an evaluated tree. */
export interface EvaluatedTree {
  /** (N) target ids, root first. */
  tokens: ArrayLike<number>;
  /** (N) parent node, −1 root. */
  parents: ArrayLike<number>;
  /** (N) depths. */
  depth: ArrayLike<number>;
  /** (N) cumulative draft log-probs (root 0). */
  nodeScores: ArrayLike<number>;
  /** (N) log p_T per node (root ignored). */
  logProbs: ArrayLike<number>;
  /** (N) greedy agreement 0/1 per node (root ignored). */
  greedyOk: ArrayLike<number>;
  /** Root→leaf node lists. */
  branches: readonly (readonly number[])[];
  /** L per branch. */
  L: ArrayLike<number>;
  /** Rewards. */
  rewards: { lse: number; max: number; mean: number };
  /** Greedy accepted length. */
  greedyLength: number;
}

/** One report entry from an evaluated tree at `rootIndex`. Throws {@link ShapeError} on ragged input. */
export function treeReportEntry(rootIndex: number, t: EvaluatedTree): TreeReportEntry {
  const N = t.tokens.length;
  for (const [name, a] of Object.entries({ parents: t.parents, depth: t.depth, nodeScores: t.nodeScores })) {
    if (a.length !== N) throw new ShapeError(`treeReportEntry: ${name} has ${a.length} entries, tokens ${N}`);
  }
  if (t.branches.length !== t.L.length) {
    throw new ShapeError(`treeReportEntry: ${t.branches.length} branches but ${t.L.length} lengths`);
  }
  const nodes: TreeReportNode[] = [];
  for (let i = 0; i < N; i++) {
    nodes.push({
      token: t.tokens[i],
      parent: t.parents[i],
      depth: t.depth[i],
      draft_score: t.nodeScores[i],
      target_prob: i === 0 ? null : Math.exp(t.logProbs[i]),
      greedy_ok: i === 0 ? null : t.greedyOk[i] === 1,
    });
  }
  return {
    root_index: rootIndex,
    root_token: t.tokens[0],
    nodes,
    branches: t.branches.map((b, i) => ({ nodes: [...b], L: t.L[i] })),
    reward: { ...t.rewards },
    accepted_length: t.greedyLength,
  };
}

/**
 * A readable rendering: a header per tree (root index, token, rewards, accepted length), then one line
 * per node in depth-first order, indented by depth, with the token text, p_T, the draft score and a
 * mark on greedy-accepted nodes. `text(id)` renders one token (e.g. the tokenizer's decode).
 */
export function renderTreeReport(report: TreeReport, text: (id: number) => string): string {
  const lines: string[] = [];
  const f = (x: number, d = 3) => x.toFixed(d);
  for (const t of report.trees) {
    lines.push(
      `root ${t.root_index} ${JSON.stringify(text(t.root_token))}: reward lse ${f(t.reward.lse)} ` +
        `max ${f(t.reward.max)} mean ${f(t.reward.mean)}, greedy accepts ${t.accepted_length}, ` +
        `${t.nodes.length} nodes, ${t.branches.length} branches`,
    );
    const children = t.nodes.map(() => [] as number[]);
    t.nodes.forEach((n, i) => n.parent >= 0 && children[n.parent].push(i));
    // Nodes on the greedy-accepted path (greedy_ok from the root down).
    const accepted = new Set<number>([0]);
    for (let cur = 0;;) {
      const next = children[cur].find((c) => t.nodes[c].greedy_ok);
      if (next === undefined) break;
      accepted.add(next);
      cur = next;
    }
    const walk = (i: number) => {
      const n = t.nodes[i];
      const mark = i > 0 && accepted.has(i) ? " ✓" : "";
      const info = i === 0 ? "(root)" : `p_T ${f(n.target_prob!)}  draft ${f(n.draft_score)}`;
      lines.push(`${"  ".repeat(n.depth + 1)}${JSON.stringify(text(n.token))}  ${info}${mark}`);
      for (const c of children[i]) walk(c);
    };
    walk(0);
  }
  return lines.join("\n");
}
