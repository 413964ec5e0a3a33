import assert from "node:assert/strict";
import { attention, packMask } from "./attention.ts";
import { assertAllClose, randn, rng, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { attentionRef, causalMask } from "../reference/ops.ts";
import { ShapeError } from "../errors.ts";

const CONFIGS: [number, number, number][] = [[4, 2, 32], [6, 2, 64], [8, 4, 8], [1, 1, 4]];
const TQS = [1, 3, 17, 60];
const KVS = [1, 5, 70, 300];

/** A cache (S, w) whose rows [0, kvLen) are `valid` and whose later rows are NaN / huge garbage. */
function withGarbage(valid: Float32Array, kvLen: number, S: number, w: number): Float32Array {
  const c = new Float32Array(S * w);
  c.set(valid);
  for (let i = kvLen * w; i < S * w; i++) c[i] = i % 2 ? NaN : 1e30;
  return c;
}

async function check(
  nH: number,
  nKV: number,
  hd: number,
  Tq: number,
  kvLen: number,
  maskKind: "causal" | "random",
  seed: number,
  arena: BufferArena,
  kernel: "workgroup" | "lanes" = "workgroup",
): Promise<void> {
  const { rec } = await testGpu();
  arena.reset();
  const S = kvLen + 7;
  const kvW = nKV * hd;
  const q = randn(Tq * nH * hd, seed);
  const k = randn(kvLen * kvW, seed + 1), v = randn(kvLen * kvW, seed + 2);
  let mask: Uint8Array;
  if (maskKind === "causal") {
    mask = causalMask(Tq, kvLen, kvLen - Tq);
  } else {
    const r = rng(seed + 3);
    mask = new Uint8Array(Tq * kvLen).map(() => (r() < 0.5 ? 1 : 0));
    const empty = Tq > 1 ? 1 : 0; // an all-false row (the only row when Tq = 1 and seed is odd)
    if (Tq > 1 || seed % 2) mask.fill(0, empty * kvLen, (empty + 1) * kvLen);
  }
  const tQ = arena.upload(q, [Tq, nH * hd], "f32", "q");
  const tK = arena.upload(withGarbage(k, kvLen, S, kvW), [S, kvW], "f32", "kCache");
  const tV = arena.upload(withGarbage(v, kvLen, S, kvW), [S, kvW], "f32", "vCache");
  const tOut = arena.alloc([Tq, nH * hd], "f32", "out");
  const opts = { numHeads: nH, numKvHeads: nKV, headDim: hd, kvLen, kernel };
  if (maskKind === "causal") {
    attention(rec, tOut, tQ, tK, tV, opts);
  } else {
    const tMask = arena.upload(packMask(mask, Tq, kvLen), [Tq, Math.ceil(kvLen / 32)], "u32", "mask");
    attention(rec, tOut, tQ, tK, tV, { ...opts, mask: tMask });
  }
  const dims = { tq: Tq, tk: kvLen, nHeads: nH, nKvHeads: nKV, headDim: hd };
  const expected = attentionRef(q, k, v, mask, 1 / Math.sqrt(hd), dims);
  assertAllClose(await rec.readF32(tOut), expected, {
    rtol: 1e-4,
    atol: 2e-5,
    name: `attention (${kernel}) nH=${nH} nKV=${nKV} hd=${hd} Tq=${Tq} kvLen=${kvLen} ${maskKind}`,
  });
}

Deno.test("attention matches attentionRef: causal and random masks, GQA, garbage beyond kvLen", async () => {
  const { gpu } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "test");
  let seed = 10;
  for (const [nH, nKV, hd] of CONFIGS) {
    for (const Tq of TQS) {
      for (const kvLen of KVS) {
        if (Tq > kvLen) continue;
        for (const maskKind of ["causal", "random"] as const) {
          await check(nH, nKV, hd, Tq, kvLen, maskKind, seed++, arena);
        }
      }
    }
  }
  // the largest supported head dim, a head dim that does not divide the workgroup (hd = 96),
  // a long cache (several tiles) for the 256- and 128-thread variants
  await check(2, 1, 128, 3, 300, "causal", 1, arena);
  await check(2, 1, 128, 40, 300, "random", 2, arena);
  await check(3, 1, 96, 2, 70, "causal", 3, arena);
  await check(3, 1, 96, 30, 70, "random", 4, arena);
  await check(4, 2, 32, 1, 1100, "causal", 5, arena);
  await check(4, 2, 32, 20, 1100, "causal", 6, arena);
  arena.destroy();
});

