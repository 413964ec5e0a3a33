import assert from "node:assert/strict";
import { attentionRope } from "./attention_rope.ts";
import { attention, packMask } from "./attention.ts";
import { ropeQkv } from "./rope.ts";
import { assertAllClose, randn, rng, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { attentionRef, ropeRef } from "../reference/ops.ts";
import { ShapeError } from "../errors.ts";

interface Case {
  nH: number;
  nKV: number;
  hd: number;
  T: number;
  /** Cache row of new token 0 (static part). */
  row: number;
  /** Dynamic part (meta[2]) of row, positions and length; 0 = no dynamic values. */
  dyn: number;
  /** Explicit positions (tree depths) instead of row + t. */
  positions?: number[];
  /** Tree mask over the T new keys (ancestor-or-self), else causal. */
  tree?: boolean;
}

const CASES: Case[] = [
  { nH: 4, nKV: 2, hd: 32, T: 1, row: 37, dyn: 0 }, // decode
  { nH: 6, nKV: 2, hd: 64, T: 5, row: 300, dyn: 0 }, // several keys tiles
  { nH: 1, nKV: 1, hd: 8, T: 8, row: 0, dyn: 0 }, // empty prefix, D4 = 2
  { nH: 4, nKV: 2, hd: 32, T: 3, row: 4, dyn: 29, positions: [0, 1, 1], tree: true }, // draft-like
  { nH: 8, nKV: 4, hd: 16, T: 7, row: 0, dyn: 70, tree: true },
];

Deno.test("attentionRope equals ropeQkv → attention bit for bit, and the f64 RoPE + attention reference", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 23, "acts");
  const theta = 10000;
  let seed = 11;
  for (const c of CASES) {
    arena.reset();
    seed += 5;
    const { nH, nKV, hd, T } = c;
    const row0 = c.row + c.dyn, kvLen = row0 + T, S = kvLen + 6, kvW = nKV * hd, W = (nH + 2 * nKV) * hd;
    const qkv = randn(T * W, seed);
    const oldK = randn(row0 * kvW, seed + 1), oldV = randn(row0 * kvW, seed + 2);
    const cache = (old: Float32Array) => {
      const a = new Float32Array(S * kvW).fill(NaN); // rows ≥ row0 must be written before use
      a.set(old);
      return a;
    };
    const pos = c.positions
      ? c.positions.map((p) => p + c.dyn)
      : Array.from({ length: T }, (_, t) => row0 + t);
    const r = rng(seed + 3);
    const tree = new Uint8Array(T * T).map((
      _,
      i,
    ) => (i % (T + 1) === 0 || (i % T < i / T && r() < 0.5) ? 1 : 0));
    const tQkv = arena.upload(qkv, [T, W], "f32", "qkv");
    const meta = arena.upload(new Uint32Array([5, 6, c.dyn]), [3], "u32", "meta");
    const tPos = c.positions
      ? arena.upload(new Uint32Array(c.positions), [T], "u32", "positions")
      : undefined;
    const tMask = arena.upload(packMask(tree, T, T), [T, Math.ceil(T / 32)], "u32", "tree");
    const dynv = c.dyn ? { meta, index: 2 } : undefined;
    const common = {
      numHeads: nH,
      numKvHeads: nKV,
      headDim: hd,
      theta,
      cacheRow: c.row,
      pos0: c.row,
      positions: tPos,
      dynamicRow: dynv,
      dynamicPos: dynv,
    };
    const attOpts = {
      kvLen: c.row + T,
      dynamicLen: dynv,
      treeMask: c.tree ? { mask: tMask, treeLen: T } : undefined,
    };
    // Two-dispatch path.
    const k1 = arena.upload(cache(oldK), [S, kvW], "f32", "k1"),
      v1 = arena.upload(cache(oldV), [S, kvW], "f32", "v1");
    const q = arena.alloc([T, nH * hd], "f32", "q"), out1 = arena.alloc([T, nH * hd], "f32", "out1");
    ropeQkv(rec, q, k1, v1, tQkv, common);
    attention(rec, out1, q, k1, v1, {
      numHeads: nH,
      numKvHeads: nKV,
      headDim: hd,
      ...attOpts,
      kernel: "workgroup",
    });
    // Fused.
    const k2 = arena.upload(cache(oldK), [S, kvW], "f32", "k2"),
      v2 = arena.upload(cache(oldV), [S, kvW], "f32", "v2");
    const out2 = arena.alloc([T, nH * hd], "f32", "out2");
    attentionRope(rec, out2, tQkv, k2, v2, { ...common, ...attOpts });
    const bits = async (t: Tensor) => Array.from(new Uint32Array((await rec.read(t)).buffer));
    const name = `nH${nH}/${nKV} hd${hd} T${T} row${c.row}+${c.dyn}${c.tree ? " tree" : ""}`;
    assert.deepEqual(await bits(out2), await bits(out1), `out bits ${name}`);
    assert.deepEqual(await bits(k2), await bits(k1), `k cache bits ${name}`);
    assert.deepEqual(await bits(v2), await bits(v1), `v cache bits ${name}`);
    // f64 reference: RoPE of the q and k parts, attention over old rows + the new rows.
    const qPart = new Float32Array(T * nH * hd),
      kPart = new Float32Array(T * kvW),
      vPart = new Float32Array(T * kvW);
    for (let t = 0; t < T; t++) {
      qPart.set(qkv.subarray(t * W, t * W + nH * hd), t * nH * hd);
      kPart.set(qkv.subarray(t * W + nH * hd, t * W + nH * hd + kvW), t * kvW);
      vPart.set(qkv.subarray(t * W + nH * hd + kvW, (t + 1) * W), t * kvW);
    }
    const qr = ropeRef(qPart, pos, theta, hd), kr = ropeRef(kPart, pos, theta, hd);
    const K = new Float32Array(kvLen * kvW), V = new Float32Array(kvLen * kvW);
    K.set(oldK), K.set(kr, row0 * kvW), V.set(oldV), V.set(vPart, row0 * kvW);
    const mask = new Uint8Array(T * kvLen);
    for (let t = 0; t < T; t++) {
      mask.fill(1, t * kvLen, t * kvLen + row0);
      for (let j = 0; j < T; j++) mask[t * kvLen + row0 + j] = c.tree ? tree[t * T + j] : j <= t ? 1 : 0;
    }
    const want = attentionRef(qr, K, V, mask, 1 / Math.sqrt(hd), {
      tq: T,
      tk: kvLen,
      nHeads: nH,
      nKvHeads: nKV,
      headDim: hd,
    });
    assertAllClose(await rec.readF32(out2), want, { rtol: 1e-4, atol: 3e-5, name: `f64 ${name}` });
    assertAllClose((await rec.readF32(k2)).subarray(row0 * kvW, kvLen * kvW), kr, {
      rtol: 1e-4,
      atol: 1e-5,
      name: `k ${name}`,
    });
  }
  // Bad input: too many tokens, aliasing output.
  const qkv9 = arena.alloc([9, 128], "f32", "qkv9"), kc = arena.alloc([32, 32], "f32", "kc");
  const opts = { numHeads: 2, numKvHeads: 1, headDim: 32, theta: 1e4, cacheRow: 0, kvLen: 9 };
  assert.throws(
    () => attentionRope(rec, arena.alloc([9, 64], "f32"), qkv9, kc, kc, opts),
    (e) => e instanceof ShapeError && e.message.includes("T 9"),
  );
  const qkv2 = arena.alloc([2, 128], "f32", "qkv2");
  assert.throws(
    () => attentionRope(rec, qkv2.rows(1).reshape([2, 64]), qkv2, kc, kc, { ...opts, kvLen: 2 }),
    (e) => e instanceof ShapeError && e.message.includes("overlaps"),
  );
  arena.destroy();
});
