/**
 * Throughput of the linear kernels (packages/core/src/ops/linear.ts): the tiled f32 matmul in
 * GFLOP/s at model shapes, the naive one-thread-per-output kernel as a baseline, and the matvec
 * (decode) kernel in GB/s of weight streamed, for f32 and f16 weights (the adapter's default matvec:
 * rows-per-thread on software adapters, the 256-thread reduction on hardware).
 *
 * Method: R dispatches of the same op are encoded into one compute pass and submitted once; the
 * time from submit to `onSubmittedWorkDone` is measured (Deno adds ~10 ms of completion latency,
 * which is reported, not subtracted — R is grown until one run takes ≥ 200 ms so that GPU time
 * dominates). `median_ms` is the median over repetitions of (run time / R), i.e. per op.
 *
 * Also: a draft-tree level's token selection, `logSoftmax` → `topk` (two dispatches, k + 3 row passes)
 * against the fused `topkLogSoftmax` (one dispatch, one row pass; row cached in workgroup memory when it
 * fits, and the uncached variant), on (rows, Vd, k) of the bundled drafts; and decode attention (one
 * query over 128–2048 cached keys, tiny's and small's heads) with and without split-K.
 *
 * Run: `deno run -A benchmarks/kernels_bench.ts [--quick] [--tune] [--select-only | --attention-only]`
 * (`--tune` also times several tile configurations of the tiled kernel; the `-only` flags run one section).
 * @module
 */
import { describeGpu, type GpuDevice, requestGpu } from "../packages/core/src/gpu/device.ts";
import { BufferArena } from "../packages/core/src/gpu/arena.ts";
import { KernelCache } from "../packages/core/src/gpu/kernel.ts";
import { Recorder } from "../packages/core/src/gpu/recorder.ts";
import type { Tensor } from "../packages/core/src/gpu/tensor.ts";
import {
  defaultMatvecRows,
  defaultTile,
  linear,
  type LinearKernel,
  type TileConfig,
} from "../packages/core/src/ops/linear.ts";
import { logSoftmax } from "../packages/core/src/ops/softmax.ts";
import { topk } from "../packages/core/src/ops/select.ts";
import { topkLogSoftmax } from "../packages/core/src/ops/topk.ts";
import { attention } from "../packages/core/src/ops/attention.ts";
import { median } from "./stats.ts";

/** One measured configuration. */
export interface BenchRow {
  /** Kernel and variant, e.g. `matmul f32 tiled 4x4/16x16`. */
  name: string;
  /** Problem shape, e.g. `M=64 K=384 N=384`. */
  shape: string;
  /** Median milliseconds per op (run time / R, completion latency included). */
  median_ms: number;
  /** Achieved GFLOP/s (2·M·N·K per op), for compute-bound rows. */
  gflops?: number;
  /** Achieved GB/s of weight + activation bytes per op, for memory-bound rows. */
  gbps?: number;
}

/** Options of {@link benchKernels}. */
export interface BenchKernelsOptions {
  /** Smaller shapes and fewer repetitions (CI / smoke runs). */
  quick?: boolean;
  /** Also time several tile configurations of the tiled kernel. */
  tune?: boolean;
  /** The device (default: a new one from `requestGpu`). */
  gpu?: GpuDevice;
  /** Repetitions per row (default 5, quick 3). */
  reps?: number;
  /** Target wall time of one run in ms (default 200). */
  minRunMs?: number;
  /** Only one section: the tree-level selection rows or the decode attention rows. */
  only?: "select" | "attention";
}

/** Fill a tensor with small pseudo-random values (f32 or f16 bits) without a CPU reference. */
function fill(
  arena: BufferArena,
  shape: number[],
  dtype: "f32" | "f16",
  name: string,
): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (dtype === "f16") {
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) bits[i] = 0x2000 | ((i * 2654435761) >>> 22) & 0x3ff; // ~[0.0078, 0.0156)
    return arena.upload(bits, shape, "f16", name);
  }
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (((i * 2654435761) >>> 8) & 0xffff) / 65536 - 0.5;
  return arena.upload(v, shape, "f32", name);
}

/** Time `op` recorded R times per submit; R grows until a run takes ≥ minRunMs. Returns ms per op. */
async function timeOp(rec: Recorder, op: () => void, reps: number, minRunMs: number): Promise<number> {
  const maxR = 8192; // the recorder's uniform arena holds 16384 slots; stay well inside one submit
  const run = async (R: number): Promise<number> => {
    for (let i = 0; i < R; i++) op();
    const t0 = performance.now();
    rec.submit();
    await rec.gpu.device.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  };
  await run(1); // compile + warm
  let R = 1;
  let t = await run(R);
  while (t < minRunMs && R < maxR) {
    R = Math.min(maxR, Math.max(R * 2, Math.ceil((R * minRunMs * 1.2) / Math.max(t, 1))));
    t = await run(R);
  }
  const times: number[] = [t / R];
  for (let i = 1; i < reps; i++) times.push((await run(R)) / R);
  return median(times);
}