Deno.test("attention lanes kernel (software adapters) matches attentionRef: causal, random masks, GQA 1–4", async () => {
  const { gpu } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "test");
  let seed = 500;
  // G = nH / nKV heads per kv head share one invocation's key loop: 1, 2, 3 and 4; odd Tq and kvLen.
  for (const [nH, nKV, hd] of [[4, 2, 32], [6, 2, 64], [8, 4, 8], [1, 1, 4], [4, 1, 12], [3, 3, 16]]) {
    for (const Tq of [1, 3, 17, 60]) {
      for (const kvLen of [1, 5, 70, 300]) {
        if (Tq > kvLen) continue;
        for (const maskKind of ["causal", "random"] as const) {
          await check(nH, nKV, hd, Tq, kvLen, maskKind, seed++, arena, "lanes");
        }
      }
    }
  }
  await check(2, 1, 128, 40, 300, "random", 2, arena, "lanes");
  await check(3, 1, 96, 30, 70, "random", 4, arena, "lanes");
  await check(4, 2, 32, 20, 1100, "causal", 6, arena, "lanes");
  arena.destroy();
});

Deno.test("attention: explicit scale, out aliasing q", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 20, "test");
  const [nH, nKV, hd, Tq, kvLen] = [4, 2, 16, 5, 9];
  const q = randn(Tq * nH * hd, 1), k = randn(kvLen * nKV * hd, 2), v = randn(kvLen * nKV * hd, 3);
  const tK = arena.upload(k, [kvLen, nKV * hd], "f32", "k");
  const tV = arena.upload(v, [kvLen, nKV * hd], "f32", "v");
  const dims = { tq: Tq, tk: kvLen, nHeads: nH, nKvHeads: nKV, headDim: hd };
  for (const kernel of ["workgroup", "lanes"] as const) {
    const tQ = arena.upload(q, [Tq, nH * hd], "f32", "q");
    attention(rec, tQ, tQ, tK, tV, { numHeads: nH, numKvHeads: nKV, headDim: hd, kvLen, scale: 0.3, kernel });
    assertAllClose(
      await rec.readF32(tQ),
      attentionRef(q, k, v, causalMask(Tq, kvLen, kvLen - Tq), 0.3, dims),
      {
        name: `attention (${kernel}) in place, scale 0.3`,
      },
    );
  }
  arena.destroy();
});

Deno.test("attention validates shapes; packMask layout", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "test");
  const q = arena.alloc([3, 4 * 8], "f32", "q");
  const out = arena.alloc([3, 4 * 8], "f32", "out");
  const k = arena.alloc([10, 2 * 8], "f32", "kCache");
  const v = arena.alloc([10, 2 * 8], "f32", "vCache");
  const opts = { numHeads: 4, numKvHeads: 2, headDim: 8, kvLen: 5 };
  assert.throws(() => attention(rec, out, q, k, v, { ...opts, kvLen: 11 }), ShapeError);
  assert.throws(() => attention(rec, out, q, k, v, { ...opts, kvLen: 2 }), /Tq 3/);
  assert.throws(() => attention(rec, out, q, k, v, { ...opts, numKvHeads: 3 }), ShapeError);
  assert.throws(() => attention(rec, out, q, k, v, { ...opts, headDim: 6, numHeads: 4 }), ShapeError);
  const big = arena.alloc([1, 132], "f32", "big");
  assert.throws(
    () => attention(rec, big, big, k, v, { numHeads: 1, numKvHeads: 1, headDim: 132, kvLen: 1 }),
    /headDim 132/,
  );
  assert.throws(
    () => attention(rec, out, q, k, v, { ...opts, mask: arena.alloc([3, 2], "u32", "mask") }),
    /mask/,
  );
  const m = new Uint8Array(2 * 40);
  m[0] = 1;
  m[33] = 1;
  m[40 + 31] = 1;
  assert.deepEqual([...packMask(m, 2, 40)], [1, 2, 0x80000000, 0]);
  assert.throws(() => packMask(m, 2, 41), ShapeError);
  await rec.finish();
  arena.destroy();
});

