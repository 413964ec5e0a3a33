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
// register allocation (DESIGN.md §3). Out-of-range rows / K are loaded as zeros, stores are checked.
//
// entry matmul8: TM = 8; thread (tx, ty) owns rows {4ty..4ty+3, BM/2+4ty..} × cols {4tx.., BN/2+4tx..}
// entry matmul4: TM = 4; thread (tx, ty) owns rows 4ty..4ty+3 × cols 4tx..4tx+3
//   (the op specialises TM and calls the matching entry; grid: (ceil(N / BN), ceil(M / BM)))
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
