import { deepEqual } from "node:assert/strict";
import { BufferArena } from "../gpu/arena.ts";
import { logSoftmax } from "../ops/softmax.ts";
import { randn, testGpu } from "../testing/mod.ts";
import { type GpuDraftTree, readTree, TreeBuffers, treeFinalize, treeLevel } from "./tree_ops.ts";

Deno.test("treeLevel fromLogits (fused log-softmax + top-k) builds the same trees as logSoftmax → treeLevel, bit for bit", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "acts");
  // totalTokens, depth, topK, Vd (odd vocabularies; ties from rounded logits)
  for (const [N, D, k, Vd] of [[60, 7, 10, 1000], [16, 3, 4, 97], [31, 3, 3, 40], [2, 1, 1, 5]]) {
    for (const ties of [false, true]) {
      arena.reset();
      const d2t = arena.upload(new Int32Array(Vd).map((_, d) => (d * 7) % 13), [Vd], "i32", "d2t");
      const root = arena.upload(new Uint32Array([3, 1234]), [2], "u32", "ring");
      const logits = Array.from({ length: D + 1 }, (_, l) => {
        const z = randn((l === 0 ? 1 : k) * Vd, 17 * l + Vd + k, 4);
        return arena.upload(ties ? z.map(Math.round) : z, [l === 0 ? 1 : k, Vd], "f32", `logits${l}`);
      });
      const trees: GpuDraftTree[] = [];
      for (const fused of [false, true]) {
        const tb = new TreeBuffers(gpu, { totalTokens: N, depth: D, topK: k, draftVocab: Vd }, d2t);
        for (let l = 0; l <= D; l++) {
          if (fused) treeLevel(rec, tb, logits[l], l, { fromLogits: true });
          else {
            const lp = arena.alloc(logits[l].shape, "f32", `lp${l}`);
            logSoftmax(rec, lp, logits[l]);
            treeLevel(rec, tb, lp, l);
          }
        }
        treeFinalize(rec, tb, { meta: root, index: 1 });
        trees.push(await readTree(rec, tb));
        tb.destroy();
      }
      const bits = (t: GpuDraftTree) => ({
        scores: Array.from(new Uint32Array(t.candidates.scores.buffer)),
        tokens: Array.from(t.candidates.tokens),
        parents: Array.from(t.candidates.parents),
        nodes: Array.from(t.nodeCandidates),
        treeTokens: Array.from(t.tokens),
        mask: Array.from(t.maskBits),
        retrieve: Array.from(t.retrieveFull),
      });
      deepEqual(bits(trees[1]), bits(trees[0]), `tree ${N}/${D}/${k} Vd ${Vd}${ties ? " ties" : ""}`);
    }
  }
  arena.destroy();
});