Deno.test("attention with a GPU-resident length and prefix + tree mask matches attentionRef", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "attn-tree");
  const shapes = [[4, 2, 32, 37, 60], [6, 2, 64, 5, 9], [2, 1, 8, 0, 33]];
  for (
    const [kernel, [nH, nKV, hd, prefix, treeLen]] of shapes.flatMap((sh) =>
      [["workgroup", sh], ["lanes", sh]] as const
    )
  ) {
    arena.reset();
    const kvLen = prefix + treeLen, S = kvLen + 5, kvW = nKV * hd;
    const r = rng(kvLen);
    // Random ancestor-style tree mask: every node sees itself, others at random.
    const tree = new Uint8Array(treeLen * treeLen).map((
      _,
      i,
    ) => (i % (treeLen + 1) === 0 || r() < 0.3 ? 1 : 0));
    const full = new Uint8Array(treeLen * kvLen);
    for (let t = 0; t < treeLen; t++) {
      for (let j = 0; j < kvLen; j++) full[t * kvLen + j] = j < prefix ? 1 : tree[t * treeLen + j - prefix];
    }
    const q = randn(treeLen * nH * hd, 1), k = randn(kvLen * kvW, 2), v = randn(kvLen * kvW, 3);
    const tQ = arena.upload(q, [treeLen, nH * hd], "f32", "q");
    const tK = arena.upload(withGarbage(k, kvLen, S, kvW), [S, kvW], "f32", "kCache");
    const tV = arena.upload(withGarbage(v, kvLen, S, kvW), [S, kvW], "f32", "vCache");
    const words = Math.ceil(treeLen / 32);
    const tMask = arena.upload(packMask(tree, treeLen, treeLen), [treeLen, words], "u32", "treeMask");
    // The committed length lives on the GPU: meta[1] = prefix; the static base is treeLen.
    const meta = arena.upload(new Uint32Array([999, prefix, 7]), [3], "u32", "meta");
    const out = arena.alloc([treeLen, nH * hd], "f32", "out");
    attention(rec, out, tQ, tK, tV, {
      numHeads: nH,
      numKvHeads: nKV,
      headDim: hd,
      kvLen: treeLen,
      treeMask: { mask: tMask, treeLen },
      dynamicLen: { meta, index: 1 },
      kernel,
    });
    const dims = { tq: treeLen, tk: kvLen, nHeads: nH, nKvHeads: nKV, headDim: hd };
    assertAllClose(await rec.readF32(out), attentionRef(q, k, v, full, 1 / Math.sqrt(hd), dims), {
      rtol: 1e-4,
      atol: 2e-5,
      name: `tree attention (${kernel}) nH=${nH} prefix=${prefix} tree=${treeLen}`,
    });
    // Causal with a dynamic length: Tq = 3 new tokens after meta[1] = prefix cached ones.
    const tq = 3;
    const out2 = arena.alloc([tq, nH * hd], "f32", "out2");
    const q2 = arena.upload(q.subarray(0, tq * nH * hd), [tq, nH * hd], "f32", "q2");
    attention(rec, out2, q2, tK, tV, {
      numHeads: nH,
      numKvHeads: nKV,
      headDim: hd,
      kvLen: tq,
      dynamicLen: { meta, index: 1 },
      kernel,
    });
    const len2 = prefix + tq;
    const dims2 = { tq, tk: len2, nHeads: nH, nKvHeads: nKV, headDim: hd };
    const exp2 = attentionRef(
      q.subarray(0, tq * nH * hd),
      k.subarray(0, len2 * kvW),
      v.subarray(0, len2 * kvW),
      causalMask(tq, len2, prefix),
      1 / Math.sqrt(hd),
      dims2,
    );
    assertAllClose(await rec.readF32(out2), exp2, { rtol: 1e-4, atol: 2e-5, name: "dynamic causal" });
  }
  arena.destroy();
});