/** Run the kernel benchmarks and print a table; returns the rows. */
export async function benchKernels(opts: BenchKernelsOptions = {}): Promise<BenchRow[]> {
  const gpu = opts.gpu ?? await requestGpu();
  const software = gpu.isFallback || /llvmpipe|lavapipe|swiftshader/i.test(gpu.adapterName);
  const quick = opts.quick ?? false;
  const reps = opts.reps ?? (quick ? 3 : 5);
  const minRunMs = opts.minRunMs ?? 200;
  const rec = new Recorder(gpu, new KernelCache(gpu));
  const rows: BenchRow[] = [];
  console.log(`adapter: ${describeGpu(gpu)}`);
  console.log(`method: R ops per submit, submit→onSubmittedWorkDone ≥ ${minRunMs} ms, median of ${reps}`);

  const matmul = async (
    M: number,
    K: number,
    N: number,
    kernel: LinearKernel,
    tile?: TileConfig,
    wd: "f32" | "f16" = "f32",
    matvecRows?: number,
    rowsPerThread?: 2 | 4 | 8,
  ): Promise<void> => {
    const acts = new BufferArena(gpu, 4 * (M * K + M * N) + 4096, "bench-acts");
    const weights = new BufferArena(gpu, (wd === "f16" ? 2 : 4) * N * K + 4096, "bench-w");
    try {
      const x = fill(acts, [M, K], "f32", "x"), w = fill(weights, [N, K], wd, "w");
      const out = acts.alloc([M, N], "f32", "out");
      const ms = await timeOp(
        rec,
        () => linear(rec, out, x, w, { kernel, tile, matvecRows, matvecRowsPerThread: rowsPerThread }),
        reps,
        minRunMs,
      );
      const t = tile ?? defaultTile(rec, M, N);
      const kname = kernel === "tiled"
        ? `tiled ${t.tm}x${t.tm}/${t.tx}x${t.ty} bk${t.bk} (${t.ty * t.tm}x${t.tx * t.tm})`
        : kernel === "direct"
        ? "direct 16x8/8x8 (128x64)"
        : kernel === "matvec"
        ? (matvecRows === undefined && software
          ? `matvec rows-per-thread ${rowsPerThread ?? 8}`
          : `matvec reduce rows${matvecRows ?? defaultMatvecRows(rec)}`)
        : kernel;
      const bytes = (wd === "f16" ? 2 : 4) * N * K + 4 * (M * K + M * N);
      const row: BenchRow = { name: `linear ${wd} ${kname}`, shape: `M=${M} K=${K} N=${N}`, median_ms: ms };
      if (kernel === "matvec") row.gbps = bytes / ms / 1e6;
      else row.gflops = (2 * M * N * K) / ms / 1e6;
      rows.push(row);
      console.log(
        `${row.name.padEnd(46)} ${row.shape.padEnd(24)} ${ms.toFixed(3).padStart(10)} ms  ${
          row.gflops !== undefined ? `${row.gflops.toFixed(1).padStart(8)} GFLOP/s` : ""
        }${row.gbps !== undefined ? `${row.gbps.toFixed(1).padStart(8)} GB/s` : ""}`,
      );
    } finally {
      await gpu.device.queue.onSubmittedWorkDone();
      acts.destroy();
      weights.destroy();
    }
  };

  const report = (row: BenchRow) => {
    rows.push(row);
    console.log(`${row.name.padEnd(46)} ${row.shape.padEnd(24)} ${row.median_ms.toFixed(3).padStart(10)} ms`);
  };
  // Draft-tree level selection: R rows of Vd draft logits → top-k log-probs (R = 1 at level 0, k after).
  const select = async (R: number, Vd: number, k: number): Promise<void> => {
    const arena = new BufferArena(gpu, 4 * (2 * R * Vd + 2 * R * k) + 4096, "bench-select");
    try {
      const x = fill(arena, [R, Vd], "f32", "logits"), lp = arena.alloc([R, Vd], "f32", "lp");
      const ids = arena.alloc([R, k], "u32", "ids"), vals = arena.alloc([R, k], "f32", "vals");
      const shape = `R=${R} Vd=${Vd} k=${k}`;
      const two = () => {
        logSoftmax(rec, lp, x);
        topk(rec, ids, vals, lp, k);
      };
      report({
        name: "select logSoftmax + topk (2 dispatches)",
        shape,
        median_ms: await timeOp(rec, two, reps, minRunMs),
      });
      for (const cache of ["auto", "never"] as const) {
        const ms = await timeOp(rec, () => topkLogSoftmax(rec, ids, vals, x, k, { cache }), reps, minRunMs);
        report({
          name: `select topkLogSoftmax${cache === "never" ? " uncached" : ""}`,
          shape,
          median_ms: ms,
        });
      }
    } finally {
      await gpu.device.queue.onSubmittedWorkDone();
      arena.destroy();
    }
  };
  if (opts.only !== "attention") {
    const shapes = quick ? [[10, 1024, 10]] : [[1, 1024, 10], [10, 1024, 10], [10, 2048, 10], [10, 8192, 10]];
    for (const [R, Vd, k] of shapes) await select(R, Vd, k);
  }
  // Decode attention (Tq query rows over kv cached keys): one workgroup per (query, head) against
  // split-K (keys of each (query, head) over `splits` workgroups + a merge dispatch).
  const attn = async (Tq: number, nH: number, nKV: number, hd: number, kv: number): Promise<void> => {
    const splitsList = [1, 2, 4, 8, 16].filter((s) => s === 1 || kv / s >= 64);
    const bytes = 4 * (2 * Tq * nH * hd + 2 * kv * nKV * hd + Tq * nH * 16 * (hd + 4)) + 8192;
    const arena = new BufferArena(gpu, bytes, "bench-attn");
    try {
      const q = fill(arena, [Tq, nH * hd], "f32", "q"), out = arena.alloc([Tq, nH * hd], "f32", "out");
      const kc = fill(arena, [kv, nKV * hd], "f32", "k"), vc = fill(arena, [kv, nKV * hd], "f32", "v");
      const scratch = arena.alloc([Tq * nH * 16 * (hd + 4)], "f32", "split");
      for (const splits of splitsList) {
        const op = () =>
          attention(rec, out, q, kc, vc, {
            numHeads: nH,
            numKvHeads: nKV,
            headDim: hd,
            kvLen: kv,
            split: { scratch, splits },
          });
        const name = splits === 1 ? "attention (1 workgroup per query·head)" : `attention split-K ${splits}`;
        const shape = `Tq=${Tq} nH=${nH}/${nKV} hd=${hd} kv=${kv}`;
        report({ name, shape, median_ms: await timeOp(rec, op, reps, minRunMs) });
      }
    } finally {
      await gpu.device.queue.onSubmittedWorkDone();
      arena.destroy();
    }
  };
  if (opts.only !== "select") {
    for (const kv of quick ? [1024] : [128, 512, 2048]) {
      await attn(1, 4, 2, 32, kv); // tiny
      await attn(1, 6, 2, 64, kv); // small
    }
  }
  if (opts.only) {
    rec.destroy();
    return rows;
  }

  // Tiled f32 matmul at model shapes (K = N = hidden sizes of the bundled/small models).
  const ms = quick ? [64, 256] : [64, 128, 256, 512];
  for (const h of [384, 1024]) for (const M of ms) await matmul(M, h, h, "tiled");
  const big = quick || software ? 1024 : 4096;
  await matmul(big, big, big, "tiled");
  // Direct (no workgroup memory) kernel, the software-adapter default, at the same shapes.
  if (software) {
    await matmul(256, 1024, 1024, "direct");
    await matmul(big, big, big, "direct");
  }
  // Naive baseline (one thread per output) at a shape also measured tiled above.
  await matmul(256, 1024, 1024, "naive");
  if (!software) await matmul(big, big, big, "naive");
  if (opts.tune) {
    const tiles: TileConfig[] = [
      { tx: 16, ty: 16, tm: 4, bk: 16 },
      { tx: 16, ty: 16, tm: 4, bk: 32 },
      { tx: 8, ty: 8, tm: 4, bk: 16 },
      { tx: 8, ty: 8, tm: 4, bk: 32 },
      { tx: 16, ty: 8, tm: 4, bk: 16 },
      { tx: 8, ty: 8, tm: 8, bk: 16 },
      { tx: 16, ty: 16, tm: 8, bk: 16 },
      { tx: 16, ty: 16, tm: 8, bk: 8 },
    ];
    for (const tile of tiles) await matmul(512, 1024, 1024, "tiled", tile);
    for (const rows of [8, 32, 64, 256]) await matmul(1, 384, 8192, "matvec", undefined, "f32", rows);
    if (software) {
      for (const rpt of [2, 4, 8] as const) {
        await matmul(1, 384, 8192, "matvec", undefined, "f32", undefined, rpt);
      }
    }
  }
  // Matvec (decode, M = 1) GB/s for f32 and f16 weights; N × K weights.
  const mv: [number, number][] = [[8192, 128], [1024, 384], [8192, 384]];
  if (!software && !quick) mv.push([14336, 4096], [32768, 4096]);
  for (const wd of gpu.features.f16 ? ["f32", "f16"] as const : ["f32"] as const) {
    for (const [N, K] of mv) await matmul(1, K, N, "matvec", undefined, wd);
    const [N, K] = software ? [8192, 384] : [14336, 4096];
    await matmul(8, K, N, "matvec", undefined, wd); // a small tree / draft batch
  }
  rec.destroy();
  return rows;
}

if (import.meta.main) {
  await benchKernels({
    quick: Deno.args.includes("--quick"),
    tune: Deno.args.includes("--tune"),
    only: Deno.args.includes("--select-only")
      ? "select"
      : Deno.args.includes("--attention-only")
      ? "attention"
      : undefined,
  });
}
