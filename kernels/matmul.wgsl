// Tiled, register-blocked linear for M > 8 (prefill, training, verification of large trees):
// out (M, N) = x (M, K) · w (N, K)ᵀ, both operands K-contiguous (HF layout). Prepended by
// linear_io_vec4.wgsl or linear_io_scalar.wgsl (bindings, ldx/ldw/put with the edge checks).
//
// A workgroup of TX·TY threads owns a BM × BN output tile (BM = TY·TM, BN = TX·TM) and walks K in
// steps of BK: each step, the threads copy the x tile (BM × BK) and the w tile (BN × BK) into
// workgroup memory transposed to K-major, packed as vec4 along M / N (each thread loads 4 rows × one
// vec4 along K and transposes it in registers), then every thread accumulates its TM × TM outputs as
// outer products of vec4s read from the tiles. Accumulators are named vec4 registers and all private
// indices are constants: runtime-indexed private arrays are bounds-checked by naga and kill the
// register allocation (docs/engine.md §2). Out-of-range rows / K are loaded as zeros, stores are checked.
//
// entry matmul8: TM = 8; thread (tx, ty) owns rows {4ty..4ty+3, BM/2+4ty..} × cols {4tx.., BN/2+4tx..}
// entry matmul4: TM = 4; thread (tx, ty) owns rows 4ty..4ty+3 × cols 4tx..4tx+3
//   (the op specialises TM and calls the matching entry; grid: (ceil(N / BN), ceil(M / BM)))
// entry matmul_sw: for software adapters (llvmpipe), no workgroup memory and no barriers: thread
//   (tx, ty) of a TX×TY group owns the 8×8 block rows m0 + 8ty.. × cols n0 + 8tx.. (BM = 8·TY,
//   BN = 8·TX) and reads 8 x rows and 8 w rows straight from storage as vec4 along K, so 16 vec4 loads
//   feed 256 FMAs (matmul8: 16 per 64, plus the staging). llvmpipe turns every load into a per-lane
//   scalar loop, so the FMA:load ratio decides; workgroup staging only adds loads there. Rows past
//   M / N are clamped to the last row (valid loads, no branch in the K loop); stores are checked.
//   (grid: (ceil(N / 8TX), ceil(M / 8TY)); the op specialises TX = TY = 8, TM / BK unused.)
// entry matmul_sw16: the same with 16×8 outputs per thread (BM = 16·TY): 24 vec4 loads per 512 FMAs;
//   the software default (grid: (ceil(N / 8TX), ceil(M / 16TY))).
// entry naive:   baseline for benchmarks: one thread per output, a plain loop over K (16×16 groups).

const TX: u32 = {{TX}}u;
// Fusions of matmul_sw16 (see there; false for every other entry): RMSNorm of x, SwiGLU.
const NORM: bool = {{NORM}};
const SWIGLU: bool = {{SWIGLU}};
const TY: u32 = {{TY}}u;
const TM: u32 = {{TM}}u;
const BK: u32 = {{BK}}u;
const NT: u32 = TX * TY;
const BM: u32 = TY * TM;
const BN: u32 = TX * TM;
const BM4: u32 = BM / 4u;
const BN4: u32 = BN / 4u;
const BK4: u32 = BK / 4u;
const UA: u32 = BM4 * BK4;
const UB: u32 = BN4 * BK4;

// As[k * BM4 + g] = (x[m0 + 4g + 0..3, k0 + k]); Bs likewise for w along N.
var<workgroup> As: array<vec4<f32>, BK * BM4>;
var<workgroup> Bs: array<vec4<f32>, BK * BN4>;