Deno.test("attention: every workgroup size (the GPU defaults 256/128 and the software 64) matches", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "attn-wg");
  for (const [nH, nKV, hd, Tq, kvLen] of [[4, 2, 32, 1, 300], [6, 2, 64, 17, 70], [2, 1, 128, 3, 600]]) {
    arena.reset();
    const kvW = nKV * hd;
    const q = randn(Tq * nH * hd, 1), k = randn(kvLen * kvW, 2), v = randn(kvLen * kvW, 3);
    const tQ = arena.upload(q, [Tq, nH * hd], "f32", "q");
    const tK = arena.upload(k, [kvLen, kvW], "f32", "k"), tV = arena.upload(v, [kvLen, kvW], "f32", "v");
    const dims = { tq: Tq, tk: kvLen, nHeads: nH, nKvHeads: nKV, headDim: hd };
    const expected = attentionRef(q, k, v, causalMask(Tq, kvLen, kvLen - Tq), 1 / Math.sqrt(hd), dims);
    for (const wg of [32, 64, 128, 256] as const) {
      if (wg < hd / 4) continue;
      const out = arena.alloc([Tq, nH * hd], "f32", "out");
      attention(rec, out, tQ, tK, tV, {
        numHeads: nH,
        numKvHeads: nKV,
        headDim: hd,
        kvLen,
        workgroupSize: wg,
      });
      assertAllClose(await rec.readF32(out), expected, {
        rtol: 1e-4,
        atol: 2e-5,
        name: `wg ${wg} hd ${hd} kv ${kvLen}`,
      });
    }
  }
  arena.destroy();
});

