import assert from "node:assert/strict";
import { linear, type LinearKernel, MATVEC_MAX_M, type TileConfig } from "./linear.ts";
import { assertAllClose, randn, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { requestGpu } from "../gpu/device.ts";
import { Recorder } from "../gpu/recorder.ts";
import { KernelCache } from "../gpu/kernel.ts";
import { ShapeError } from "../errors.ts";
import { linearRef, rmsNormRef, swigluRef } from "../reference/ops.ts";

/** f32 → f16 bits (round to nearest even), and back: what the GPU sees for an f16 weight. */
function toF16(v: Float32Array): { bits: Uint16Array; rounded: Float32Array } {
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  const bits = new Uint16Array(v.length), rounded = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    f[0] = v[i];
    const x = u[0], sign = (x >>> 16) & 0x8000, exp = (x >>> 23) & 0xff, man = x & 0x7fffff;
    let h: number;
    if (exp === 0xff) h = sign | 0x7c00 | (man ? 0x200 : 0);
    else {
      const e = exp - 127 + 15;
      if (e >= 0x1f) h = sign | 0x7c00;
      else if (e <= 0) {
        if (e < -10) h = sign;
        else {
          const m = man | 0x800000, shift = 14 - e;
          let r = m >>> shift;
          const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
          if (rem > half || (rem === half && (r & 1))) r++;
          h = sign | r;
        }
      } else {
        let r = (e << 10) | (man >>> 13);
        const rem = man & 0x1fff;
        if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++;
        h = sign | r;
      }
    }
    bits[i] = h;
    const he = (h >>> 10) & 0x1f, hm = h & 0x3ff, s = h & 0x8000 ? -1 : 1;
    rounded[i] = he === 0
      ? s * hm * 2 ** -24
      : he === 0x1f
      ? (hm ? NaN : s * Infinity)
      : s * (1 + hm / 1024) * 2 ** (he - 15);
  }
  return { bits, rounded };
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 128, 384],
  [2, 7, 5],
  [3, 130, 67],
  [4, 64, 260],
  [8, 96, 8192],
  [5, 33, 129],
  [9, 16, 16],
  [17, 33, 65],
  [64, 128, 384],
  [130, 200, 77],
  [33, 257, 130],
];

async function check(
  M: number,
  K: number,
  N: number,
  opts: {
    f16?: boolean;
    residual?: "none" | "separate" | "inplace";
    kernel?: LinearKernel;
    tile?: TileConfig;
    matvecRows?: number;
    directRows?: 8 | 16;
    directThreadRows?: 1 | 2 | 4 | 8;
    matvecKind?: "reduce" | "rows";
    matvecQuads?: boolean;
  },
): Promise<void> {
  const { gpu, rec } = await testGpu();
  const acts = new BufferArena(gpu, 1 << 24, "acts");
  const weights = new BufferArena(gpu, 1 << 24, "weights");
  try {
    const seed = M * 1_000_003 + K * 1009 + N;
    const x = randn(M * K, seed), w = randn(N * K, seed + 1, 1 / Math.sqrt(K));
    const tx = acts.upload(x, [M, K], "f32", "x");
    let tw, wUsed = w;
    if (opts.f16) {
      const h = toF16(w);
      tw = weights.upload(h.bits, [N, K], "f16", "w");
      wUsed = h.rounded;
    } else {
      tw = weights.upload(w, [N, K], "f32", "w");
    }
    const expected = linearRef(x, wUsed, M, K, N);
    const mode = opts.residual ?? "none";
    const r = randn(M * N, seed + 2);
    const out = mode === "inplace" ? acts.upload(r, [M, N], "f32", "out") : acts.alloc([M, N], "f32", "out");
    let residual;
    if (mode === "separate") residual = acts.upload(r, [M, N], "f32", "res");
    if (mode === "inplace") residual = out;
    if (mode !== "none") { for (let i = 0; i < expected.length; i++) expected[i] += r[i]; }
    linear(rec, out, tx, tw, {
      residual,
      kernel: opts.kernel,
      tile: opts.tile,
      matvecRows: opts.matvecRows,
      directRows: opts.directRows,
      directThreadRows: opts.directThreadRows,
      matvecKind: opts.matvecKind,
      matvecQuads: opts.matvecQuads,
    });
    assertAllClose(await rec.readF32(out), expected, {
      name: `linear M=${M} K=${K} N=${N} ${JSON.stringify(opts)}`,
      rtol: 1e-4,
      atol: 2e-5 * Math.sqrt(K),
    });
  } finally {
    acts.destroy();
    weights.destroy();
  }
}