// Copy the K-step starting at vec4 index kv0 of the x and w tiles into As / Bs.
fn load_tiles(lid: u32, m0: u32, n0: u32, kv0: u32) {
  for (var u = lid; u < UA + UB; u += NT) {
    if (u < UA) {
      let kg = u % BK4;
      let g = u / BK4;
      let m = m0 + g * 4u;
      let r0 = ldx(m, kv0 + kg);
      let r1 = ldx(m + 1u, kv0 + kg);
      let r2 = ldx(m + 2u, kv0 + kg);
      let r3 = ldx(m + 3u, kv0 + kg);
      let base = kg * 4u * BM4 + g;
      As[base] = vec4<f32>(r0.x, r1.x, r2.x, r3.x);
      As[base + BM4] = vec4<f32>(r0.y, r1.y, r2.y, r3.y);
      As[base + 2u * BM4] = vec4<f32>(r0.z, r1.z, r2.z, r3.z);
      As[base + 3u * BM4] = vec4<f32>(r0.w, r1.w, r2.w, r3.w);
    } else {
      let v = u - UA;
      let kg = v % BK4;
      let g = v / BK4;
      let n = n0 + g * 4u;
      let r0 = ldw(n, kv0 + kg);
      let r1 = ldw(n + 1u, kv0 + kg);
      let r2 = ldw(n + 2u, kv0 + kg);
      let r3 = ldw(n + 3u, kv0 + kg);
      let base = kg * 4u * BN4 + g;
      Bs[base] = vec4<f32>(r0.x, r1.x, r2.x, r3.x);
      Bs[base + BN4] = vec4<f32>(r0.y, r1.y, r2.y, r3.y);
      Bs[base + 2u * BN4] = vec4<f32>(r0.z, r1.z, r2.z, r3.z);
      Bs[base + 3u * BN4] = vec4<f32>(r0.w, r1.w, r2.w, r3.w);
    }
  }
}

fn put4(m: u32, n: u32, v: vec4<f32>) {
  put(m, n, v.x);
  put(m, n + 1u, v.y);
  put(m, n + 2u, v.z);
  put(m, n + 3u, v.w);
}

@compute @workgroup_size(NT)
fn matmul8(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % TX;
  let ty = lid / TX;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  // c<i><h>: output row i (0..3: 4ty+i, 4..7: BM/2+4ty+i-4), column half h (0: 4tx.., 1: BN/2+4tx..).
  var c00 = vec4<f32>(); var c01 = vec4<f32>();
  var c10 = vec4<f32>(); var c11 = vec4<f32>();
  var c20 = vec4<f32>(); var c21 = vec4<f32>();
  var c30 = vec4<f32>(); var c31 = vec4<f32>();
  var c40 = vec4<f32>(); var c41 = vec4<f32>();
  var c50 = vec4<f32>(); var c51 = vec4<f32>();
  var c60 = vec4<f32>(); var c61 = vec4<f32>();
  var c70 = vec4<f32>(); var c71 = vec4<f32>();
  for (var kv0 = 0u; kv0 < p.KV; kv0 += BK4) {
    load_tiles(lid, m0, n0, kv0);
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a0 = As[k * BM4 + ty];
      let a1 = As[k * BM4 + TY + ty];
      let b0 = Bs[k * BN4 + tx];
      let b1 = Bs[k * BN4 + TX + tx];
      c00 = fma(vec4<f32>(a0.x), b0, c00); c01 = fma(vec4<f32>(a0.x), b1, c01);
      c10 = fma(vec4<f32>(a0.y), b0, c10); c11 = fma(vec4<f32>(a0.y), b1, c11);
      c20 = fma(vec4<f32>(a0.z), b0, c20); c21 = fma(vec4<f32>(a0.z), b1, c21);
      c30 = fma(vec4<f32>(a0.w), b0, c30); c31 = fma(vec4<f32>(a0.w), b1, c31);
      c40 = fma(vec4<f32>(a1.x), b0, c40); c41 = fma(vec4<f32>(a1.x), b1, c41);
      c50 = fma(vec4<f32>(a1.y), b0, c50); c51 = fma(vec4<f32>(a1.y), b1, c51);
      c60 = fma(vec4<f32>(a1.z), b0, c60); c61 = fma(vec4<f32>(a1.z), b1, c61);
      c70 = fma(vec4<f32>(a1.w), b0, c70); c71 = fma(vec4<f32>(a1.w), b1, c71);
    }
    workgroupBarrier();
  }
  let ma = m0 + ty * 4u;
  let mb = m0 + BM / 2u + ty * 4u;
  let na = n0 + tx * 4u;
  let nb = n0 + BN / 2u + tx * 4u;
  put4(ma, na, c00); put4(ma, nb, c01);
  put4(ma + 1u, na, c10); put4(ma + 1u, nb, c11);
  put4(ma + 2u, na, c20); put4(ma + 2u, nb, c21);
  put4(ma + 3u, na, c30); put4(ma + 3u, nb, c31);
  put4(mb, na, c40); put4(mb, nb, c41);
  put4(mb + 1u, na, c50); put4(mb + 1u, nb, c51);
  put4(mb + 2u, na, c60); put4(mb + 2u, nb, c61);
  put4(mb + 3u, na, c70); put4(mb + 3u, nb, c71);
}

