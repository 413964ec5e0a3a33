import assert from "node:assert/strict";
import { rope, ropeQkv } from "./rope.ts";
import { assertAllClose, randn, rng, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { ropeRef } from "../reference/ops.ts";
import { ShapeError } from "../errors.ts";

const CONFIGS: [number, number, number][] = [[4, 2, 32], [6, 2, 64], [8, 4, 8], [1, 1, 4], [2, 1, 128]];
const THETA = 10000;

/** Columns [c0, c1) of a (rows, cols) row-major matrix. */
function cols(x: Float32Array, rows: number, width: number, c0: number, c1: number): Float32Array {
  const y = new Float32Array(rows * (c1 - c0));
  for (let r = 0; r < rows; r++) y.set(x.subarray(r * width + c0, r * width + c1), r * (c1 - c0));
  return y;
}

Deno.test("ropeQkv splits, ropes q and k, copies v into the cache rows and leaves other rows alone", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "test");
  let seed = 1;
  for (const [nH, nKV, hd] of CONFIGS) {
    for (const T of [1, 3, 17]) {
      for (const mode of ["pos0", "positions", "dynamic"] as const) {
        arena.reset();
        seed++;
        const cacheRow = mode === "pos0" || mode === "dynamic" ? 5 : 0; // dynamic: 1 + meta[0] = 4
        const S = cacheRow + T + 4;
        const W = (nH + 2 * nKV) * hd, kvW = nKV * hd;
        const qkv = randn(T * W, seed);
        const r = rng(seed + 100);
        const pos = Array.from({ length: T }, () => Math.floor(r() * 500));
        const pos0 = 37;
        const positions = mode === "pos0"
          ? pos.map((_, t) => pos0 + t)
          : mode === "dynamic"
          ? pos.map((p) => p + 10)
          : pos;
        const kInit = randn(S * kvW, seed + 200, 100), vInit = randn(S * kvW, seed + 300, 100);
        const tQkv = arena.upload(qkv, [T, W], "f32", "qkv");
        const tQ = arena.alloc([T, nH * hd], "f32", "q");
        const tK = arena.upload(kInit, [S, kvW], "f32", "kCache");
        const tV = arena.upload(vInit, [S, kvW], "f32", "vCache");
        const tPos = arena.upload(
          new Uint32Array(mode === "dynamic" ? pos : positions),
          [T],
          "u32",
          "positions",
        );
        const meta = arena.upload(new Uint32Array([4, 10]), [2], "u32", "meta");
        ropeQkv(rec, tQ, tK, tV, tQkv, {
          numHeads: nH,
          numKvHeads: nKV,
          headDim: hd,
          theta: THETA,
          cacheRow: mode === "dynamic" ? 1 : cacheRow,
          ...(mode === "pos0" ? { pos0 } : { positions: tPos }),
          ...(mode === "dynamic" ? { dynamicRow: { meta, index: 0 }, dynamicPos: { meta, index: 1 } } : {}),
        });
        const name = `nH=${nH} nKV=${nKV} hd=${hd} T=${T} ${mode}`;
        const tol = { rtol: 1e-4, atol: 2e-4 };
        const qExp = ropeRef(cols(qkv, T, W, 0, nH * hd), positions, THETA, hd);
        assertAllClose(await rec.readF32(tQ), qExp, { ...tol, name: `q ${name}` });
        const kExp = kInit.slice(), vExp = vInit.slice();
        kExp.set(ropeRef(cols(qkv, T, W, nH * hd, nH * hd + kvW), positions, THETA, hd), cacheRow * kvW);
        vExp.set(cols(qkv, T, W, nH * hd + kvW, W), cacheRow * kvW);
        assertAllClose(await rec.readF32(tK), kExp, { ...tol, name: `kCache ${name}` });
        assertAllClose(await rec.readF32(tV), vExp, { rtol: 0, atol: 0, name: `vCache ${name}` });
      }
    }
  }
  arena.destroy();
});

Deno.test("rope in place matches ropeRef, including large positions", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "test");
  for (const [nH, , hd] of CONFIGS) {
    for (const [T, base, atol] of [[5, 0, 2e-4], [9, 4000, 2e-3]] as const) {
      arena.reset();
      const x = randn(T * nH * hd, nH * 7 + T);
      const tX = arena.upload(x, [T, nH * hd], "f32", "x");
      const positions = Array.from({ length: T }, (_, t) => base + t);
      rope(rec, tX, { numHeads: nH, headDim: hd, theta: 500000, pos0: base });
      assertAllClose(await rec.readF32(tX), ropeRef(x, positions, 500000, hd), {
        rtol: 1e-4,
        atol,
        name: `rope nH=${nH} hd=${hd} pos0=${base}`,
      });
      // positions tensor, reversed
      const tY = arena.upload(x, [T, nH * hd], "f32", "y");
      const rev = positions.slice().reverse();
      rope(rec, tY, {
        numHeads: nH,
        headDim: hd,
        theta: 500000,
        positions: arena.upload(new Uint32Array(rev), [T], "u32", "pos"),
      });
      assertAllClose(await rec.readF32(tY), ropeRef(x, rev, 500000, hd), {
        rtol: 1e-4,
        atol,
        name: `rope nH=${nH} hd=${hd} positions`,
      });
    }
  }
  arena.destroy();
});

Deno.test("ropeQkv validates shapes and cache bounds", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "test");
  const qkv = arena.alloc([3, 8 * 4], "f32", "qkv");
  const q = arena.alloc([3, 4 * 4], "f32", "q");
  const k = arena.alloc([4, 2 * 4], "f32", "kCache");
  const v = arena.alloc([4, 2 * 4], "f32", "vCache");
  const opts = { numHeads: 4, numKvHeads: 2, headDim: 4, theta: 10000, cacheRow: 0 };
  ropeQkv(rec, q, k, v, qkv, opts);
  assert.throws(() => ropeQkv(rec, q, k, v, qkv, { ...opts, cacheRow: 2 }), ShapeError);
  assert.throws(() => ropeQkv(rec, q, k, v, qkv, { ...opts, numKvHeads: 1 }), /qkv/);
  assert.throws(() => ropeQkv(rec, q, k, v, qkv, { ...opts, headDim: 3 }), ShapeError);
  assert.throws(
    () => ropeQkv(rec, q, k, v, qkv, { ...opts, positions: arena.alloc([2], "u32", "pos") }),
    /pos/,
  );
  await rec.finish();
  arena.destroy();
});
