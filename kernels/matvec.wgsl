// Matrix-vector style linear for small M (decode, draft steps, small trees: M ≤ 8):
// out (M, N) = x (M, K) · w (N, K)ᵀ. This regime is memory-bound on the weight, so the kernels stream
// every weight row once per activation row block and keep the partial sums in registers.
// Prepended by linear_io_vec4.wgsl or linear_io_scalar.wgsl (bindings, ldx/ldw/ldg/put).
//
// Two optional fusions, both text-specialised by the op (they remove whole dispatches per layer):
// - NORM: RMSNorm of x fused into the load: out = rms(x)⁻¹ · (x ⊙ g) · wᵀ, with the sum of squares
//   of each x row accumulated from the same x loads (ldg(k4) reads the norm weight g).
// - SWIGLU: w has 2N rows [gate (N) | up (N)] and out[m, n] = silu(gate_n · x_m) · (up_n · x_m), i.e.
//   the gate/up projection and the SwiGLU activation in one pass (the output is the MLP activation).
//
// entry matvec (hardware): a workgroup of 256 threads owns ROWS consecutive weight rows; TPR = 256 /
//   ROWS threads per row walk K in vec4 steps (coalesced: neighbours read neighbouring 16-byte
//   chunks), each keeping MR partial sums in two vec4 registers (component m = row m of x), then a
//   workgroup-memory tree reduction per row; thread 0 of each row writes the MR outputs. With NORM
//   a first pass reduces the MR sums of squares over the whole workgroup. With SWIGLU the workgroup
//   owns ROWS/2 outputs: its first ROWS/2 row slots hold gate rows, the last ROWS/2 the matching up
//   rows, and the gate slot's thread 0 combines both after the reduction.
//   Grid: ceil(N / ROWS) (SWIGLU: ceil(N / (ROWS/2))) workgroups, index = wg.y * nwg.x + wg.x.
// entry matvec_sw (software rasterisers, e.g. llvmpipe): no workgroup memory and no barriers. On
//   llvmpipe a workgroup runs on one CPU thread, 8 invocations per SIMD vector, every storage or
//   workgroup-memory load is a per-lane scalar loop and a barrier is a coroutine switch, so the cost
//   is the number of scalar loads: each thread owns RPT weight rows (SWIGLU: RPT/2 gate + RPT/2 up
//   rows) and walks all of K, so each x vec4 it loads feeds RPT dot products; x rows go in pairs,
//   so each weight vec4 feeds two x rows (M ≥ 2: 1.5-2× faster than one row at a time).
//   Measured on llvmpipe (2 cores), 8192×128 f32, M = 1: 0.67 ms against 1.35 ms for one weight row
//   per thread and ~1.8 ms for the `matvec` entry; faster than `matvec` at every M ≤ 8 measured.
//   Grid: ceil(N / (64·RPT)) workgroups of 64 (SWIGLU: RPT/2 outputs per thread).
// entry matvec_sw4 (software, M ≥ 3): matvec_sw with x rows in quads instead of pairs, so each
//   weight vec4 loaded feeds four x rows and the weight is streamed ceil(M/4) times, not ceil(M/2).
//   Same per-output arithmetic (bit-identical to matvec_sw). The op generates it (the SW4_ENTRY placeholder at the end,
//   `matvecSw4Entry` in ops/linear.ts: named registers for RPT rows × 4 x rows); other builds pass "".
//   Loaded llvmpipe, M = 4 / 8: see docs/engine.md §7.

const ROWS: u32 = {{ROWS}}u;
const TPR: u32 = 256u / ROWS;
const RPT: u32 = {{RPT}}u;
override MR: u32 = 1u;

var<workgroup> redA: array<vec4<f32>, 256>;
var<workgroup> redB: array<vec4<f32>, 256>;

fn silu_mul(g: f32, u: f32) -> f32 {
  return g / (1.0 + exp(-g)) * u;
}

// Inverse RMS from a sum of squares over K (NORM only).
fn inv_rms(ss: f32) -> f32 {
  return inverseSqrt(ss / f32(p.K) + p.eps);
}

