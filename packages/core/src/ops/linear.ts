/**
 * Linear layers (HF layout, no bias): out = x·wᵀ (+ residual), the op behind every projection of the
 * model (QKV, O, gate/up, down, LM head) in decoding and training.
 *
 * Two kernels, chosen by M (the number of activation rows):
 * - M ≤ {@link MATVEC_MAX_M} (decode, draft steps, small trees): `matvec` (kernels/matvec.wgsl) —
 *   memory-bound, 256-thread workgroups owning 8 weight rows, vec4 loads along K, a workgroup-memory
 *   reduction, and all M rows applied per weight load so the weight is streamed once.
 * - larger M: `matmul8` / `matmul4` (kernels/matmul.wgsl) — K-stepped tiles in workgroup memory,
 *   8×8 or 4×4 outputs per thread in named vec4 registers; the tile shape is picked per adapter.
 *
 * - on software adapters M > 8: `matmul_sw16` (kernel `direct`): 8 × TY threads, 16×8 outputs each,
 *   x and w read straight from storage as vec4 along K (no workgroup memory, no barriers: 24 vec4
 *   loads per 512 FMAs, where `matmul8` needs 16 per 64 plus the staging; llvmpipe turns each load
 *   into a per-lane scalar loop, so that ratio decides), TY the fewest thread rows covering M (a
 *   60-row tree: 4, not 8). With TY fitted to M it beats the M ≤ 24 matvec chunks it replaced
 *   (llvmpipe, loaded, kernel ms: 10×128×2048 1.7 vs 2.6, 16×128×768 0.38 vs 0.99, 24×128×8192 9.3
 *   vs 15.2; 60×128×8192 34 vs 47 for TY 8; docs/engine.md §7). `matmul_sw` (8×8 per thread) is
 *   kept for tuning.
 * - on software adapters (llvmpipe) M ≤ 8 uses `matvec_sw` instead: each thread owns 8 weight rows
 *   and walks all of K with no workgroup memory or barriers (llvmpipe turns every load into a
 *   per-lane scalar loop and every barrier into a coroutine switch, so the number of loads decides;
 *   8192×128 f32: 0.67 ms against ~1.8 ms for `matvec`).
 * The matvec kernels can also fuse an RMSNorm of x into the load (`norm`) and SwiGLU over a fused
 * gate/up weight into the store (`swiglu`), which removes 2 of the 9 dispatches per decoder layer;
 * so can `matmul_sw16` (software adapters, M > 8: the draft's tree levels of more than 8 nodes),
 * not the hardware tiled kernels ({@link linearFuses} says which M a device fuses).
 *
 * Both are prefixed by a loader prelude: kernels/linear_io_vec4.wgsl when K % 4 == 0 (vec4 loads),
 * else kernels/linear_io_scalar.wgsl (scalar loads packed into vec4s). f16 weights use the same
 * sources specialised with `enable f16;` and `vec4<f16>` storage; arithmetic stays f32.
 * The residual add is fused into the store (in place when `residual` is `out`).
 *
 * Kernels are compiled once per (device cache, variant) and looked up by a short key afterwards, so a
 * call costs one Map lookup, shape checks and one recorded dispatch.
 * @module
 */
import { LINEAR_IO_SCALAR_WGSL, LINEAR_IO_VEC4_WGSL, MATMUL_WGSL, MATVEC_WGSL } from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { type Kernel, type KernelCache, specialize } from "../gpu/kernel.ts";
import { ShapeError } from "../errors.ts";
import { grid1d } from "./dispatch.ts";

/** Largest M served by the matrix-vector kernel; larger M uses the tiled matmul. */
export const MATVEC_MAX_M = 8;

/**
 * Which kernel {@link linear} records: `auto` (by M and adapter), or one forced (tests and benchmarks):
 * `tiled` = `matmul8`/`matmul4`, `direct` = `matmul_sw16`/`matmul_sw` (the software-adapter default).
 */
export type LinearKernel = "auto" | "matvec" | "tiled" | "direct" | "naive";

/** A tile configuration of the tiled kernel: TX×TY threads, TM×TM outputs each, BK-deep K steps. */
export interface TileConfig {
  /** Threads along N. */
  tx: number;
  /** Threads along M. */
  ty: number;
  /** Outputs per thread along each of M and N: 4 (`matmul4`) or 8 (`matmul8`). */
  tm: 4 | 8;
  /** K elements per workgroup-memory step (multiple of 4). */
  bk: number;
}