Deno.test("linear f32 matches linearRef on odd shapes (auto kernel), all residual modes", async () => {
  for (const [M, K, N] of SHAPES) {
    for (const residual of ["none", "separate", "inplace"] as const) await check(M, K, N, { residual });
  }
});

Deno.test("linear: matvec and tiled paths agree with the reference on the same shapes", async () => {
  for (const [M, K, N] of [[1, 5, 3], [3, 130, 67], [8, 96, 300], [7, 64, 1000]] as const) {
    await check(M, K, N, { kernel: "matvec" });
    await check(M, K, N, { kernel: "matvec", matvecKind: "rows", matvecQuads: false, residual: "separate" });
    await check(M, K, N, { kernel: "tiled", residual: "inplace" });
    await check(M, K, N, { kernel: "naive", residual: "separate" });
  }
});

Deno.test("linear: matvec is correct for every rows-per-workgroup setting (hardware default is 8)", async () => {
  for (const matvecRows of [1, 8, 64, 256]) {
    for (const [M, K, N] of [[1, 130, 67], [8, 96, 300], [5, 1, 9]] as const) {
      await check(M, K, N, { matvecRows, residual: "inplace" });
    }
  }
  const { rec } = await testGpu();
  const acts = new BufferArena(rec.gpu, 1 << 16, "acts");
  const x = acts.alloc([1, 4], "f32", "x"), out = acts.alloc([1, 4], "f32", "out");
  assert.throws(() => linear(rec, out, x, acts.alloc([4, 4], "f32", "w"), { matvecRows: 3 }), /power of two/);
  acts.destroy();
});

Deno.test("linear: every tile configuration is correct on edge shapes", async () => {
  const tiles: TileConfig[] = [
    { tx: 16, ty: 16, tm: 4, bk: 16 },
    { tx: 16, ty: 16, tm: 8, bk: 16 },
    { tx: 8, ty: 8, tm: 8, bk: 16 },
    { tx: 8, ty: 8, tm: 4, bk: 8 },
    { tx: 16, ty: 8, tm: 4, bk: 32 },
  ];
  for (const tile of tiles) {
    for (const [M, K, N] of [[17, 33, 65], [130, 200, 77], [129, 64, 140]] as const) {
      await check(M, K, N, { kernel: "tiled", tile });
    }
  }
});

Deno.test("linear direct (software) matmul matches linearRef on odd shapes, 8 and 16 rows per thread", async () => {
  // Shapes straddle the 128×64 / 64×64 workgroup tiles and K % 4 != 0 (scalar loader).
  const shapes: [number, number, number][] = [
    [9, 16, 16],
    [17, 33, 65],
    [130, 200, 77],
    [129, 64, 140],
    [200, 36, 129],
    [60, 36, 130], // a 60-node tree: 4 thread rows of 16
    [33, 20, 70],
  ];
  for (const directRows of [8, 16] as const) {
    for (const [M, K, N] of shapes) {
      for (const residual of ["none", "separate", "inplace"] as const) {
        await check(M, K, N, { kernel: "direct", directRows, residual });
      }
    }
    // Every thread-row count, including ones that leave rows past M or cover M only with many groups.
    for (const directThreadRows of [1, 2, 4, 8] as const) {
      await check(41, 24, 72, { kernel: "direct", directRows, directThreadRows, residual: "separate" });
    }
  }
});