@compute @workgroup_size(NT)
fn matmul4(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % TX;
  let ty = lid / TX;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  var c0 = vec4<f32>();
  var c1 = vec4<f32>();
  var c2 = vec4<f32>();
  var c3 = vec4<f32>();
  for (var kv0 = 0u; kv0 < p.KV; kv0 += BK4) {
    load_tiles(lid, m0, n0, kv0);
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a = As[k * BM4 + ty];
      let b = Bs[k * BN4 + tx];
      c0 = fma(vec4<f32>(a.x), b, c0);
      c1 = fma(vec4<f32>(a.y), b, c1);
      c2 = fma(vec4<f32>(a.z), b, c2);
      c3 = fma(vec4<f32>(a.w), b, c3);
    }
    workgroupBarrier();
  }
  let m = m0 + ty * 4u;
  let n = n0 + tx * 4u;
  put4(m, n, c0);
  put4(m + 1u, n, c1);
  put4(m + 2u, n, c2);
  put4(m + 3u, n, c3);
}

@compute @workgroup_size(NT)
fn matmul_sw(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % TX;
  let ty = lid / TX;
  let m = wg.y * (TY * 8u) + ty * 8u;
  let n = wg.x * (TX * 8u) + tx * 8u;
  let ml = p.M - 1u;
  let nl = p.N - 1u;
  // Clamped rows: out-of-range threads recompute the last row / column and skip the store.
  let r0 = min(m, ml); let r1 = min(m + 1u, ml); let r2 = min(m + 2u, ml); let r3 = min(m + 3u, ml);
  let r4 = min(m + 4u, ml); let r5 = min(m + 5u, ml); let r6 = min(m + 6u, ml); let r7 = min(m + 7u, ml);
  let q0 = min(n, nl); let q1 = min(n + 1u, nl); let q2 = min(n + 2u, nl); let q3 = min(n + 3u, nl);
  let q4 = min(n + 4u, nl); let q5 = min(n + 5u, nl); let q6 = min(n + 6u, nl); let q7 = min(n + 7u, nl);
  // c<i><h>: output row m + i, cols n + 4h .. n + 4h + 3.
  var c00 = vec4<f32>(); var c01 = vec4<f32>();
  var c10 = vec4<f32>(); var c11 = vec4<f32>();
  var c20 = vec4<f32>(); var c21 = vec4<f32>();
  var c30 = vec4<f32>(); var c31 = vec4<f32>();
  var c40 = vec4<f32>(); var c41 = vec4<f32>();
  var c50 = vec4<f32>(); var c51 = vec4<f32>();
  var c60 = vec4<f32>(); var c61 = vec4<f32>();
  var c70 = vec4<f32>(); var c71 = vec4<f32>();
  for (var k4 = 0u; k4 < p.KV; k4++) {
    let b0 = ldw_in(q0, k4); let b1 = ldw_in(q1, k4); let b2 = ldw_in(q2, k4); let b3 = ldw_in(q3, k4);
    let b4 = ldw_in(q4, k4); let b5 = ldw_in(q5, k4); let b6 = ldw_in(q6, k4); let b7 = ldw_in(q7, k4);
    // Transposed: t<h><c> = (b<4h>.c, .., b<4h+3>.c).
    let t0x = vec4<f32>(b0.x, b1.x, b2.x, b3.x); let t1x = vec4<f32>(b4.x, b5.x, b6.x, b7.x);
    let t0y = vec4<f32>(b0.y, b1.y, b2.y, b3.y); let t1y = vec4<f32>(b4.y, b5.y, b6.y, b7.y);
    let t0z = vec4<f32>(b0.z, b1.z, b2.z, b3.z); let t1z = vec4<f32>(b4.z, b5.z, b6.z, b7.z);
    let t0w = vec4<f32>(b0.w, b1.w, b2.w, b3.w); let t1w = vec4<f32>(b4.w, b5.w, b6.w, b7.w);
    let a0 = ldx_in(r0, k4);
    c00 = fma(vec4(a0.w), t0w, fma(vec4(a0.z), t0z, fma(vec4(a0.y), t0y, fma(vec4(a0.x), t0x, c00))));
    c01 = fma(vec4(a0.w), t1w, fma(vec4(a0.z), t1z, fma(vec4(a0.y), t1y, fma(vec4(a0.x), t1x, c01))));
    let a1 = ldx_in(r1, k4);
    c10 = fma(vec4(a1.w), t0w, fma(vec4(a1.z), t0z, fma(vec4(a1.y), t0y, fma(vec4(a1.x), t0x, c10))));
    c11 = fma(vec4(a1.w), t1w, fma(vec4(a1.z), t1z, fma(vec4(a1.y), t1y, fma(vec4(a1.x), t1x, c11))));
    let a2 = ldx_in(r2, k4);
    c20 = fma(vec4(a2.w), t0w, fma(vec4(a2.z), t0z, fma(vec4(a2.y), t0y, fma(vec4(a2.x), t0x, c20))));
    c21 = fma(vec4(a2.w), t1w, fma(vec4(a2.z), t1z, fma(vec4(a2.y), t1y, fma(vec4(a2.x), t1x, c21))));
    let a3 = ldx_in(r3, k4);
    c30 = fma(vec4(a3.w), t0w, fma(vec4(a3.z), t0z, fma(vec4(a3.y), t0y, fma(vec4(a3.x), t0x, c30))));
    c31 = fma(vec4(a3.w), t1w, fma(vec4(a3.z), t1z, fma(vec4(a3.y), t1y, fma(vec4(a3.x), t1x, c31))));
    let a4 = ldx_in(r4, k4);
    c40 = fma(vec4(a4.w), t0w, fma(vec4(a4.z), t0z, fma(vec4(a4.y), t0y, fma(vec4(a4.x), t0x, c40))));
    c41 = fma(vec4(a4.w), t1w, fma(vec4(a4.z), t1z, fma(vec4(a4.y), t1y, fma(vec4(a4.x), t1x, c41))));
    let a5 = ldx_in(r5, k4);
    c50 = fma(vec4(a5.w), t0w, fma(vec4(a5.z), t0z, fma(vec4(a5.y), t0y, fma(vec4(a5.x), t0x, c50))));
    c51 = fma(vec4(a5.w), t1w, fma(vec4(a5.z), t1z, fma(vec4(a5.y), t1y, fma(vec4(a5.x), t1x, c51))));
    let a6 = ldx_in(r6, k4);
    c60 = fma(vec4(a6.w), t0w, fma(vec4(a6.z), t0z, fma(vec4(a6.y), t0y, fma(vec4(a6.x), t0x, c60))));
    c61 = fma(vec4(a6.w), t1w, fma(vec4(a6.z), t1z, fma(vec4(a6.y), t1y, fma(vec4(a6.x), t1x, c61))));
    let a7 = ldx_in(r7, k4);
    c70 = fma(vec4(a7.w), t0w, fma(vec4(a7.z), t0z, fma(vec4(a7.y), t0y, fma(vec4(a7.x), t0x, c70))));
    c71 = fma(vec4(a7.w), t1w, fma(vec4(a7.z), t1z, fma(vec4(a7.y), t1y, fma(vec4(a7.x), t1x, c71))));
  }
  let n4 = n + 4u;
  put4(m, n, c00); put4(m, n4, c01);
  put4(m + 1u, n, c10); put4(m + 1u, n4, c11);
  put4(m + 2u, n, c20); put4(m + 2u, n4, c21);
  put4(m + 3u, n, c30); put4(m + 3u, n4, c31);
  put4(m + 4u, n, c40); put4(m + 4u, n4, c41);
  put4(m + 5u, n, c50); put4(m + 5u, n4, c51);
  put4(m + 6u, n, c60); put4(m + 6u, n4, c61);
  put4(m + 7u, n, c70); put4(m + 7u, n4, c71);
}

