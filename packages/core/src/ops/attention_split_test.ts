import assert from "node:assert/strict";
import { attention, packMask } from "./attention.ts";
import { attentionSplits, attentionSplitScratch } from "./attention_split.ts";
import { assertAllClose, randn, rng, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { attentionRef, causalMask } from "../reference/ops.ts";
import { ShapeError } from "../errors.ts";

/** Rows [kvLen, S) of a cache hold NaN / huge garbage that must never be read. */
function withGarbage(valid: Float32Array, kvLen: number, S: number, w: number): Float32Array {
  const c = new Float32Array(S * w);
  c.set(valid);
  for (let i = kvLen * w; i < S * w; i++) c[i] = i % 2 ? NaN : 1e30;
  return c;
}

type Kind = "causal" | "random" | "tree-dynamic";

Deno.test("split-K attention equals the f64 reference (causal, bitset, prefix+tree with GPU length; odd shapes, empty splits, out = q)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 24, "acts");
  const cases: [number, number, number, number, number, number, Kind][] = [
    // nH, nKV, hd, Tq, kvLen, splits, mask
    [4, 2, 32, 1, 1, 2, "causal"], // fewer keys than splits: empty chunks
    [4, 2, 32, 1, 300, 7, "causal"],
    [6, 2, 64, 3, 1100, 5, "causal"],
    [1, 1, 4, 8, 70, 64, "causal"],
    [8, 4, 8, 5, 333, 3, "random"],
    [4, 2, 32, 1, 257, 4, "random"],
    [6, 2, 64, 7, 517, 6, "tree-dynamic"],
    [4, 2, 32, 2, 40, 3, "tree-dynamic"],
  ];
  let seed = 1;
  for (const [nH, nKV, hd, Tq, kvLen, splits, kind] of cases) {
    for (const alias of [false, true]) {
      seed += 3;
      arena.reset();
      const S = kvLen + 9, kvW = nKV * hd;
      const q = randn(Tq * nH * hd, seed), k = randn(kvLen * kvW, seed + 1), v = randn(kvLen * kvW, seed + 2);
      const tQ = arena.upload(q, [Tq, nH * hd], "f32", "q");
      const tK = arena.upload(withGarbage(k, kvLen, S, kvW), [S, kvW], "f32", "kCache");
      const tV = arena.upload(withGarbage(v, kvLen, S, kvW), [S, kvW], "f32", "vCache");
      const tOut = alias ? tQ : arena.alloc([Tq, nH * hd], "f32", "out");
      const scratch = arena.alloc([attentionSplitScratch(Tq, nH, hd, splits)], "f32", "split");
      const base = { numHeads: nH, numKvHeads: nKV, headDim: hd, split: { scratch, splits } };
      let mask: Uint8Array;
      if (kind === "causal") {
        mask = causalMask(Tq, kvLen, kvLen - Tq);
        attention(rec, tOut, tQ, tK, tV, { ...base, kvLen });
      } else if (kind === "random") {
        const r = rng(seed + 3);
        mask = new Uint8Array(Tq * kvLen).map(() => (r() < 0.5 ? 1 : 0));
        mask.fill(0, 0, kvLen); // query 0 sees nothing: zeros
        const tMask = arena.upload(packMask(mask, Tq, kvLen), [Tq, Math.ceil(kvLen / 32)], "u32", "mask");
        attention(rec, tOut, tQ, tK, tV, { ...base, kvLen, mask: tMask });
      } else {
        // Prefix + tree of Tq nodes at the end, valid length = 5 + meta[1] on the GPU.
        const r = rng(seed + 4);
        const tree = new Uint8Array(Tq * Tq).map((_, i) => (i % (Tq + 1) === 0 || r() < 0.4 ? 1 : 0));
        mask = new Uint8Array(Tq * kvLen);
        for (let t = 0; t < Tq; t++) {
          mask.fill(1, t * kvLen, t * kvLen + kvLen - Tq);
          for (let j = 0; j < Tq; j++) mask[t * kvLen + kvLen - Tq + j] = tree[t * Tq + j];
        }
        const tMask = arena.upload(packMask(tree, Tq, Tq), [Tq, Math.ceil(Tq / 32)], "u32", "tree");
        const meta = arena.upload(new Uint32Array([99, kvLen - 5, 99]), [3], "u32", "meta");
        attention(rec, tOut, tQ, tK, tV, {
          ...base,
          kvLen: 5,
          treeMask: { mask: tMask, treeLen: Tq },
          dynamicLen: { meta, index: 1 },
        });
      }
      const dims = { tq: Tq, tk: kvLen, nHeads: nH, nKvHeads: nKV, headDim: hd };
      const want = attentionRef(q, k, v, mask, 1 / Math.sqrt(hd), dims);
      assertAllClose(await rec.readF32(tOut), want, {
        rtol: 1e-4,
        atol: 2e-5,
        name: `split ${kind} nH${nH}/${nKV} hd${hd} Tq${Tq} kv${kvLen} splits${splits}${
          alias ? " out=q" : ""
        }`,
      });
    }
  }
  // Too little scratch is one clear error naming the tensor.
  const small = arena.alloc([10], "f32", "tiny_scratch");
  const q1 = arena.alloc([1, 128], "f32", "q1"), kc = arena.alloc([64, 64], "f32", "kc");
  assert.throws(
    () =>
      attention(rec, q1, q1, kc, kc, {
        numHeads: 4,
        numKvHeads: 2,
        headDim: 32,
        kvLen: 64,
        split: { scratch: small, splits: 4 },
      }),
    (e) => e instanceof ShapeError && e.message.includes("tiny_scratch"),
  );
  arena.destroy();
});

Deno.test("attentionSplits: no split for short caches or many queries, bounded by keys and the maximum", async () => {
  const { rec } = await testGpu();
  assert.equal(attentionSplits(rec, 1, 4, 100), 1);
  assert.equal(attentionSplits(rec, 64, 32, 4096), 1);
  const s = attentionSplits(rec, 1, 1, 1 << 20);
  assert.ok(s > 1 && s <= 64, `splits ${s}`);
});
