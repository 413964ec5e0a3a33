import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { draftInput } from "./draft_input.ts";
import { embedding } from "./embedding.ts";
import { rmsNorm } from "./norm.ts";
import { assertAllClose, randn, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { Recorder } from "../gpu/recorder.ts";
import { draftInputRef, embeddingRef } from "../reference/ops.ts";
import { ShapeError } from "../errors.ts";

const KERNELS = ["workgroup", "lanes"] as const;
// [V, H, T, S, idsOffset]: odd sizes, H past one 256-thread stride, T = 1.
const SHAPES: [number, number, number, number, number][] = [
  [5, 1, 1, 1, 0],
  [50, 7, 9, 4, 3],
  [33, 300, 4, 11, 2],
  [3, 257, 3, 5, 1],
];

const readPair = async (rec: Recorder, en: Tensor, hn: Tensor): Promise<Float32Array> => {
  const a = await rec.readF32(en), b = await rec.readF32(hn);
  const y = new Float32Array(a.length + b.length);
  y.set(a);
  y.set(b, a.length);
  return y;
};

Deno.test("draftInput matches draftInputRef (both kernels, with and without a row gather, f32/f16 table)", async () => {
  const { gpu, rec } = await testGpu();
  const acts = new BufferArena(gpu, 1 << 21, "acts");
  const weights = new BufferArena(gpu, 1 << 21, "weights");
  for (const kernel of KERNELS) {
    for (const [V, H, T, S, off] of SHAPES) {
      const table = randn(V * H, V + H), hidden = randn(S * H, S * 3 + H, 3);
      const gIn = randn(H, H + 1), gHid = randn(H, H + 2);
      const ring = Uint32Array.from({ length: off + T + 1 }, (_, i) => (i * 7919 + 3) % V);
      const rows = Uint32Array.from({ length: T }, (_, t) => (t * 5 + 2) % S);
      const tTable = weights.upload(table, [V, H], "f32", "table");
      const tIn = weights.upload(gIn, [H], "f32", "g_in"), tHid = weights.upload(gHid, [H], "f32", "g_hid");
      const tIds = acts.upload(ring, [ring.length], "u32", "ids");
      const tIdx = acts.upload(rows, [T], "u32", "rows");
      const tHidden = acts.upload(hidden, [S, H], "f32", "hidden");
      const en = acts.alloc([T, H], "f32", "en"), hn = acts.alloc([T, H], "f32", "hn");
      const picked = acts.alloc([T, H], "f32", "picked");
      const ids = ring.subarray(off, off + T);
      const name = `draftInput ${kernel} V=${V} H=${H} T=${T} S=${S}`;
      const tol = { rtol: 1e-5, atol: 1e-6 };
      draftInput(rec, en, hn, tTable, tIds, tHidden, tIn, tHid, 1e-5, {
        idsOffset: off,
        kernel,
        gather: { index: tIdx, out: picked },
      });
      assertAllClose(await readPair(rec, en, hn), draftInputRef(table, ids, hidden, rows, gIn, gHid, 1e-5), {
        name: `${name} gather`,
        ...tol,
      });
      assertAllClose(await rec.readF32(picked), embeddingRef(hidden, rows, H), {
        name: `${name} picked rows`,
        rtol: 0,
        atol: 0,
      });
      if (S >= T) {
        draftInput(rec, en, hn, tTable, tIds, tHidden, tIn, tHid, 1e-6, { idsOffset: off, kernel });
        assertAllClose(
          await readPair(rec, en, hn),
          draftInputRef(table, ids, hidden, null, gIn, gHid, 1e-6),
          {
            name,
            ...tol,
          },
        );
      }
      if (gpu.features.f16) {
        const t16 = new Float16Array(table);
        const tab16 = weights.upload(new Uint16Array(t16.buffer), [V, H], "f16", "table16");
        draftInput(rec, en, hn, tab16, tIds, tHidden, tIn, tHid, 1e-5, {
          idsOffset: off,
          kernel,
          gather: { index: tIdx, out: picked },
        });
        const want = draftInputRef(Float32Array.from(t16), ids, hidden, rows, gIn, gHid, 1e-5);
        assertAllClose(await readPair(rec, en, hn), want, { name: `${name} f16 table`, ...tol });
      }
      acts.reset();
      weights.reset();
    }
  }
  acts.destroy();
  weights.destroy();
});

Deno.test("draftInput is bit-identical to embedding + rmsNorm + rmsNorm (+ the row gather) on each kernel", async () => {
  const { gpu, rec } = await testGpu();
  const acts = new BufferArena(gpu, 1 << 21, "acts");
  const weights = new BufferArena(gpu, 1 << 21, "weights");
  for (const kernel of KERNELS) {
    for (const [V, H, T, S] of [[40, 129, 10, 7], [9, 300, 3, 3]]) {
      const tTable = weights.upload(randn(V * H, 11), [V, H], "f32", "table");
      const tIn = weights.upload(randn(H, 12), [H], "f32", "g_in");
      const tHid = weights.upload(randn(H, 13), [H], "f32", "g_hid");
      const tIds = acts.upload(
        Uint32Array.from({ length: T }, (_, t) => (t * 13 + 1) % V),
        [T],
        "u32",
        "ids",
      );
      const tIdx = acts.upload(Uint32Array.from({ length: T }, (_, t) => (T - t) % S), [T], "u32", "rows");
      const tHidden = acts.upload(randn(S * H, 14, 4), [S, H], "f32", "hidden");
      const en = acts.alloc([T, H], "f32", "en"), hn = acts.alloc([T, H], "f32", "hn");
      const picked = acts.alloc([T, H], "f32", "picked");
      draftInput(rec, en, hn, tTable, tIds, tHidden, tIn, tHid, 1e-5, {
        kernel,
        gather: { index: tIdx, out: picked },
      });
      const fused = new Uint32Array((await readPair(rec, en, hn)).buffer);
      // Unfused: the embedding op gathers the hidden rows too (a table lookup by row index).
      const emb = acts.alloc([T, H], "f32", "emb"), hin = acts.alloc([T, H], "f32", "hin");
      const en2 = acts.alloc([T, H], "f32", "en2"), hn2 = acts.alloc([T, H], "f32", "hn2");
      embedding(rec, emb, tTable, tIds);
      embedding(rec, hin, tHidden, tIdx);
      rmsNorm(rec, en2, emb, tIn, 1e-5, { kernel });
      rmsNorm(rec, hn2, hin, tHid, 1e-5, { kernel });
      const separate = new Uint32Array((await readPair(rec, en2, hn2)).buffer);
      equal(fused.length, separate.length);
      const diff = fused.findIndex((b, i) => b !== separate[i]);
      equal(diff, -1, `${kernel} V=${V} H=${H} T=${T}: first differing element ${diff}`);
      deepEqual(await rec.readF32(picked), await rec.readF32(hin));
      acts.reset();
      weights.reset();
    }
  }
  acts.destroy();
  weights.destroy();
});

Deno.test("draftInput writes NaN rows for an out-of-range id or row index (no silent clamp)", async () => {
  const { gpu, rec } = await testGpu();
  const a = new BufferArena(gpu, 1 << 16, "a");
  const w = new BufferArena(gpu, 1 << 16, "w");
  const H = 6;
  for (const kernel of KERNELS) {
    const table = w.upload(randn(4 * H, 1), [4, H], "f32", "table");
    const g = w.upload(randn(H, 2), [H], "f32", "g");
    const ids = a.upload(Uint32Array.of(1, 4), [2], "u32", "ids"); // 4 ≥ V
    const idx = a.upload(Uint32Array.of(3, 0), [2], "u32", "idx"); // 3 ≥ S
    const hidden = a.upload(randn(3 * H, 3), [3, H], "f32", "hidden");
    const en = a.alloc([2, H], "f32", "en"), hn = a.alloc([2, H], "f32", "hn");
    const picked = a.alloc([2, H], "f32", "picked");
    draftInput(rec, en, hn, table, ids, hidden, g, g, 1e-5, { kernel, gather: { index: idx, out: picked } });
    const out = await readPair(rec, en, hn);
    const nanRow = (r: number) => out.subarray(r * H, (r + 1) * H).every(Number.isNaN);
    ok(!nanRow(0) && nanRow(1) && nanRow(2) && !nanRow(3), `${kernel}: NaN rows exactly 1 and 2`);
    a.reset();
    w.reset();
  }
  a.destroy();
  w.destroy();
});

Deno.test("draftInput rejects bad shapes, short ids / index and overlapping outputs, naming the tensor", async () => {
  const { gpu, rec } = await testGpu();
  const a = new BufferArena(gpu, 1 << 16, "a");
  const table = a.alloc([10, 8], "f32", "table"), g = a.alloc([8], "f32", "g");
  const ids = a.alloc([3], "u32", "ids"), idx = a.alloc([2], "u32", "idx");
  const hidden = a.alloc([2, 8], "f32", "hidden");
  const en = a.alloc([3, 8], "f32", "en"), picked = a.alloc([3, 8], "f32", "picked");
  const hn = a.alloc([3, 8], "f32", "hn");
  throws(() => draftInput(rec, en, a.alloc([2, 8], "f32", "hn2"), table, ids, hidden, g, g, 1e-5), /hn2/);
  throws(() => draftInput(rec, en, hn, table, ids, hidden, g, g, 1e-5), /hidden has 2 rows < T=3/);
  throws(() => draftInput(rec, en, hn, table, ids.rows(2), hidden, g, g, 1e-5), /ids has 2 ids/);
  throws(
    () => draftInput(rec, en, hn, table, ids, hidden, g, g, 1e-5, { gather: { index: idx, out: picked } }),
    /idx has 2 entries/,
  );
  // `picked` lies between en and hn, inside the span bound for both.
  throws(
    () => draftInput(rec, en, hn, table, ids, hidden, g, g, 1e-5, { gather: { index: ids, out: picked } }),
    /overlaps picked|picked overlaps/,
  );
  throws(() => draftInput(rec, en, en, table, ids, hidden, g, g, 1e-5), /en overlaps en/);
  throws(() => draftInput(rec, en, hn, table, ids, hidden, a.alloc([7], "f32", "g7"), g, 1e-5), ShapeError);
  a.destroy();
});