Deno.test("linear f16 weights match linearRef on the f16-rounded weights", async () => {
  const { gpu } = await testGpu();
  if (!gpu.features.f16) {
    console.log(`skipping f16 weights: ${gpu.adapterName} has no shader-f16`);
    return;
  }
  for (const [M, K, N] of SHAPES) {
    await check(M, K, N, { f16: true, residual: M % 2 ? "inplace" : "separate" });
  }
  await check(64, 128, 384, { f16: true, kernel: "tiled", tile: { tx: 16, ty: 16, tm: 8, bk: 16 } });
  await check(130, 200, 77, { f16: true, kernel: "direct", residual: "separate" });
  await check(129, 33, 65, { f16: true, kernel: "direct", directRows: 8 });
});

Deno.test("linear rejects bad shapes, dtypes, overlaps and f16 without shader-f16", async () => {
  const { gpu, rec } = await testGpu();
  const acts = new BufferArena(gpu, 1 << 20, "acts");
  const weights = new BufferArena(gpu, 1 << 20, "weights");
  try {
    const x = acts.alloc([3, 8], "f32", "x");
    const w = weights.alloc([5, 8], "f32", "w");
    const out = acts.alloc([3, 5], "f32", "out");
    assert.throws(() => linear(rec, acts.alloc([3, 6], "f32", "o2"), x, w), ShapeError);
    assert.throws(() => linear(rec, out, acts.alloc([3, 7], "f32", "x2"), w), /x2/);
    assert.throws(() => linear(rec, out, x, w, { residual: acts.alloc([5, 3], "f32", "r") }), /r: expected/);
    assert.throws(() => linear(rec, out, acts.alloc([3, 8], "i32", "xi"), w), /xi: expected dtype/);
    assert.throws(() => linear(rec, x.reshape([3, 8]), x, weights.alloc([8, 8], "f32")), /overlaps/);
    assert.throws(
      () => linear(rec, acts.alloc([9, 5], "f32"), acts.alloc([9, 8], "f32", "x9"), w, { kernel: "matvec" }),
      new RegExp(`M ≤ ${MATVEC_MAX_M}`),
    );
    // A device without shader-f16: an f16 weight is refused with a message naming it.
    const noF16 = await requestGpu({ disableF16: true });
    const rec2 = new Recorder(noF16, new KernelCache(noF16));
    const a2 = new BufferArena(noF16, 1 << 20, "a2");
    const w16 = a2.alloc([5, 8], "f16", "w16");
    assert.throws(
      () => linear(rec2, a2.alloc([3, 5], "f32"), a2.alloc([3, 8], "f32"), w16),
      /w16 is f16 but the device has no shader-f16/,
    );
    a2.destroy();
    rec2.destroy();
    noF16.device.destroy();
  } finally {
    acts.destroy();
    weights.destroy();
  }
});

Deno.test("linear: a weight in the activation arena is bound read_write and still correct", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 20, "shared");
  try {
    const [M, K, N] = [2, 12, 7];
    const x = randn(M * K, 5), w = randn(N * K, 6);
    const out = arena.alloc([M, N], "f32", "out");
    linear(rec, out, arena.upload(x, [M, K], "f32", "x"), arena.upload(w, [N, K], "f32", "w"));
    assertAllClose(await rec.readF32(out), linearRef(x, w, M, K, N), { name: "shared-buffer weight" });
  } finally {
    arena.destroy();
  }
});