// entry matmul_sw16: matmul_sw with 16×8 outputs per thread (BM = 16·TY): 24 vec4 loads per 512 FMAs.
//   The only tiled entry with the matvec kernels' fusions (the software adapter's kernel for M > 8):
//   NORM scales each x vec4 by the norm weight as it is loaded and accumulates the row's Σx² from the
//   same loads, the inverse RMS scaling the outputs at the store; SWIGLU makes the thread's 8 weight
//   rows 4 gate rows and the 4 matching up rows (out (M, N), w (2N, K)), 4 outputs per thread
//   (grid: (ceil(N / 4TX), ceil(M / 16TY))).
fn sw16_wrow(n: u32, i: u32) -> u32 {
  if (SWIGLU) {
    let c = min(n + i % 4u, p.N - 1u);
    return select(c, c + p.N, i >= 4u);
  }
  return min(n + i, p.N - 1u);
}

fn silu_mul(g: f32, u: f32) -> f32 {
  return g / (1.0 + exp(-g)) * u;
}

// Row m's outputs from its accumulators c0 (weight rows q0..q3) and c1 (q4..q7) and its Σx² lanes ss.
fn sw16_store(m: u32, n: u32, c0: vec4<f32>, c1: vec4<f32>, ss: vec4<f32>) {
  var a = c0;
  var b = c1;
  if (NORM) {
    let s = inverseSqrt(((ss.x + ss.y) + (ss.z + ss.w)) / f32(p.K) + p.eps);
    a = a * s;
    b = b * s;
  }
  if (SWIGLU) {
    put4(m, n, vec4<f32>(silu_mul(a.x, b.x), silu_mul(a.y, b.y), silu_mul(a.z, b.z), silu_mul(a.w, b.w)));
  } else {
    put4(m, n, a);
    put4(m, n + 4u, b);
  }
}