@compute @workgroup_size(256)
fn matvec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let r = lid / TPR;
  let t = lid % TPR;
  let blk = wg.y * nwg.x + wg.x;
  // Output column n and weight row wr of this thread's row slot r.
  var n = blk * ROWS + r;
  var wr = n;
  if ({{SWIGLU}}) {
    n = blk * (ROWS / 2u) + r % (ROWS / 2u);
    wr = select(n, n + p.N, r >= ROWS / 2u);
  }
  // NORM: per-x-row scales (sa: rows 0..3, sb: rows 4..7), reduced over the whole workgroup.
  var sa = vec4<f32>(1.0);
  var sb = vec4<f32>(1.0);
  if ({{NORM}}) {
    var qa = vec4<f32>();
    var qb = vec4<f32>();
    for (var k4 = lid; k4 < p.KV; k4 += 256u) {
      var v = ldx_in(0u, k4);
      qa.x += dot(v, v);
      if (MR > 1u) { v = ldx_in(1u, k4); qa.y += dot(v, v); }
      if (MR > 2u) { v = ldx_in(2u, k4); qa.z += dot(v, v); }
      if (MR > 3u) { v = ldx_in(3u, k4); qa.w += dot(v, v); }
      if (MR > 4u) { v = ldx_in(4u, k4); qb.x += dot(v, v); }
      if (MR > 5u) { v = ldx_in(5u, k4); qb.y += dot(v, v); }
      if (MR > 6u) { v = ldx_in(6u, k4); qb.z += dot(v, v); }
      if (MR > 7u) { v = ldx_in(7u, k4); qb.w += dot(v, v); }
    }
    redA[lid] = qa;
    redB[lid] = qb;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
      if (lid < s) {
        redA[lid] += redA[lid + s];
        if (MR > 4u) { redB[lid] += redB[lid + s]; }
      }
      workgroupBarrier();
    }
    let ta = redA[0];
    let tb = redB[0];
    sa = vec4<f32>(inv_rms(ta.x), inv_rms(ta.y), inv_rms(ta.z), inv_rms(ta.w));
    sb = vec4<f32>(inv_rms(tb.x), inv_rms(tb.y), inv_rms(tb.z), inv_rms(tb.w));
    workgroupBarrier();
  }
  var a = vec4<f32>();
  var b = vec4<f32>();
  if (n < p.N) {
    for (var k4 = t; k4 < p.KV; k4 += TPR) {
      let wv = ldw_in(wr, k4) {{NORM_G}};
      a.x += dot(wv, ldx_in(0u, k4));
      if (MR > 1u) { a.y += dot(wv, ldx_in(1u, k4)); }
      if (MR > 2u) { a.z += dot(wv, ldx_in(2u, k4)); }
      if (MR > 3u) { a.w += dot(wv, ldx_in(3u, k4)); }
      if (MR > 4u) { b.x += dot(wv, ldx_in(4u, k4)); }
      if (MR > 5u) { b.y += dot(wv, ldx_in(5u, k4)); }
      if (MR > 6u) { b.z += dot(wv, ldx_in(6u, k4)); }
      if (MR > 7u) { b.w += dot(wv, ldx_in(7u, k4)); }
    }
  }
  redA[lid] = a;
  redB[lid] = b;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      redA[lid] += redA[lid + s];
      if (MR > 4u) { redB[lid] += redB[lid + s]; }
    }
    workgroupBarrier();
  }
  var last = ROWS;
  if ({{SWIGLU}}) {
    last = ROWS / 2u;
  }
  if (t == 0u && r < last && n < p.N) {
    var ra = redA[lid] * sa;
    var rb = redB[lid] * sb;
    if ({{SWIGLU}}) {
      let ua = redA[lid + (ROWS / 2u) * TPR] * sa;
      let ub = redB[lid + (ROWS / 2u) * TPR] * sb;
      ra = vec4<f32>(silu_mul(ra.x, ua.x), silu_mul(ra.y, ua.y), silu_mul(ra.z, ua.z), silu_mul(ra.w, ua.w));
      rb = vec4<f32>(silu_mul(rb.x, ub.x), silu_mul(rb.y, ub.y), silu_mul(rb.z, ub.z), silu_mul(rb.w, ub.w));
    }
    put(0u, n, ra.x);
    if (MR > 1u) { put(1u, n, ra.y); }
    if (MR > 2u) { put(2u, n, ra.z); }
    if (MR > 3u) { put(3u, n, ra.w); }
    if (MR > 4u) { put(4u, n, rb.x); }
    if (MR > 5u) { put(5u, n, rb.y); }
    if (MR > 6u) { put(6u, n, rb.z); }
    if (MR > 7u) { put(7u, n, rb.w); }
  }
}

// Weight row of slot i (0..RPT-1) for a thread whose first output column is n0, clamped in range
// (out-of-range slots compute garbage that is never stored).
fn sw_row(n0: u32, i: u32) -> u32 {
  if ({{SWIGLU}}) {
    let c = min(n0 + i % (RPT / 2u), p.N - 1u);
    return select(c, c + p.N, i >= RPT / 2u);
  }
  return min(n0 + i, p.N - 1u);
}

fn sw_put(m: u32, n: u32, v: f32, u: f32, s: f32) {
  if ({{SWIGLU}}) {
    put(m, n, silu_mul(v * s, u * s));
  } else {
    put(m, n, v * s);
  }
}