/** Options of {@link linear}. */
export interface LinearOptions {
  /** (M, N) f32 added to the product; may be the same tensor as `out` (in-place residual add). */
  residual?: Tensor;
  /** Force a kernel (default `auto`). `matvec` requires M ≤ {@link MATVEC_MAX_M}. */
  kernel?: LinearKernel;
  /** Override the tiled kernel's tile configuration (benchmarks / tuning). */
  tile?: TileConfig;
  /** Rows per thread of the `direct` kernel: 16 (`matmul_sw16`, default) or 8 (`matmul_sw`). */
  directRows?: 8 | 16;
  /**
   * Thread rows per workgroup of the `direct` kernel (1, 2, 4 or 8; 8 threads along N). Default: the
   * smallest power of two whose rows cover M, at most 8.
   */
  directThreadRows?: 1 | 2 | 4 | 8;
  /**
   * Override the weight rows per 256-thread workgroup of the `reduce` matvec (power of two, 1..256;
   * benchmarks / tuning). Giving it selects the `reduce` matvec unless `matvecKind` says otherwise.
   */
  matvecRows?: number;
  /**
   * Which matvec kernel serves M ≤ {@link MATVEC_MAX_M}: `reduce` (256 threads, K split over threads,
   * workgroup-memory reduction; the hardware default) or `rows` (each thread owns
   * `matvecRowsPerThread` weight rows and walks all of K, no workgroup memory or barriers; the
   * default on software adapters). Default: by adapter.
   */
  matvecKind?: "reduce" | "rows";
  /** Weight rows per thread of the `rows` matvec: 2, 4 or 8 (default 8). */
  matvecRowsPerThread?: 2 | 4 | 8;
  /**
   * `rows` matvec: x rows in quads (`matvec_sw4`, each weight vec4 feeds 4 rows) instead of pairs.
   * Default: quads for M ≥ 3. Bit-identical either way.
   */
  matvecQuads?: boolean;
  /**
   * Fuse an RMSNorm of x into the load: out = (rmsNorm(x, eps) ⊙ weight)·wᵀ, weight (K) f32 —
   * the model's input_layernorm / post_attention_layernorm / final norm before a projection, saving
   * the norm's dispatch. Matvec path only (M ≤ {@link MATVEC_MAX_M}); x itself is not modified.
   */
  norm?: { weight: Tensor; eps: number };
  /**
   * Fuse SwiGLU into the output: w is (2N, K) laid out [gate (N) | up (N)] (the fused gate/up
   * projection) and out (M, N) = silu(x·gateᵀ) ⊙ (x·upᵀ), saving the activation's dispatch and
   * the (M, 2N) intermediate. Matvec path only (M ≤ {@link MATVEC_MAX_M}).
   */
  swiglu?: boolean;
}

/**
 * Matvec rows per 256-thread workgroup: 8 (32 threads per row, coalesced) on hardware, per the
 * docs/engine.md §2 probe; 64 (4 threads per row) on llvmpipe, where each barrier of the reduction and
 * each workgroup are expensive: measured 2–4× faster there than 8 (e.g. 1×384×8192 f32 6 ms vs 15 ms).
 */
const MATVEC_ROWS = 8;
const MATVEC_ROWS_SOFTWARE = 64;

/**
 * Default tiles: 128×128 with 8×8 outputs per thread, BK 16 (the docs/engine.md §2 probe shape). Measured
 * on llvmpipe (2 shared cores, 512×1024×1024): 8×8 per thread 7–9 GFLOP/s for 64×64..128×128 tiles
 * and BK 8..16, 4×4 per thread 2–4 GFLOP/s (each workgroup-memory read is a gather there, so the
 * FMA:load ratio decides). Hardware falls back to 64×64 tiles (4×4 per thread) when 128×128 leaves
 * too few workgroups to fill the GPU.
 */
const TILE_SOFTWARE: TileConfig = { tx: 16, ty: 16, tm: 8, bk: 16 };
const TILE_BIG: TileConfig = { tx: 16, ty: 16, tm: 8, bk: 16 };
const TILE_SMALL: TileConfig = { tx: 16, ty: 16, tm: 4, bk: 16 };

const caches = new WeakMap<KernelCache, Map<string, Kernel>>();

