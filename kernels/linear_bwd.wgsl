// Backward of the linear layer y (M, N) = x (M, K) · w (N, K)ᵀ, for training (explicit per-layer
// backward, docs/engine.md §3 llm.c style). Both gradients are plain matrix products with different
// operand transposes, so one strided tiled kernel serves both:
//   dx (M, K)  = dy (M, N) · w (N, K)          A(r, t) = dy[r·N + t],  B(t, c) = w[t·K + c]
//   dw (N, K) (+)= dyᵀ (N, M) · x (M, K)       A(r, t) = dy[t·N + r],  B(t, c) = x[t·K + c]
//
// entry matmul_strided: C (R, Cn) = [C +] Σ_t A(r, t) · B(t, c) with A(r, t) = a[r·a_r + t·a_t] and
//   B(t, c) = b[t·b_t + c·b_c]; C row-major (stride Cn). A workgroup of 256 threads owns a 64 × 64
//   tile of C and walks t in steps of 16: each step the threads stage the A tile (16 × 64) and the B
//   tile (16 × 64) in workgroup memory, packed as vec4 along r / c (each thread loads 4 values of A
//   and 4 of B; B's thread mapping makes adjacent threads read adjacent columns, so the c-contiguous
//   operand is coalesced), then every thread accumulates a 4 × 4 block (rows 4·ty.., cols 4·tx..) as
//   outer products in four named vec4 registers (no runtime-indexed private arrays, docs/engine.md §2).
//   Out-of-range r / c / t load as zeros; stores are bounds-checked. With T = 0 the tile is zero,
//   so dw is still written (or left unchanged when accumulating).
//   Grid: (ceil(Cn / 64), ceil(R / 64)). c must not alias a or b.

struct Params {
  r: u32,     // rows of C
  cn: u32,    // columns of C
  t: u32,     // reduction length
  a_r: u32,   // A stride along r
  a_t: u32,   // A stride along t
  b_t: u32,   // B stride along t
  b_c: u32,   // B stride along c
  accum: u32, // 1: C += product; 0: C = product
}

@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BT: u32 = 16u;

var<workgroup> As: array<vec4f, 256>; // As[tt·16 + g] = A(r0 + 4g .. 4g+3, t0 + tt)
var<workgroup> Bs: array<vec4f, 256>; // Bs[tt·16 + g] = B(t0 + tt, c0 + 4g .. 4g+3)

fn lda(r: u32, t: u32) -> f32 {
  if (r < p.r && t < p.t) {
    return a[r * p.a_r + t * p.a_t];
  }
  return 0.0;
}

fn ldb(t: u32, col: u32) -> f32 {
  if (t < p.t && col < p.cn) {
    return b[t * p.b_t + col * p.b_c];
  }
  return 0.0;
}

fn put(r: u32, col: u32, v: f32) {
  if (r < p.r && col < p.cn) {
    let i = r * p.cn + col;
    if (p.accum != 0u) {
      c[i] = c[i] + v;
    } else {
      c[i] = v;
    }
  }
}

fn put4(r: u32, col: u32, v: vec4f) {
  put(r, col, v.x);
  put(r, col + 1u, v.y);
  put(r, col + 2u, v.z);
  put(r, col + 3u, v.w);
}

@compute @workgroup_size(256)
fn matmul_strided(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % 16u;
  let ty = lid / 16u;
  let r0 = wg.y * BM;
  let c0 = wg.x * BN;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  // loader roles: A by (tt = lid % 16, g = lid / 16), B by (g = lid % 16, tt = lid / 16)
  let at = lid % 16u;
  let ag = lid / 16u;
  let bg = lid % 16u;
  let bt = lid / 16u;
  for (var t0 = 0u; t0 < p.t; t0 += BT) {
    let ra = r0 + 4u * ag;
    As[at * 16u + ag] = vec4f(lda(ra, t0 + at), lda(ra + 1u, t0 + at), lda(ra + 2u, t0 + at),
                              lda(ra + 3u, t0 + at));
    let cb = c0 + 4u * bg;
    Bs[bt * 16u + bg] = vec4f(ldb(t0 + bt, cb), ldb(t0 + bt, cb + 1u), ldb(t0 + bt, cb + 2u),
                              ldb(t0 + bt, cb + 3u));
    workgroupBarrier();
    for (var tt = 0u; tt < BT; tt++) {
      let av = As[tt * 16u + ty];
      let bv = Bs[tt * 16u + tx];
      acc0 = fma(vec4f(av.x), bv, acc0);
      acc1 = fma(vec4f(av.y), bv, acc1);
      acc2 = fma(vec4f(av.z), bv, acc2);
      acc3 = fma(vec4f(av.w), bv, acc3);
    }
    workgroupBarrier();
  }
  let r = r0 + 4u * ty;
  let col = c0 + 4u * tx;
  put4(r, col, acc0);
  put4(r + 1u, col, acc1);
  put4(r + 2u, col, acc2);
  put4(r + 3u, col, acc3);
}