fn hsum(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

// Store the RPT row sums of x row m (SWIGLU: slots 0..RPT/2-1 are gate rows, RPT/2.. the up rows).
fn sw_store(m: u32, n0: u32, s: f32, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>,
            a4: vec4<f32>, a5: vec4<f32>, a6: vec4<f32>, a7: vec4<f32>) {
  if ({{SWIGLU}}) {
    if (RPT == 2u) {
      sw_put(m, n0, hsum(a0), hsum(a1), s);
    } else if (RPT == 4u) {
      sw_put(m, n0, hsum(a0), hsum(a2), s);
      sw_put(m, n0 + 1u, hsum(a1), hsum(a3), s);
    } else {
      sw_put(m, n0, hsum(a0), hsum(a4), s);
      sw_put(m, n0 + 1u, hsum(a1), hsum(a5), s);
      sw_put(m, n0 + 2u, hsum(a2), hsum(a6), s);
      sw_put(m, n0 + 3u, hsum(a3), hsum(a7), s);
    }
  } else {
    sw_put(m, n0, hsum(a0), 0.0, s);
    sw_put(m, n0 + 1u, hsum(a1), 0.0, s);
    if (RPT > 2u) {
      sw_put(m, n0 + 2u, hsum(a2), 0.0, s);
      sw_put(m, n0 + 3u, hsum(a3), 0.0, s);
    }
    if (RPT > 4u) {
      sw_put(m, n0 + 4u, hsum(a4), 0.0, s);
      sw_put(m, n0 + 5u, hsum(a5), 0.0, s);
      sw_put(m, n0 + 6u, hsum(a6), 0.0, s);
      sw_put(m, n0 + 7u, hsum(a7), 0.0, s);
    }
  }
}

@compute @workgroup_size(64)
fn matvec_sw(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  var outs = RPT;
  if ({{SWIGLU}}) {
    outs = RPT / 2u;
  }
  let n0 = ((wg.y * nwg.x + wg.x) * 64u + lid) * outs;
  if (n0 >= p.N) {
    return;
  }
  let w0 = sw_row(n0, 0u); let w1 = sw_row(n0, 1u); let w2 = sw_row(n0, 2u); let w3 = sw_row(n0, 3u);
  let w4 = sw_row(n0, 4u); let w5 = sw_row(n0, 5u); let w6 = sw_row(n0, 6u); let w7 = sw_row(n0, 7u);
  // x rows in pairs (m, m + 1): each weight vec4 loaded feeds both (the second is skipped for M = 1
  // and clamped / not stored past the last row).
  for (var m = 0u; m < MR; m += 2u) {
    let m1 = min(m + 1u, MR - 1u);
    var a0 = vec4<f32>(); var a1 = vec4<f32>(); var a2 = vec4<f32>(); var a3 = vec4<f32>();
    var a4 = vec4<f32>(); var a5 = vec4<f32>(); var a6 = vec4<f32>(); var a7 = vec4<f32>();
    var b0 = vec4<f32>(); var b1 = vec4<f32>(); var b2 = vec4<f32>(); var b3 = vec4<f32>();
    var b4 = vec4<f32>(); var b5 = vec4<f32>(); var b6 = vec4<f32>(); var b7 = vec4<f32>();
    var ss = vec4<f32>();
    var st = vec4<f32>();
    for (var k4 = 0u; k4 < p.KV; k4++) {
      var xv = ldx_in(m, k4);
      var yv = vec4<f32>();
      if (MR > 1u) {
        yv = ldx_in(m1, k4);
      }
      {{NORM_X}}
      var wv = ldw_in(w0, k4);
      a0 = fma(wv, xv, a0);
      if (MR > 1u) { b0 = fma(wv, yv, b0); }
      wv = ldw_in(w1, k4);
      a1 = fma(wv, xv, a1);
      if (MR > 1u) { b1 = fma(wv, yv, b1); }
      if (RPT > 2u) {
        wv = ldw_in(w2, k4);
        a2 = fma(wv, xv, a2);
        if (MR > 1u) { b2 = fma(wv, yv, b2); }
        wv = ldw_in(w3, k4);
        a3 = fma(wv, xv, a3);
        if (MR > 1u) { b3 = fma(wv, yv, b3); }
      }
      if (RPT > 4u) {
        wv = ldw_in(w4, k4);
        a4 = fma(wv, xv, a4);
        if (MR > 1u) { b4 = fma(wv, yv, b4); }
        wv = ldw_in(w5, k4);
        a5 = fma(wv, xv, a5);
        if (MR > 1u) { b5 = fma(wv, yv, b5); }
        wv = ldw_in(w6, k4);
        a6 = fma(wv, xv, a6);
        if (MR > 1u) { b6 = fma(wv, yv, b6); }
        wv = ldw_in(w7, k4);
        a7 = fma(wv, xv, a7);
        if (MR > 1u) { b7 = fma(wv, yv, b7); }
      }
    }
    var s = 1.0;
    var t = 1.0;
    if ({{NORM}}) {
      s = inv_rms(hsum(ss));
      t = inv_rms(hsum(st));
    }
    sw_store(m, n0, s, a0, a1, a2, a3, a4, a5, a6, a7);
    if (MR > 1u && m + 1u < MR) {
      sw_store(m + 1u, n0, t, b0, b1, b2, b3, b4, b5, b6, b7);
    }
  }
}

{{SW4_ENTRY}}