@compute @workgroup_size(NT)
fn matmul_sw16(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % TX;
  let ty = lid / TX;
  let m = wg.y * (TY * 16u) + ty * 16u;
  // Output columns n.. of this thread: 8 (SWIGLU: 4, from gate rows q0..q3 and up rows q4..q7).
  var n = wg.x * (TX * 8u) + tx * 8u;
  if (SWIGLU) {
    n = wg.x * (TX * 4u) + tx * 4u;
  }
  let ml = p.M - 1u;
  let r0 = min(m + 0u, ml);
  let r1 = min(m + 1u, ml);
  let r2 = min(m + 2u, ml);
  let r3 = min(m + 3u, ml);
  let r4 = min(m + 4u, ml);
  let r5 = min(m + 5u, ml);
  let r6 = min(m + 6u, ml);
  let r7 = min(m + 7u, ml);
  let r8 = min(m + 8u, ml);
  let r9 = min(m + 9u, ml);
  let r10 = min(m + 10u, ml);
  let r11 = min(m + 11u, ml);
  let r12 = min(m + 12u, ml);
  let r13 = min(m + 13u, ml);
  let r14 = min(m + 14u, ml);
  let r15 = min(m + 15u, ml);
  let q0 = sw16_wrow(n, 0u);
  let q1 = sw16_wrow(n, 1u);
  let q2 = sw16_wrow(n, 2u);
  let q3 = sw16_wrow(n, 3u);
  let q4 = sw16_wrow(n, 4u);
  let q5 = sw16_wrow(n, 5u);
  let q6 = sw16_wrow(n, 6u);
  let q7 = sw16_wrow(n, 7u);
  var c0_0 = vec4<f32>(); var c0_1 = vec4<f32>();
  var c1_0 = vec4<f32>(); var c1_1 = vec4<f32>();
  var c2_0 = vec4<f32>(); var c2_1 = vec4<f32>();
  var c3_0 = vec4<f32>(); var c3_1 = vec4<f32>();
  var c4_0 = vec4<f32>(); var c4_1 = vec4<f32>();
  var c5_0 = vec4<f32>(); var c5_1 = vec4<f32>();
  var c6_0 = vec4<f32>(); var c6_1 = vec4<f32>();
  var c7_0 = vec4<f32>(); var c7_1 = vec4<f32>();
  var c8_0 = vec4<f32>(); var c8_1 = vec4<f32>();
  var c9_0 = vec4<f32>(); var c9_1 = vec4<f32>();
  var c10_0 = vec4<f32>(); var c10_1 = vec4<f32>();
  var c11_0 = vec4<f32>(); var c11_1 = vec4<f32>();
  var c12_0 = vec4<f32>(); var c12_1 = vec4<f32>();
  var c13_0 = vec4<f32>(); var c13_1 = vec4<f32>();
  var c14_0 = vec4<f32>(); var c14_1 = vec4<f32>();
  var c15_0 = vec4<f32>(); var c15_1 = vec4<f32>();
  // NORM: Σx² of each x row (lanes summed at the store).
  var s0 = vec4<f32>(); var s1 = vec4<f32>(); var s2 = vec4<f32>(); var s3 = vec4<f32>();
  var s4 = vec4<f32>(); var s5 = vec4<f32>(); var s6 = vec4<f32>(); var s7 = vec4<f32>();
  var s8 = vec4<f32>(); var s9 = vec4<f32>(); var s10 = vec4<f32>(); var s11 = vec4<f32>();
  var s12 = vec4<f32>(); var s13 = vec4<f32>(); var s14 = vec4<f32>(); var s15 = vec4<f32>();
  for (var k4 = 0u; k4 < p.KV; k4++) {
    let gv = ldg(k4);
    let b0 = ldw_in(q0, k4);
    let b1 = ldw_in(q1, k4);
    let b2 = ldw_in(q2, k4);
    let b3 = ldw_in(q3, k4);
    let b4 = ldw_in(q4, k4);
    let b5 = ldw_in(q5, k4);
    let b6 = ldw_in(q6, k4);
    let b7 = ldw_in(q7, k4);
    let t0x = vec4<f32>(b0.x, b1.x, b2.x, b3.x); let t1x = vec4<f32>(b4.x, b5.x, b6.x, b7.x);
    let t0y = vec4<f32>(b0.y, b1.y, b2.y, b3.y); let t1y = vec4<f32>(b4.y, b5.y, b6.y, b7.y);
    let t0z = vec4<f32>(b0.z, b1.z, b2.z, b3.z); let t1z = vec4<f32>(b4.z, b5.z, b6.z, b7.z);
    let t0w = vec4<f32>(b0.w, b1.w, b2.w, b3.w); let t1w = vec4<f32>(b4.w, b5.w, b6.w, b7.w);
    var a0 = ldx_in(r0, k4);
    if (NORM) { s0 = fma(a0, a0, s0); a0 = a0 * gv; }
    c0_0 = fma(vec4(a0.w), t0w, fma(vec4(a0.z), t0z, fma(vec4(a0.y), t0y, fma(vec4(a0.x), t0x, c0_0))));
    c0_1 = fma(vec4(a0.w), t1w, fma(vec4(a0.z), t1z, fma(vec4(a0.y), t1y, fma(vec4(a0.x), t1x, c0_1))));
    var a1 = ldx_in(r1, k4);
    if (NORM) { s1 = fma(a1, a1, s1); a1 = a1 * gv; }
    c1_0 = fma(vec4(a1.w), t0w, fma(vec4(a1.z), t0z, fma(vec4(a1.y), t0y, fma(vec4(a1.x), t0x, c1_0))));
    c1_1 = fma(vec4(a1.w), t1w, fma(vec4(a1.z), t1z, fma(vec4(a1.y), t1y, fma(vec4(a1.x), t1x, c1_1))));
    var a2 = ldx_in(r2, k4);
    if (NORM) { s2 = fma(a2, a2, s2); a2 = a2 * gv; }
    c2_0 = fma(vec4(a2.w), t0w, fma(vec4(a2.z), t0z, fma(vec4(a2.y), t0y, fma(vec4(a2.x), t0x, c2_0))));
    c2_1 = fma(vec4(a2.w), t1w, fma(vec4(a2.z), t1z, fma(vec4(a2.y), t1y, fma(vec4(a2.x), t1x, c2_1))));
    var a3 = ldx_in(r3, k4);
    if (NORM) { s3 = fma(a3, a3, s3); a3 = a3 * gv; }
    c3_0 = fma(vec4(a3.w), t0w, fma(vec4(a3.z), t0z, fma(vec4(a3.y), t0y, fma(vec4(a3.x), t0x, c3_0))));
    c3_1 = fma(vec4(a3.w), t1w, fma(vec4(a3.z), t1z, fma(vec4(a3.y), t1y, fma(vec4(a3.x), t1x, c3_1))));
    var a4 = ldx_in(r4, k4);
    if (NORM) { s4 = fma(a4, a4, s4); a4 = a4 * gv; }
    c4_0 = fma(vec4(a4.w), t0w, fma(vec4(a4.z), t0z, fma(vec4(a4.y), t0y, fma(vec4(a4.x), t0x, c4_0))));
    c4_1 = fma(vec4(a4.w), t1w, fma(vec4(a4.z), t1z, fma(vec4(a4.y), t1y, fma(vec4(a4.x), t1x, c4_1))));
    var a5 = ldx_in(r5, k4);
    if (NORM) { s5 = fma(a5, a5, s5); a5 = a5 * gv; }
    c5_0 = fma(vec4(a5.w), t0w, fma(vec4(a5.z), t0z, fma(vec4(a5.y), t0y, fma(vec4(a5.x), t0x, c5_0))));
    c5_1 = fma(vec4(a5.w), t1w, fma(vec4(a5.z), t1z, fma(vec4(a5.y), t1y, fma(vec4(a5.x), t1x, c5_1))));
    var a6 = ldx_in(r6, k4);
    if (NORM) { s6 = fma(a6, a6, s6); a6 = a6 * gv; }
    c6_0 = fma(vec4(a6.w), t0w, fma(vec4(a6.z), t0z, fma(vec4(a6.y), t0y, fma(vec4(a6.x), t0x, c6_0))));
    c6_1 = fma(vec4(a6.w), t1w, fma(vec4(a6.z), t1z, fma(vec4(a6.y), t1y, fma(vec4(a6.x), t1x, c6_1))));
    var a7 = ldx_in(r7, k4);
    if (NORM) { s7 = fma(a7, a7, s7); a7 = a7 * gv; }
    c7_0 = fma(vec4(a7.w), t0w, fma(vec4(a7.z), t0z, fma(vec4(a7.y), t0y, fma(vec4(a7.x), t0x, c7_0))));
    c7_1 = fma(vec4(a7.w), t1w, fma(vec4(a7.z), t1z, fma(vec4(a7.y), t1y, fma(vec4(a7.x), t1x, c7_1))));
    var a8 = ldx_in(r8, k4);
    if (NORM) { s8 = fma(a8, a8, s8); a8 = a8 * gv; }
    c8_0 = fma(vec4(a8.w), t0w, fma(vec4(a8.z), t0z, fma(vec4(a8.y), t0y, fma(vec4(a8.x), t0x, c8_0))));
    c8_1 = fma(vec4(a8.w), t1w, fma(vec4(a8.z), t1z, fma(vec4(a8.y), t1y, fma(vec4(a8.x), t1x, c8_1))));
    var a9 = ldx_in(r9, k4);
    if (NORM) { s9 = fma(a9, a9, s9); a9 = a9 * gv; }
    c9_0 = fma(vec4(a9.w), t0w, fma(vec4(a9.z), t0z, fma(vec4(a9.y), t0y, fma(vec4(a9.x), t0x, c9_0))));
    c9_1 = fma(vec4(a9.w), t1w, fma(vec4(a9.z), t1z, fma(vec4(a9.y), t1y, fma(vec4(a9.x), t1x, c9_1))));
    var a10 = ldx_in(r10, k4);
    if (NORM) { s10 = fma(a10, a10, s10); a10 = a10 * gv; }
    c10_0 = fma(vec4(a10.w), t0w, fma(vec4(a10.z), t0z, fma(vec4(a10.y), t0y, fma(vec4(a10.x), t0x, c10_0))));
    c10_1 = fma(vec4(a10.w), t1w, fma(vec4(a10.z), t1z, fma(vec4(a10.y), t1y, fma(vec4(a10.x), t1x, c10_1))));
    var a11 = ldx_in(r11, k4);
    if (NORM) { s11 = fma(a11, a11, s11); a11 = a11 * gv; }
    c11_0 = fma(vec4(a11.w), t0w, fma(vec4(a11.z), t0z, fma(vec4(a11.y), t0y, fma(vec4(a11.x), t0x, c11_0))));
    c11_1 = fma(vec4(a11.w), t1w, fma(vec4(a11.z), t1z, fma(vec4(a11.y), t1y, fma(vec4(a11.x), t1x, c11_1))));
    var a12 = ldx_in(r12, k4);
    if (NORM) { s12 = fma(a12, a12, s12); a12 = a12 * gv; }
    c12_0 = fma(vec4(a12.w), t0w, fma(vec4(a12.z), t0z, fma(vec4(a12.y), t0y, fma(vec4(a12.x), t0x, c12_0))));
    c12_1 = fma(vec4(a12.w), t1w, fma(vec4(a12.z), t1z, fma(vec4(a12.y), t1y, fma(vec4(a12.x), t1x, c12_1))));
    var a13 = ldx_in(r13, k4);
    if (NORM) { s13 = fma(a13, a13, s13); a13 = a13 * gv; }
    c13_0 = fma(vec4(a13.w), t0w, fma(vec4(a13.z), t0z, fma(vec4(a13.y), t0y, fma(vec4(a13.x), t0x, c13_0))));
    c13_1 = fma(vec4(a13.w), t1w, fma(vec4(a13.z), t1z, fma(vec4(a13.y), t1y, fma(vec4(a13.x), t1x, c13_1))));
    var a14 = ldx_in(r14, k4);
    if (NORM) { s14 = fma(a14, a14, s14); a14 = a14 * gv; }
    c14_0 = fma(vec4(a14.w), t0w, fma(vec4(a14.z), t0z, fma(vec4(a14.y), t0y, fma(vec4(a14.x), t0x, c14_0))));
    c14_1 = fma(vec4(a14.w), t1w, fma(vec4(a14.z), t1z, fma(vec4(a14.y), t1y, fma(vec4(a14.x), t1x, c14_1))));
    var a15 = ldx_in(r15, k4);
    if (NORM) { s15 = fma(a15, a15, s15); a15 = a15 * gv; }
    c15_0 = fma(vec4(a15.w), t0w, fma(vec4(a15.z), t0z, fma(vec4(a15.y), t0y, fma(vec4(a15.x), t0x, c15_0))));
    c15_1 = fma(vec4(a15.w), t1w, fma(vec4(a15.z), t1z, fma(vec4(a15.y), t1y, fma(vec4(a15.x), t1x, c15_1))));
  }
  sw16_store(m + 0u, n, c0_0, c0_1, s0);
  sw16_store(m + 1u, n, c1_0, c1_1, s1);
  sw16_store(m + 2u, n, c2_0, c2_1, s2);
  sw16_store(m + 3u, n, c3_0, c3_1, s3);
  sw16_store(m + 4u, n, c4_0, c4_1, s4);
  sw16_store(m + 5u, n, c5_0, c5_1, s5);
  sw16_store(m + 6u, n, c6_0, c6_1, s6);
  sw16_store(m + 7u, n, c7_0, c7_1, s7);
  sw16_store(m + 8u, n, c8_0, c8_1, s8);
  sw16_store(m + 9u, n, c9_0, c9_1, s9);
  sw16_store(m + 10u, n, c10_0, c10_1, s10);
  sw16_store(m + 11u, n, c11_0, c11_1, s11);
  sw16_store(m + 12u, n, c12_0, c12_1, s12);
  sw16_store(m + 13u, n, c13_0, c13_1, s13);
  sw16_store(m + 14u, n, c14_0, c14_1, s14);
  sw16_store(m + 15u, n, c15_0, c15_1, s15);
}

@compute @workgroup_size(16, 16)
fn naive(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) {
    return;
  }
  var acc = 0.0;
  for (var k4 = 0u; k4 < p.KV; k4++) {
    acc += dot(ldx_in(m, k4), ldw_in(n, k4));
  }
  put(m, n, acc);
}
