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
@compute @workgroup_size(NT)
fn matmul_sw16(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % TX;
  let ty = lid / TX;
  let m = wg.y * (TY * 16u) + ty * 16u;
  let n = wg.x * (TX * 8u) + tx * 8u;
  let ml = p.M - 1u;
  let nl = p.N - 1u;
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
  let q0 = min(n + 0u, nl);
  let q1 = min(n + 1u, nl);
  let q2 = min(n + 2u, nl);
  let q3 = min(n + 3u, nl);
  let q4 = min(n + 4u, nl);
  let q5 = min(n + 5u, nl);
  let q6 = min(n + 6u, nl);
  let q7 = min(n + 7u, nl);
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
  for (var k4 = 0u; k4 < p.KV; k4++) {
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
    let a0 = ldx_in(r0, k4);
    c0_0 = fma(vec4(a0.w), t0w, fma(vec4(a0.z), t0z, fma(vec4(a0.y), t0y, fma(vec4(a0.x), t0x, c0_0))));
    c0_1 = fma(vec4(a0.w), t1w, fma(vec4(a0.z), t1z, fma(vec4(a0.y), t1y, fma(vec4(a0.x), t1x, c0_1))));
    let a1 = ldx_in(r1, k4);
    c1_0 = fma(vec4(a1.w), t0w, fma(vec4(a1.z), t0z, fma(vec4(a1.y), t0y, fma(vec4(a1.x), t0x, c1_0))));
    c1_1 = fma(vec4(a1.w), t1w, fma(vec4(a1.z), t1z, fma(vec4(a1.y), t1y, fma(vec4(a1.x), t1x, c1_1))));
    let a2 = ldx_in(r2, k4);
    c2_0 = fma(vec4(a2.w), t0w, fma(vec4(a2.z), t0z, fma(vec4(a2.y), t0y, fma(vec4(a2.x), t0x, c2_0))));
    c2_1 = fma(vec4(a2.w), t1w, fma(vec4(a2.z), t1z, fma(vec4(a2.y), t1y, fma(vec4(a2.x), t1x, c2_1))));
    let a3 = ldx_in(r3, k4);
    c3_0 = fma(vec4(a3.w), t0w, fma(vec4(a3.z), t0z, fma(vec4(a3.y), t0y, fma(vec4(a3.x), t0x, c3_0))));
    c3_1 = fma(vec4(a3.w), t1w, fma(vec4(a3.z), t1z, fma(vec4(a3.y), t1y, fma(vec4(a3.x), t1x, c3_1))));
    let a4 = ldx_in(r4, k4);
    c4_0 = fma(vec4(a4.w), t0w, fma(vec4(a4.z), t0z, fma(vec4(a4.y), t0y, fma(vec4(a4.x), t0x, c4_0))));
    c4_1 = fma(vec4(a4.w), t1w, fma(vec4(a4.z), t1z, fma(vec4(a4.y), t1y, fma(vec4(a4.x), t1x, c4_1))));
    let a5 = ldx_in(r5, k4);
    c5_0 = fma(vec4(a5.w), t0w, fma(vec4(a5.z), t0z, fma(vec4(a5.y), t0y, fma(vec4(a5.x), t0x, c5_0))));
    c5_1 = fma(vec4(a5.w), t1w, fma(vec4(a5.z), t1z, fma(vec4(a5.y), t1y, fma(vec4(a5.x), t1x, c5_1))));
    let a6 = ldx_in(r6, k4);
    c6_0 = fma(vec4(a6.w), t0w, fma(vec4(a6.z), t0z, fma(vec4(a6.y), t0y, fma(vec4(a6.x), t0x, c6_0))));
    c6_1 = fma(vec4(a6.w), t1w, fma(vec4(a6.z), t1z, fma(vec4(a6.y), t1y, fma(vec4(a6.x), t1x, c6_1))));
    let a7 = ldx_in(r7, k4);
    c7_0 = fma(vec4(a7.w), t0w, fma(vec4(a7.z), t0z, fma(vec4(a7.y), t0y, fma(vec4(a7.x), t0x, c7_0))));
    c7_1 = fma(vec4(a7.w), t1w, fma(vec4(a7.z), t1z, fma(vec4(a7.y), t1y, fma(vec4(a7.x), t1x, c7_1))));
    let a8 = ldx_in(r8, k4);
    c8_0 = fma(vec4(a8.w), t0w, fma(vec4(a8.z), t0z, fma(vec4(a8.y), t0y, fma(vec4(a8.x), t0x, c8_0))));
    c8_1 = fma(vec4(a8.w), t1w, fma(vec4(a8.z), t1z, fma(vec4(a8.y), t1y, fma(vec4(a8.x), t1x, c8_1))));
    let a9 = ldx_in(r9, k4);
    c9_0 = fma(vec4(a9.w), t0w, fma(vec4(a9.z), t0z, fma(vec4(a9.y), t0y, fma(vec4(a9.x), t0x, c9_0))));
    c9_1 = fma(vec4(a9.w), t1w, fma(vec4(a9.z), t1z, fma(vec4(a9.y), t1y, fma(vec4(a9.x), t1x, c9_1))));
    let a10 = ldx_in(r10, k4);
    c10_0 = fma(vec4(a10.w), t0w, fma(vec4(a10.z), t0z, fma(vec4(a10.y), t0y, fma(vec4(a10.x), t0x, c10_0))));
    c10_1 = fma(vec4(a10.w), t1w, fma(vec4(a10.z), t1z, fma(vec4(a10.y), t1y, fma(vec4(a10.x), t1x, c10_1))));
    let a11 = ldx_in(r11, k4);
    c11_0 = fma(vec4(a11.w), t0w, fma(vec4(a11.z), t0z, fma(vec4(a11.y), t0y, fma(vec4(a11.x), t0x, c11_0))));
    c11_1 = fma(vec4(a11.w), t1w, fma(vec4(a11.z), t1z, fma(vec4(a11.y), t1y, fma(vec4(a11.x), t1x, c11_1))));
    let a12 = ldx_in(r12, k4);
    c12_0 = fma(vec4(a12.w), t0w, fma(vec4(a12.z), t0z, fma(vec4(a12.y), t0y, fma(vec4(a12.x), t0x, c12_0))));
    c12_1 = fma(vec4(a12.w), t1w, fma(vec4(a12.z), t1z, fma(vec4(a12.y), t1y, fma(vec4(a12.x), t1x, c12_1))));
    let a13 = ldx_in(r13, k4);
    c13_0 = fma(vec4(a13.w), t0w, fma(vec4(a13.z), t0z, fma(vec4(a13.y), t0y, fma(vec4(a13.x), t0x, c13_0))));
    c13_1 = fma(vec4(a13.w), t1w, fma(vec4(a13.z), t1z, fma(vec4(a13.y), t1y, fma(vec4(a13.x), t1x, c13_1))));
    let a14 = ldx_in(r14, k4);
    c14_0 = fma(vec4(a14.w), t0w, fma(vec4(a14.z), t0z, fma(vec4(a14.y), t0y, fma(vec4(a14.x), t0x, c14_0))));
    c14_1 = fma(vec4(a14.w), t1w, fma(vec4(a14.z), t1z, fma(vec4(a14.y), t1y, fma(vec4(a14.x), t1x, c14_1))));
    let a15 = ldx_in(r15, k4);
    c15_0 = fma(vec4(a15.w), t0w, fma(vec4(a15.z), t0z, fma(vec4(a15.y), t0y, fma(vec4(a15.x), t0x, c15_0))));
    c15_1 = fma(vec4(a15.w), t1w, fma(vec4(a15.z), t1z, fma(vec4(a15.y), t1y, fma(vec4(a15.x), t1x, c15_1))));
  }
  put4(m + 0u, n, c0_0); put4(m + 0u, n + 4u, c0_1);
  put4(m + 1u, n, c1_0); put4(m + 1u, n + 4u, c1_1);
  put4(m + 2u, n, c2_0); put4(m + 2u, n + 4u, c2_1);
  put4(m + 3u, n, c3_0); put4(m + 3u, n + 4u, c3_1);
  put4(m + 4u, n, c4_0); put4(m + 4u, n + 4u, c4_1);
  put4(m + 5u, n, c5_0); put4(m + 5u, n + 4u, c5_1);
  put4(m + 6u, n, c6_0); put4(m + 6u, n + 4u, c6_1);
  put4(m + 7u, n, c7_0); put4(m + 7u, n + 4u, c7_1);
  put4(m + 8u, n, c8_0); put4(m + 8u, n + 4u, c8_1);
  put4(m + 9u, n, c9_0); put4(m + 9u, n + 4u, c9_1);
  put4(m + 10u, n, c10_0); put4(m + 10u, n + 4u, c10_1);
  put4(m + 11u, n, c11_0); put4(m + 11u, n + 4u, c11_1);
  put4(m + 12u, n, c12_0); put4(m + 12u, n + 4u, c12_1);
  put4(m + 13u, n, c13_0); put4(m + 13u, n + 4u, c13_1);
  put4(m + 14u, n, c14_0); put4(m + 14u, n + 4u, c14_1);
  put4(m + 15u, n, c15_0); put4(m + 15u, n + 4u, c15_1);
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