/** Fused matvec (norm and/or swiglu, residual) against rmsNormRef → linearRef → swigluRef. */
async function checkFused(
  M: number,
  K: number,
  N: number,
  opts: {
    norm?: boolean;
    swiglu?: boolean;
    residual?: boolean;
    f16?: boolean;
    sharedWeights?: boolean;
    matvecKind?: "reduce" | "rows";
    matvecRowsPerThread?: 2 | 4 | 8;
    matvecRows?: number;
    matvecQuads?: boolean;
    kernel?: "direct";
    directThreadRows?: 1 | 2 | 4 | 8;
  },
): Promise<void> {
  const { gpu, rec } = await testGpu();
  const acts = new BufferArena(gpu, 1 << 22, "acts");
  const weights = opts.sharedWeights ? acts : new BufferArena(gpu, 1 << 22, "weights");
  try {
    const NW = opts.swiglu ? 2 * N : N;
    const seed = M * 7919 + K * 31 + N + (opts.norm ? 1 : 0) + (opts.swiglu ? 2 : 0);
    const x = randn(M * K, seed, 3), w = randn(NW * K, seed + 1, 1 / Math.sqrt(K));
    const gw = randn(K, seed + 2, 0.5).map((v) => 1 + v);
    let wUsed = w;
    let tw;
    if (opts.f16) {
      const h = toF16(w);
      tw = weights.upload(h.bits, [NW, K], "f16", "w");
      wUsed = h.rounded;
    } else {
      tw = weights.upload(w, [NW, K], "f32", "w");
    }
    const tg = weights.upload(gw, [K], "f32", "g");
    const xin = opts.norm ? rmsNormRef(x, gw, 1e-5) : x;
    const y = linearRef(xin, wUsed, M, K, NW); // (M, NW)
    let expected = y;
    if (opts.swiglu) {
      const gate = new Float32Array(M * N), up = new Float32Array(M * N);
      for (let m = 0; m < M; m++) {
        gate.set(y.subarray(m * NW, m * NW + N), m * N);
        up.set(y.subarray(m * NW + N, (m + 1) * NW), m * N);
      }
      expected = swigluRef(gate, up);
    }
    const r = randn(M * N, seed + 3);
    const out = opts.residual ? acts.upload(r, [M, N], "f32", "out") : acts.alloc([M, N], "f32", "out");
    if (opts.residual) expected = expected.map((v, i) => v + r[i]);
    linear(rec, out, acts.upload(x, [M, K], "f32", "x"), tw, {
      norm: opts.norm ? { weight: tg, eps: 1e-5 } : undefined,
      swiglu: opts.swiglu,
      residual: opts.residual ? out : undefined,
      matvecKind: opts.matvecKind,
      matvecRowsPerThread: opts.matvecRowsPerThread,
      matvecRows: opts.matvecRows,
      matvecQuads: opts.matvecQuads,
      kernel: opts.kernel,
      directThreadRows: opts.directThreadRows,
    });
    assertAllClose(await rec.readF32(out), expected, {
      name: `fused linear M=${M} K=${K} N=${N} ${JSON.stringify(opts)}`,
      rtol: 1e-4,
      atol: 5e-5 * Math.sqrt(K),
    });
  } finally {
    acts.destroy();
    if (!opts.sharedWeights) weights.destroy();
  }
}

Deno.test("linear: fused RMSNorm / SwiGLU matvec (both kernels, every rows setting) match the references", async () => {
  const shapes: [number, number, number][] = [[1, 128, 384], [1, 130, 67], [3, 64, 9], [8, 96, 300], [
    5,
    7,
    1,
  ], [6, 36, 70]];
  for (const [M, K, N] of shapes) {
    for (const [norm, swiglu] of [[true, false], [false, true], [true, true]]) {
      for (const matvecRowsPerThread of [2, 4, 8] as const) {
        // x rows in quads (the default for M ≥ 3) and in pairs.
        for (const matvecQuads of [true, false]) {
          await checkFused(M, K, N, {
            norm,
            swiglu,
            matvecKind: "rows",
            matvecRowsPerThread,
            matvecQuads,
            residual: !swiglu,
          });
        }
      }
      for (const matvecRows of [2, 8, 64]) {
        await checkFused(M, K, N, { norm, swiglu, matvecKind: "reduce", matvecRows, residual: swiglu });
      }
    }
  }
  // f16 weights, and a norm weight sharing the activation buffer (bound read_write).
  await checkFused(2, 128, 200, { norm: true, swiglu: true, f16: true, matvecKind: "rows" });
  await checkFused(2, 128, 200, { norm: true, swiglu: true, f16: true, matvecKind: "reduce" });
  await checkFused(1, 64, 33, { norm: true, sharedWeights: true, matvecKind: "rows" });
  await checkFused(1, 64, 33, { norm: true, swiglu: true, sharedWeights: true, matvecKind: "reduce" });
});

