/**
 * CPU reference of "the tree the speculative decoder builds at a prefix, and what it is worth" — the
 * end-to-end oracle for the batched GPU GTO pipeline (P trees per dispatch, segmented attention) and
 * for the `tree` inspection command. Built only from the f32/f64 reference models and
 * `tree_ref.buildDraftTree`, with every tensor boundary spelled out:
 *
 * Root index r (≥ 1) of `tokens`, i.e. the decoder has committed x_0..x_r and x_r is the tree's root:
 * 1. target over x_0..x_{r−1} (causal): features g_t = hidden states entering the draft's
 *    `auxLayerIds` at token t;
 * 2. draft prefix: pairs (fc(g_t), x_{t+1}) for t = 0..r−1 at positions t, causal, cache rows [0, r);
 *    the last pair (row r − 1) gives the level-0 log-probs and the first hidden;
 * 3. draft expansion e = 0..D−1: the k frontier nodes at position r + e, cache rows r + k·e .., hidden =
 *    their parent's pre-norm output row, each attending to the whole prefix [0, r) and to its
 *    ancestors-or-self among the expanded rows; log-softmax over the draft vocabulary (f32);
 * 4. verification: the target's logits after node i = a causal target forward of x_0..x_{r−1}
 *    followed by the root→i path at positions r .. r + depth(i) (exactly what tree attention computes);
 * 5. rewards and greedy length from `gto_ref.evaluateTree`.
 * @module
 */
import { ShapeError } from "../errors.ts";
import type { LlamaRef } from "../reference/llama_ref.ts";
import type { Eagle3Ref } from "../reference/eagle3_ref.ts";
import { logSoftmaxRef } from "../reference/ops.ts";
import { buildDraftTree, type DraftTree, type TreeConfig } from "../tree/tree_ref.ts";
import { evaluateTree, type TreeEvaluation } from "./gto_ref.ts";

/** The reference tree at one root and its evaluation. */
export interface ReferenceTree {
  /** Root index r. */
  root: number;
  /** The draft tree (tree_ref layout; node scores are cumulative draft log-probs). */
  tree: DraftTree;
  /** (N, V) target logits after each node. */
  logits: Float32Array;
  /** Node target log-probs, branches, L, rewards, greedy length. */
  evaluation: TreeEvaluation;
}

/**
 * Build the decode-time tree at root index `r` of `tokens` with the reference target and draft (see
 * the module comment) and evaluate it with reward parameter `eta`. The draft's cache must hold
 * r + k·D rows. Throws {@link ShapeError} on a bad root.
 */
export function referenceTreeAt(
  target: LlamaRef,
  draft: Eagle3Ref,
  tokens: readonly number[],
  r: number,
  config: TreeConfig = {},
  eta = 1,
): ReferenceTree {
  if (!Number.isInteger(r) || r < 1 || r >= tokens.length) {
    throw new ShapeError(`referenceTreeAt: root index ${r} must be in [1, ${tokens.length - 1}]`);
  }
  const dc = draft.ckpt.config;
  const H = dc.hiddenSize, Ht = dc.targetHiddenSize, Vd = dc.draftVocabSize, V = target.cfg.vocabSize;
  const aux = dc.auxLayerIds, F = aux.length * Ht;
  // 1. Target prefix and features.
  target.reset();
  const pre = target.forward(tokens.slice(0, r) as number[], { returnHiddenAtLayers: aux });
  const feats = new Float32Array(r * F); // (r, n·Ht)
  aux.forEach((l, i) => {
    const h = pre.hidden.get(l)!;
    for (let t = 0; t < r; t++) feats.set(h.subarray(t * Ht, (t + 1) * Ht), t * F + i * Ht);
  });
  // 2. Draft prefix.
  const prefix = draft.forward({ hidden: draft.fuse(feats), ids: tokens.slice(1, r + 1), cacheRow: 0 });
  const lp0 = logSoftmaxRef(prefix.logits.slice((r - 1) * Vd, r * Vd), Vd);
  let prevOut: Float32Array = prefix.out.slice((r - 1) * H, r * H); // (1, H), then the last expansion's (k, H)
  // 3. Expansions, with the ancestor mask tracked as in tree_ref (eye at e = 0, then parent row + self).
  let anc: Uint8Array = new Uint8Array(0); // (k, k·e)
  const tree = buildDraftTree({
    initialLogProbs: lp0,
    root: tokens[r],
    d2t: draft.ckpt.d2t,
    config,
    expand: (e, parentRows, frontier) => {
      const k = frontier.length, w = k * e;
      const next = new Uint8Array(k * (w + k)); // (k, k·(e+1))
      for (let i = 0; i < k; i++) {
        if (e > 0) next.set(anc.subarray(parentRows[i] * w, (parentRows[i] + 1) * w), i * (w + k));
        next[i * (w + k) + w + i] = 1;
      }
      anc = next;
      const kvLen = r + k * (e + 1);
      const mask = new Uint8Array(k * kvLen); // (k, r + k·(e+1)): the prefix, then the expanded rows
      for (let i = 0; i < k; i++) {
        mask.fill(1, i * kvLen, i * kvLen + r);
        mask.set(next.subarray(i * (w + k), (i + 1) * (w + k)), i * kvLen + r);
      }
      const hidden = new Float32Array(k * H);
      for (let i = 0; i < k; i++) {
        hidden.set(prevOut.subarray(parentRows[i] * H, (parentRows[i] + 1) * H), i * H);
      }
      const res = draft.forward({
        hidden,
        ids: frontier,
        cacheRow: r + k * e,
        positions: new Array(k).fill(r + e),
        kvLen,
        mask,
      });
      prevOut = res.out;
      return logSoftmaxRef(res.logits, Vd);
    },
  });
  // 4. Verification: each node's logits from the prefix plus its root→node path.
  const N = tree.tokens.length;
  const logits = new Float32Array(N * V);
  for (let i = 0; i < N; i++) {
    const path: number[] = [];
    for (let c = i; c >= 0; c = tree.parents[c]) path.push(tree.tokens[c]);
    target.truncate(r);
    const out = target.forward(path.reverse());
    logits.set(out.logits.subarray((path.length - 1) * V, path.length * V), i * V);
  }
  return { root: r, tree, logits, evaluation: evaluateTree(tree, logits, V, eta) };
}
