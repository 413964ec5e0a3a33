/**
 * `growDraftTree` as a standalone public function (not through the decoder): on a draft cache holding a
 * prefix, the GPU growth must give the tree that the CPU reference `buildDraftTree` builds when its
 * draft forwards are the f64 `Eagle3Ref` over the same prefix (positions prefix + e, prefix + ancestor
 * masks). The draft's lm_head is scaled up so draft log-probs are well separated (no f32-vs-f64 ties).
 * @module
 */
import { deepEqual } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadModelDir } from "../io/model_dir.ts";
import { initEagle3Checkpoint } from "../io/eagle3.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { BufferArena } from "../gpu/arena.ts";
import { Eagle3Ref } from "../reference/eagle3_ref.ts";
import { logSoftmaxRef } from "../reference/ops.ts";
import { assertAllClose, randn, rng, testGpu } from "../testing/mod.ts";
import { buildDraftTree } from "./tree_ref.ts";
import { readTree, TreeBuffers } from "./tree_ops.ts";
import { resolveTreeConfig, type TreeConfig } from "./config.ts";
import { allocGrowScratch, growDraftTree, growScratchBytes } from "./grow.ts";

const TINY = fileURLToPath(new URL("../../../../models/tiny", import.meta.url));

Deno.test("growDraftTree on a prefix in a draft cache equals buildDraftTree over Eagle3Ref", async () => {
  const { gpu, rec } = await testGpu();
  const target = await loadModelDir(TINY);
  const Vd = 96;
  const ckpt = initEagle3Checkpoint(target, { draftVocabSize: Vd, seed: 4, initStd: 0.08 });
  const lm = ckpt.tensors["lm_head.weight"];
  lm.set(lm.map((x) => 40 * x));
  const H = ckpt.config.hiddenSize;
  const draft = Eagle3Draft.fromCheckpoint(gpu, ckpt, { maxSeqLen: 64, maxBatch: 16 });
  const kv = draft.createKvCache();
  const io = new BufferArena(gpu, 1 << 20, "grow-test");
  const r = rng(9);
  const shapes: TreeConfig[] = [{ totalTokens: 8, depth: 2, topK: 3 }, {
    totalTokens: 13,
    depth: 3,
    topK: 4,
  }];
  try {
    for (const [si, shape] of shapes.entries()) {
      io.reset();
      const tree = resolveTreeConfig(shape, Vd);
      const { topK: k, depth: D } = tree;
      // Prefix: P pairs written into both caches (GPU draft cache and the reference's).
      const P = 5 + si;
      const h0 = randn(P * H, 20 + si, 0.5);
      const ids = Array.from({ length: P }, () => Math.floor(r() * Vd));
      const ref = new Eagle3Ref(ckpt, 64);
      const pre = ref.forward({ hidden: h0, ids, cacheRow: 0 });
      const gp = draft.forward(rec, {
        kv,
        hidden: io.upload(h0, [P, H], "f32", "h0"),
        ids: io.upload(Uint32Array.from(ids), [P], "u32", "ids"),
        T: P,
        cacheRow: 0,
        kvLen: P,
      });
      assertAllClose(await rec.readF32(gp.logits!), pre.logits, {
        rtol: 2e-4,
        atol: 1e-3,
        name: "prefix logits",
      });
      // The growth starts from the reference's last-pair output (so both sides share their inputs).
      const lastHidden = pre.out.slice((P - 1) * H, P * H);
      const lastLogits = pre.logits.slice((P - 1) * Vd, P * Vd);
      const root = 1 + Math.floor(r() * 100);
      const tb = new TreeBuffers(gpu, { ...shape, draftVocab: Vd }, draft.d2t);
      const scratchArena = new BufferArena(gpu, growScratchBytes(draft, tree), "grow-scratch");
      try {
        growDraftTree(rec, draft, tb, {
          kv,
          lastHidden: io.upload(lastHidden, [1, H], "f32", "lastHidden"),
          lastLogits: io.upload(lastLogits, [1, Vd], "f32", "lastLogits"),
          prefix: { meta: io.upload(Uint32Array.from([P, root]), [2], "u32", "meta"), index: 0 },
          root: { meta: io.upload(Uint32Array.from([P, root]), [2], "u32", "meta2"), index: 1 },
          scratch: allocGrowScratch(scratchArena, draft, tree),
        });
        const gpuTree = await readTree(rec, tb);
        // Reference: the same expansions through Eagle3Ref, with the prefix + ancestor masks.
        let prevOut: Float32Array = lastHidden; // (1, H) at e = 0
        let prevMask = new Uint8Array(0); // (k, k·e) ancestor bits over the expanded rows
        const want = buildDraftTree({
          initialLogProbs: logSoftmaxRef(lastLogits, Vd),
          root,
          d2t: ckpt.d2t,
          config: shape,
          expand: (e, parentRows, tokens) => {
            const hidden = new Float32Array(k * H);
            for (let j = 0; j < k; j++) {
              hidden.set(prevOut.subarray(parentRows[j] * H, (parentRows[j] + 1) * H), j * H);
            }
            const w = k * (e + 1), kvLen = P + w;
            const mask = new Uint8Array(k * w), full = new Uint8Array(k * kvLen);
            for (let j = 0; j < k; j++) {
              for (let c = 0; c < k * e; c++) mask[j * w + c] = prevMask[parentRows[j] * k * e + c];
              mask[j * w + k * e + j] = 1;
              full.fill(1, j * kvLen, j * kvLen + P);
              full.set(mask.subarray(j * w, (j + 1) * w), j * kvLen + P);
            }
            prevMask = mask;
            const out = ref.forward({
              hidden,
              ids: tokens,
              cacheRow: P + k * e,
              positions: new Array(k).fill(P + e),
              kvLen,
              mask: full,
            });
            prevOut = out.out;
            return logSoftmaxRef(out.logits, Vd);
          },
        });
        const name = `tree ${JSON.stringify(shape)}`;
        deepEqual(Array.from(gpuTree.tokens), Array.from(want.tokens), `${name}: tokens`);
        deepEqual(Array.from(gpuTree.parents), Array.from(want.parents), `${name}: parents`);
        deepEqual(Array.from(gpuTree.depth), Array.from(want.depth), `${name}: depths`);
        assertAllClose(gpuTree.nodeScores, want.nodeScores, {
          rtol: 1e-4,
          atol: 1e-4,
          name: `${name}: scores`,
        });
        deepEqual(D, want.expansions.length);
      } finally {
        tb.destroy();
        scratchArena.destroy();
      }
    }
  } finally {
    io.destroy();
    kv.destroy();
    draft.destroy();
  }
});
