/**
 * "What tree does this draft build here, and what is it worth?" — {@link inspectTrees} builds, for
 * each requested root index I of a token sequence, the draft tree the speculative decoder builds after
 * committing tokens 0..I (root x_I; the target and draft caches hold tokens 0..I−1 and pairs
 * 0..I−1), verifies it with the target (softmax at T = 1 over the full vocabulary) and scores it
 * (branch L, lse/max/mean rewards, greedy accepted length), as the {@link TreeReport} of
 * `tree/report.ts`. Each root is its own one-tree batch (P = 1, so the draft runs on k rows per
 * expansion exactly as the decoder does); `deno task tree`, the playground and the tests use it.
 * @module
 */
import type { Recorder } from "../gpu/recorder.ts";
import { BufferArena } from "../gpu/arena.ts";
import type { Eagle3Draft } from "../model/eagle3.ts";
import type { LlamaModel } from "../model/llama.ts";
import { ShapeError } from "../errors.ts";
import { featureTaps } from "../speculative/verify.ts";
import type { TreeConfig } from "../tree/config.ts";
import { readTree } from "../tree/tree_ops.ts";
import { type TreeReport, treeReportEntry } from "../tree/report.ts";
import { treePaths } from "../tree/tree_ref.ts";
import { GtoTreeBatch } from "./gto_trees.ts";

/**
 * Inspect the trees at `roots` (indices into `tokens`, each in [1, tokens.length − 1]; default the
 * last token) with reward parameter `eta`. Reads back once per root (a diagnostic, not a hot path).
 * Throws {@link ShapeError} on a bad root or a model too small for the shapes.
 */
export async function inspectTrees(
  rec: Recorder,
  target: LlamaModel,
  draft: Eagle3Draft,
  tokens: readonly number[],
  opts: { roots?: readonly number[]; tree?: TreeConfig; eta?: number } = {},
): Promise<TreeReport> {
  const S = tokens.length;
  if (S < 2) throw new ShapeError(`inspectTrees: need at least 2 tokens (a prefix and a root), got ${S}`);
  const roots = opts.roots ?? [S - 1];
  for (const r of roots) {
    if (!Number.isInteger(r) || r < 1 || r >= S) {
      throw new ShapeError(`inspectTrees: root index ${r} must be in [1, ${S - 1}]`);
    }
  }
  const gpu = target.gpu;
  const batch = new GtoTreeBatch(gpu, draft, { trees: 1, maxSeqLen: S, tree: opts.tree });
  const N = batch.tb.config.totalTokens;
  const kv = target.createKvCache(S + N, "inspect.kv");
  const F = draft.config.auxLayerIds.length * target.config.hiddenSize;
  const arena = new BufferArena(gpu, 4 * (S + S * F) + 2 * 256, "inspect");
  try {
    const ids = arena.upload(Uint32Array.from(tokens), [S], "u32", "inspect.ids");
    const feats = arena.alloc([S, F], "f32", "inspect.features");
    for (let at = 0; at < S; at += target.maxBatch) {
      const T = Math.min(target.maxBatch, S - at);
      target.forward(rec, kv, ids, at, T, at, {
        logits: "none",
        capture: featureTaps(draft.config.auxLayerIds, target.config.hiddenSize, feats, at),
      });
    }
    const report: TreeReport = { tokens: [...tokens], trees: [] };
    for (const r of roots) {
      batch.setRoots(tokens, [r]);
      batch.recordGrow(rec, draft, feats, ids);
      batch.recordVerify(rec, target, kv, opts.eta ?? 1);
      const tree = await readTree(rec, batch.tb, 0);
      const [nodes, branches, stats] = await Promise.all([
        rec.read(batch.rewards.nodes),
        rec.readF32(batch.rewards.branches),
        rec.readF32(batch.rewards.treeStats),
      ]);
      const nodeF = new Float32Array(nodes.buffer, nodes.byteOffset, nodes.length);
      const paths = treePaths(tree);
      report.trees.push(treeReportEntry(r, {
        tokens: tree.tokens,
        parents: tree.parents,
        depth: tree.depth,
        nodeScores: tree.nodeScores,
        logProbs: Array.from({ length: N }, (_, j) => nodeF[2 * j]),
        greedyOk: Array.from({ length: N }, (_, j) => nodes[2 * j + 1]),
        branches: paths,
        L: branches.subarray(0, paths.length),
        rewards: { lse: stats[0], max: stats[1], mean: stats[2] },
        greedyLength: stats[5],
      }));
    }
    return report;
  } finally {
    arena.destroy();
    kv.destroy();
    batch.destroy();
  }
}