function kernelFor(rec: Recorder, key: string, build: () => Parameters<KernelCache["get"]>[0]): Kernel {
  let m = caches.get(rec.kernels);
  if (!m) {
    m = new Map();
    caches.set(rec.kernels, m);
  }
  let k = m.get(key);
  if (!k) {
    k = rec.kernels.get(build());
    m.set(key, k);
  }
  return k;
}

function overlaps(a: Tensor, b: Tensor): boolean {
  return a.buffer === b.buffer && a.offset < b.offset + b.byteLength && b.offset < a.offset + a.byteLength;
}

function sameSpan(a: Tensor, b: Tensor): boolean {
  return a.buffer === b.buffer && a.offset === b.offset && a.byteLength === b.byteLength;
}

/**
 * The WGSL of entry `matvec_sw4` (kernels/matvec.wgsl) for `rpt` weight rows per thread, with or without
 * the fused norm and SwiGLU (inserted after specialisation, so it carries no placeholders): x rows m..m+3 (clamped) per pass, accumulators `a{q}_{i}` for x row q and weight slot i.
 */
export function matvecSw4Entry(rpt: number, norm: boolean, swiglu: boolean): string {
  const Q = [0, 1, 2, 3], I = Array.from({ length: rpt }, (_, i) => i);
  const lines: string[] = [
    "@compute @workgroup_size(64)",
    "fn matvec_sw4(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,",
    "              @builtin(local_invocation_index) lid: u32) {",
    "  var outs = RPT;",
    `  if (${swiglu}) {`,
    "    outs = RPT / 2u;",
    "  }",
    "  let n0 = ((wg.y * nwg.x + wg.x) * 64u + lid) * outs;",
    "  if (n0 >= p.N) {",
    "    return;",
    "  }",
    ...I.map((i) => `  let w${i} = sw_row(n0, ${i}u);`),
    "  for (var m = 0u; m < MR; m += 4u) {",
    "    let r1 = min(m + 1u, MR - 1u);",
    "    let r2 = min(m + 2u, MR - 1u);",
    "    let r3 = min(m + 3u, MR - 1u);",
    ...Q.flatMap((q) => I.map((i) => `    var a${q}_${i} = vec4<f32>();`)),
    ...Q.map((q) => `    var s${q} = vec4<f32>();`),
    "    for (var k4 = 0u; k4 < p.KV; k4++) {",
    "      var x0 = ldx_in(m, k4);",
    "      var x1 = ldx_in(r1, k4);",
    "      var x2 = ldx_in(r2, k4);",
    "      var x3 = ldx_in(r3, k4);",
    ...(norm
      ? [
        "      let gv = ldg(k4);",
        ...Q.map((q) => `      s${q} = fma(x${q}, x${q}, s${q});`),
        ...Q.map((q) => `      x${q} = x${q} * gv;`),
      ]
      : []),
    ...I.flatMap((i) => [
      `      let v${i} = ldw_in(w${i}, k4);`,
      ...Q.map((q) => `      a${q}_${i} = fma(v${i}, x${q}, a${q}_${i});`),
    ]),
    "    }",
    ...Q.flatMap((q) => {
      const args = Array.from({ length: 8 }, (_, i) => (i < rpt ? `a${q}_${i}` : "vec4<f32>()")).join(", ");
      const scale = norm ? `inv_rms(hsum(s${q}))` : "1.0";
      const store = `sw_store(m + ${q}u, n0, ${scale}, ${args});`;
      return q === 0 ? [`    ${store}`] : [`    if (m + ${q}u < MR) {`, `      ${store}`, "    }"];
    }),
    "  }",
    "}",
  ];
  return lines.join("\n");
}

/**
 * Whether callers should fuse `fusion` into {@link linear} for M rows on this device (else they run
 * the norm / SwiGLU as separate ops): always on the matvec kernels (M ≤ {@link MATVEC_MAX_M}); on
 * software adapters' `direct` kernel (`matmul_sw16`) SwiGLU only: its fused norm recomputes each
 * row's Σx² in every thread, which on llvmpipe costs more than the norm dispatch it saves (kernel ms
 * per call, tiny's draft at k = 10 rows: lm_head 10 × 128 × 2048 fused 0.86–0.91 vs 0.81–0.86 for
 * rmsNorm + linear; gate/up 10 × 128 × 2·384 with SwiGLU 0.35 vs 0.32), while its fused SwiGLU
 * saves time (0.29–0.33 vs 0.34–0.39 ms for linear + swiglu); never on the hardware tiled kernels
 * (no fusion there).
 */