Deno.test("attention segmented mode (per-tree prefix + own tree keys) equals the f64 reference with an explicit mask", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "acts");
  // [nH, nKV, hd, groups, queriesPerGroup, treeLen, blockSize, blockStride, treeBase, prefixes, wg]
  const cases: [number, number, number, number, number, number, number, number, number, number[], number?][] =
    [
      [3, 1, 12, 5, 3, 9, 3, 17, 40, [0, 1, 17, 40, 23]], // draft expansion e = 2 of 5 trees, k = 3
      [4, 2, 32, 3, 37, 37, 37, 111, 70, [5, 70, 33], 32], // verification of 3 trees of 37 nodes
      [2, 2, 8, 2, 4, 10, 4, 9, 3, [3, 0], 128], // partial last block
      [6, 2, 64, 1, 6, 6, 6, 6, 130, [129]],
    ];
  for (const [nH, nKV, hd, G, qpg, treeLen, blk, stride, treeBase, prefixes, wg] of cases) {
    const Tq = G * qpg;
    const blocks = Math.ceil(treeLen / blk);
    const rowOf = (g: number, jt: number) => treeBase + Math.floor(jt / blk) * stride + g * blk + (jt % blk);
    const S = rowOf(G - 1, treeLen - 1) + 1 + 5;
    const kvW = nKV * hd;
    const seed = Tq * 7 + treeLen;
    const k = randn(S * kvW, seed + 1), v = randn(S * kvW, seed + 2), q = randn(Tq * nH * hd, seed);
    const r = rng(seed + 3);
    const bits = new Uint8Array(Tq * treeLen).map(() => (r() < 0.5 ? 1 : 0));
    bits.fill(0, 0, treeLen); // query 0: no tree key (with prefix 0 in case 1: an all-masked row)
    const mask = new Uint8Array(Tq * S); // explicit (Tq, S) over physical rows
    const used = new Uint8Array(S);
    for (let t = 0; t < Tq; t++) {
      const g = Math.floor(t / qpg);
      for (let j = 0; j < prefixes[g]; j++) mask[t * S + j] = used[j] = 1;
      for (let jt = 0; jt < treeLen; jt++) {
        used[rowOf(g, jt)] = 1;
        if (bits[t * treeLen + jt]) mask[t * S + rowOf(g, jt)] = 1;
      }
    }
    // Rows nobody may read hold NaN on the GPU (zeros for the reference).
    const kg = k.slice(), vg = v.slice();
    for (let j = 0; j < S; j++) {
      if (used[j]) continue;
      kg.fill(NaN, j * kvW, (j + 1) * kvW);
      vg.fill(NaN, j * kvW, (j + 1) * kvW);
      k.fill(0, j * kvW, (j + 1) * kvW);
      v.fill(0, j * kvW, (j + 1) * kvW);
    }
    const tQ = arena.upload(q, [Tq, nH * hd], "f32", "q");
    const tK = arena.upload(kg, [S, kvW], "f32", "kCache");
    const tV = arena.upload(vg, [S, kvW], "f32", "vCache");
    const tMask = arena.upload(packMask(bits, Tq, treeLen), [Tq, Math.ceil(treeLen / 32)], "u32", "treeBits");
    const meta = arena.upload(new Uint32Array([99, 99, ...prefixes]), [G + 2], "u32", "prefixes");
    const tOut = arena.alloc([Tq, nH * hd], "f32", "out");
    const segmented = {
      prefix: { meta, index: 2 },
      queriesPerGroup: qpg,
      mask: tMask,
      treeLen,
      treeBase,
      blockSize: blk,
      blockStride: stride,
    };
    const opts = { numHeads: nH, numKvHeads: nKV, headDim: hd, kvLen: S, segmented };
    const dims = { tq: Tq, tk: S, nHeads: nH, nKvHeads: nKV, headDim: hd };
    const expected = attentionRef(q, k, v, mask, 1 / Math.sqrt(hd), dims);
    for (const kernel of ["workgroup", "lanes"] as const) {
      const o = kernel === "lanes"
        ? { ...opts, kernel }
        : wg
        ? { ...opts, workgroupSize: wg as 32 | 128 }
        : opts;
      attention(rec, tOut, tQ, tK, tV, { ...o, kernel });
      assertAllClose(await rec.readF32(tOut), expected, {
        rtol: 1e-4,
        atol: 2e-5,
        name: `${kernel} segmented G ${G} qpg ${qpg} tree ${treeLen}/${blk}x${blocks} base ${treeBase}`,
      });
    }
    arena.reset();
  }
  // Bad layouts name the problem.
  const q = arena.alloc([6, 8], "f32", "q"), kc = arena.alloc([20, 8], "f32", "kc");
  const meta = arena.alloc([2], "u32", "pre");
  const m = arena.alloc([6, 1], "u32", "bits");
  const base = { numHeads: 1, numKvHeads: 1, headDim: 8, kvLen: 20 };
  const seg = { prefix: { meta, index: 0 }, queriesPerGroup: 3, mask: m, treeLen: 3, treeBase: 10 };
  assert.throws(
    () => attention(rec, q, q, kc, kc, { ...base, segmented: { ...seg, queriesPerGroup: 4 } }),
    /divide/,
  );
  assert.throws(
    () => attention(rec, q, q, kc, kc, { ...base, segmented: { ...seg, treeBase: 15 } }),
    /reach row 20/,
  );
  assert.throws(
    () => attention(rec, q, q, kc, kc, { ...base, segmented: { ...seg, prefix: { meta, index: 1 } } }),
    /prefixes \[1, 3\) outside pre/,
  );
  assert.throws(() => attention(rec, q, q, kc, kc, { ...base, segmented: seg, mask: m }), /at most one/);
  arena.destroy();
});