Deno.test("linear: fused RMSNorm / SwiGLU in the direct kernel (matmul_sw16, M > 8 on software) match the references", async () => {
  // Odd M / N, K % 4 != 0 (scalar loads), several 16-row blocks and thread-row counts.
  const shapes: [number, number, number][] = [
    [9, 128, 67],
    [10, 130, 33],
    [17, 36, 70],
    [40, 64, 9],
    [3, 7, 5],
  ];
  for (const [M, K, N] of shapes) {
    for (const [norm, swiglu] of [[true, false], [false, true], [true, true]]) {
      await checkFused(M, K, N, { norm, swiglu, kernel: "direct", residual: !swiglu });
      await checkFused(M, K, N, { norm, swiglu, kernel: "direct", residual: swiglu, directThreadRows: 8 });
    }
  }
  await checkFused(12, 128, 200, { norm: true, swiglu: true, f16: true, kernel: "direct" });
  await checkFused(11, 64, 33, { norm: true, sharedWeights: true, kernel: "direct" });
  await checkFused(11, 64, 33, { norm: true, swiglu: true, sharedWeights: true, kernel: "direct" });
});

Deno.test("linear: fused options are validated", async () => {
  const { gpu, rec } = await testGpu();
  const acts = new BufferArena(gpu, 1 << 20, "acts");
  try {
    const x = acts.alloc([9, 8], "f32", "x"), x1 = acts.alloc([1, 8], "f32", "x1");
    const g = acts.alloc([8], "f32", "g");
    assert.throws(
      () =>
        linear(rec, acts.alloc([9, 4], "f32"), x, acts.alloc([4, 8], "f32"), {
          norm: { weight: g, eps: 1e-5 },
          kernel: "tiled",
        }),
      /matvec kernel/,
    );
    assert.throws(
      () =>
        linear(rec, acts.alloc([9, 4], "f32"), x, acts.alloc([8, 8], "f32"), {
          swiglu: true,
          kernel: "direct",
          directRows: 8,
        }),
      /16 rows per thread/,
    );
    assert.throws(
      () => linear(rec, acts.alloc([1, 2], "f32"), x1, acts.alloc([5, 8], "f32", "w5"), { swiglu: true }),
      /w5/,
    );
    assert.throws(
      () => linear(rec, acts.alloc([1, 4], "f32", "o4"), x1, acts.alloc([4, 8], "f32"), { swiglu: true }),
      /o4: expected/,
    );
    assert.throws(
      () =>
        linear(rec, acts.alloc([1, 4], "f32"), x1, acts.alloc([4, 8], "f32"), {
          norm: { weight: acts.alloc([7], "f32", "g7"), eps: 0 },
        }),
      /g7/,
    );
    assert.throws(
      () =>
        linear(rec, acts.alloc([1, 4], "f32"), x1, acts.alloc([4, 8], "f32"), {
          norm: { weight: g, eps: -1 },
        }),
      /eps/,
    );
    assert.throws(
      () =>
        linear(rec, acts.alloc([1, 4], "f32"), x1, acts.alloc([4, 8], "f32"), {
          matvecKind: "rows",
          matvecRowsPerThread: 3 as 2,
        }),
      /matvecRowsPerThread/,
    );
  } finally {
    acts.destroy();
  }
});