export function linearFuses(rec: Recorder, M: number, fusion: "norm" | "swiglu"): boolean {
  return M <= MATVEC_MAX_M || (rec.gpu.isFallback && fusion === "swiglu");
}

/** Weight rows per 256-thread matvec workgroup that {@link linear} uses on this device. */
export function defaultMatvecRows(rec: Recorder): number {
  return isSoftware(rec) ? MATVEC_ROWS_SOFTWARE : MATVEC_ROWS;
}

function isSoftware(rec: Recorder): boolean {
  return rec.gpu.isFallback || /llvmpipe|lavapipe|swiftshader/i.test(rec.gpu.adapterName);
}

/** The tile configuration {@link linear} uses on this device for an (M, N) output. */
export function defaultTile(rec: Recorder, M: number, N: number): TileConfig {
  if (isSoftware(rec)) return TILE_SOFTWARE;
  const bigGroups = Math.ceil(M / 128) * Math.ceil(N / 128);
  return bigGroups >= 128 ? TILE_BIG : TILE_SMALL;
}

/**
 * out = x·wᵀ (+ residual). x (M, K) f32; w (N, K) f32 or f16 (HF layout); out (M, N) f32;
 * residual (M, N) f32, may be the same tensor as out. Leading dimensions of x / out / residual are
 * flattened into M (x (..., K) → out (..., N)). One dispatch: `matvec` for M ≤ 8, else the tiled
 * matmul (`direct`, i.e. `matmul_sw16` with its thread rows fitted to M, on software adapters).
 * Throws {@link ShapeError} naming the tensor on any shape/dtype mismatch, when `out` overlaps `x`
 * or partially overlaps `residual`, and for an f16 weight on a device without shader-f16.
 */
export function linear(
  rec: Recorder,
  out: Tensor,
  x: Tensor,
  w: Tensor,
  opts: LinearOptions = {},
): void {
  if (x.shape.length < 1) throw new ShapeError(`linear: ${x.name} must have a K dimension, got [${x.shape}]`);
  if (w.shape.length !== 2) throw new ShapeError(`linear: ${w.name} must be (N, K), got [${w.shape}]`);
  const swi = opts.swiglu ?? false;
  const [NW, K] = w.shape; // (N, K), or (2N, K) [gate | up] with swiglu
  if (swi && NW % 2 !== 0) {
    throw new ShapeError(`linear: swiglu needs ${w.name} with 2N rows [gate | up], got ${NW}`);
  }
  const N = swi ? NW / 2 : NW;
  const lead = x.shape.slice(0, -1);
  const M = lead.reduce((a, b) => a * b, 1);
  x.expectShape([...lead, K], "f32"); // (M, K)
  w.expectShape([NW, K], ["f32", "f16"]); // (N, K) or (2N, K)
  out.expectShape([...lead, N], "f32"); // (M, N)
  const norm = opts.norm;
  norm?.weight.expectShape([K], "f32"); // (K)
  if (norm && (!(norm.eps >= 0) || !Number.isFinite(norm.eps))) {
    throw new ShapeError(`linear: norm eps must be a finite number ≥ 0, got ${norm.eps}`);
  }
  if (norm && norm.weight.buffer === out.buffer && overlaps(norm.weight, out)) {
    throw new ShapeError(`linear: ${out.name} overlaps the norm weight ${norm.weight.name}`);
  }
  const res = opts.residual;
  res?.expectShape([...lead, N], "f32"); // (M, N)
  const f16 = w.dtype === "f16";
  if (f16 && !rec.gpu.features.f16) {
    throw new ShapeError(
      `linear: ${w.name} is f16 but the device has no shader-f16 (${rec.gpu.adapterName}); ` +
        `load the weights as f32 on this adapter`,
    );
  }
  if (overlaps(out, x)) throw new ShapeError(`linear: ${out.name} overlaps its input ${x.name}`);
  if (overlaps(out, w)) throw new ShapeError(`linear: ${out.name} overlaps the weight ${w.name}`);
  const inPlace = res !== undefined && sameSpan(res, out);
  if (res && !inPlace && overlaps(res, out)) {
    throw new ShapeError(`linear: residual ${res.name} partially overlaps ${out.name}`);
  }
  const kind = opts.kernel ?? "auto";
  const useMatvec = kind === "matvec" || (kind === "auto" && M <= MATVEC_MAX_M);
  if (useMatvec && M > MATVEC_MAX_M) {
    throw new ShapeError(`linear: matvec kernel needs M ≤ ${MATVEC_MAX_M}, ${x.name} has M = ${M}`);
  }
  const direct = !useMatvec &&
    (kind === "direct" || (kind === "auto" && rec.gpu.isFallback && opts.tile === undefined));
  if ((norm || swi) && !useMatvec && !(direct && (opts.directRows ?? 16) === 16)) {
    throw new ShapeError(
      `linear: fused norm / swiglu need the matvec kernel (M ≤ ${MATVEC_MAX_M}) or the direct kernel ` +
        `with 16 rows per thread; ${x.name} has M = ${M}`,
    );
  }
  if (M === 0 || N === 0) return;
  const vec = K % 4 === 0;
  const KV = Math.ceil(K / 4);
  const resMode = res === undefined ? 0 : inPlace ? 2 : 1;
  const tensors = resMode === 1 ? [x, w, out, res!] : [x, w, out];
  const written = [...tensors.slice(2), x]; // bound read_write
  // `read` only when nothing bound read_write lives in the same buffer (see kernel.ts); a norm weight
  // sharing the matrix's buffer takes the matrix's access.
  const wRead = !written.some((t) => t.buffer === w.buffer);
  const g = norm?.weight;
  const gRead = g ? (g.buffer === w.buffer ? wRead : !written.some((t) => t.buffer === g.buffer)) : false;
  if (g) tensors.push(g);
  const gBinding = resMode === 1 ? 4 : 3;
  // Built only when a kernel is compiled (the cache key below identifies the variant).
  const prelude = (): string =>
    specialize(vec ? LINEAR_IO_VEC4_WGSL : LINEAR_IO_SCALAR_WGSL, {
      ENABLE: f16 ? "enable f16;" : "",
      WDT: f16 ? "f16" : "f32",
      WACCESS: wRead ? "read" : "read_write",
      RES_DECL: resMode === 1 ? "@group(0) @binding(3) var<storage, read_write> res: array<f32>;" : "",
      G_DECL: g
        ? `@group(0) @binding(${gBinding}) var<storage, ${gRead ? "read" : "read_write"}> g: ` +
          `array<${vec ? "vec4<f32>" : "f32"}>;`
        : "",
      G_LOAD: g ? (vec ? "return g[k4];" : "return g[k];") : (vec ? "return vec4<f32>(1.0);" : "return 1.0;"),
      PB: gBinding + (g ? 1 : 0),
      RES_EXPR: ["v", "v + res[i]", "v + out[i]"][resMode],
    });
  const storage: ("read" | "rw")[] = tensors.map((t) =>
    t === w ? (wRead ? "read" : "rw") : t === g ? (gRead ? "read" : "rw") : "rw"
  );
  const variant = `${vec ? "v" : "s"}${f16 ? "h" : "f"}${wRead ? "r" : "w"}${resMode}` +
    `${g ? (gRead ? "g" : "G") : ""}${swi ? "s" : ""}`;
  const params = [M, K, N, KV, norm?.eps ?? 0];

  const fuse = { NORM: g ? "true" : "false", SWIGLU: swi ? "true" : "false" };
  if (useMatvec) {
    const mk = opts.matvecKind ??
      (opts.matvecRows !== undefined ? "reduce" : isSoftware(rec) ? "rows" : "reduce");
    if (mk === "rows") {
      const rpt = opts.matvecRowsPerThread ?? 8;
      if (rpt !== 2 && rpt !== 4 && rpt !== 8) {
        throw new ShapeError(`linear: matvecRowsPerThread must be 2, 4 or 8, got ${rpt}`);
      }
      const quad = opts.matvecQuads ?? M >= 3;
      const k = kernelFor(rec, `matvec_sw:${variant}:${M}:${rpt}:${quad}`, () => ({
        name: `linear_matvec_sw${quad ? "4" : ""}_${variant}_m${M}`,
        code: prelude() + specialize(MATVEC_WGSL, {
          ROWS: 8,
          RPT: rpt,
          ...fuse,
          NORM_G: "",
          NORM_X: g
            ? "let gv = ldg(k4);\n      ss = fma(xv, xv, ss);\n      st = fma(yv, yv, st);\n      xv = xv * gv;\n      yv = yv * gv;"
            : "",
          SW4_ENTRY: quad ? matvecSw4Entry(rpt, g !== undefined, swi) : "",
        }),
        entryPoint: quad ? "matvec_sw4" : "matvec_sw",
        storage,
        params: "uuuuf",
        constants: { MR: M },
      }));
      const perThread = swi ? rpt / 2 : rpt;
      rec.dispatch(
        k,
        tensors,
        params,
        grid1d(N, 64 * perThread, rec.gpu.limits.maxComputeWorkgroupsPerDimension),
      );
      return;
    }
    const rows = opts.matvecRows ?? defaultMatvecRows(rec);
    if (!(rows >= 1 && rows <= 256 && (rows & (rows - 1)) === 0)) {
      throw new ShapeError(`linear: matvecRows must be a power of two in 1..256, got ${rows}`);
    }
    if (swi && rows < 2) throw new ShapeError(`linear: swiglu needs matvecRows ≥ 2, got ${rows}`);
    const k = kernelFor(rec, `matvec:${variant}:${M}:${rows}`, () => ({
      name: `linear_matvec_${variant}_m${M}`,
      code: prelude() + specialize(MATVEC_WGSL, {
        ROWS: rows,
        RPT: 8,
        ...fuse,
        NORM_G: g ? "* ldg(k4)" : "",
        NORM_X: "",
        SW4_ENTRY: "",
      }),
      entryPoint: "matvec",
      storage,
      params: "uuuuf",
      constants: { MR: M },
    }));
    const outRows = swi ? rows / 2 : rows;
    rec.dispatch(k, tensors, params, grid1d(N, outRows, rec.gpu.limits.maxComputeWorkgroupsPerDimension));
    return;
  }
  if (direct) {
    // 8×8 threads × (R×8) outputs: an (8R)×64 tile per workgroup, x and w read straight from storage.
    const R = opts.directRows ?? 16;
    if (R !== 8 && R !== 16) throw new ShapeError(`linear: directRows must be 8 or 16, got ${R}`);
    const entry = R === 16 ? "matmul_sw16" : "matmul_sw";
    // Thread rows per workgroup: the fewest powers of two covering M (at most 8), so a 60-row tree
    // verification computes 64 rows, not 128 (rows past M are clamped duplicates: wasted work).
    const ty = opts.directThreadRows ?? Math.min(8, 2 ** Math.ceil(Math.log2(Math.ceil(M / R))));
    if (![1, 2, 4, 8].includes(ty)) {
      throw new ShapeError(`linear: directThreadRows must be 1, 2, 4 or 8, got ${ty}`);
    }
    const k = kernelFor(rec, `${entry}:${variant}:${ty}`, () => ({
      name: `linear_${entry}_${variant}${ty === 8 ? "" : `_ty${ty}`}`,
      code: prelude() + specialize(MATMUL_WGSL, { TX: 8, TY: ty, TM: 8, BK: 16, ...fuse }),
      entryPoint: entry,
      storage,
      params: "uuuuf",
    }));
    rec.dispatch(k, tensors, params, [Math.ceil(N / (swi ? 32 : 64)), Math.ceil(M / (ty * R))]);
    return;
  }
  const t = opts.tile ?? defaultTile(rec, M, N);
  const naive = kind === "naive";
  const entry = naive ? "naive" : t.tm === 8 ? "matmul8" : "matmul4";
  const k = kernelFor(rec, `${entry}:${variant}:${t.tx},${t.ty},${t.tm},${t.bk}`, () => ({
    name: `linear_${entry}_${variant}`,
    code: prelude() +
      specialize(MATMUL_WGSL, { TX: t.tx, TY: t.ty, TM: t.tm, BK: t.bk, NORM: "false", SWIGLU: "false" }),
    entryPoint: entry,
    storage,
    params: "uuuuf",
  }));
  const groups = naive
    ? [Math.ceil(N / 16), Math.ceil(M / 16)]
    : [Math.ceil(N / (t.tx * t.tm)), Math.ceil(M / (t.ty * t.tm))];
  rec.dispatch(k, tensors, params, groups);
}
