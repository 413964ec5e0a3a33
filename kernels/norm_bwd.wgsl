// Backward of RMSNorm y = x · r · w, r = (mean(x²) + eps)^(−1/2) per row (HF LlamaRMSNorm), for
// training. With g_i = w_i · dy_i:
//   dx_i = r · g_i − (r³ / H) · x_i · Σ_j g_j · x_j          (per row)
//   dw_i = Σ_rows dy_i · x_i · r                              (over rows)
//
// entry dx: one 256-thread workgroup per row (row = wg.y · nwg.x + wg.x): strided sums of x² and
//   g·x reduced in workgroup memory, then dx written (or added when p.accum != 0); thread 0 stores
//   r in rstd[row] for the dw pass. dx must not overlap x or dy.
// entry dw: one thread per column i (index = (wg.y · nwg.x + wg.x) · 256 + lid), a loop over the
//   rows in order (deterministic, no atomics): dw_i = [dw_i +] Σ_m dy[m, i] · x[m, i] · rstd[m].
//   x, dy, dx: (M, H) f32   w, dw: (H) f32   rstd: (M) f32 scratch

struct Params { h: u32, m: u32, eps: f32, accum: u32 }

@group(0) @binding(0) var<storage, read_write> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> red_ss: array<f32, 256>;
var<workgroup> red_gx: array<f32, 256>;

@compute @workgroup_size(256)
fn dx_main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= p.m) {
    return; // uniform per workgroup
  }
  let base = row * p.h;
  var ss = 0.0;
  var gx = 0.0;
  for (var i = lid; i < p.h; i += 256u) {
    let xv = x[base + i];
    ss += xv * xv;
    gx += w[i] * dy[base + i] * xv;
  }
  red_ss[lid] = ss;
  red_gx[lid] = gx;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red_ss[lid] += red_ss[lid + s];
      red_gx[lid] += red_gx[lid + s];
    }
    workgroupBarrier();
  }
  let r = inverseSqrt(red_ss[0] / f32(p.h) + p.eps);
  let c = r * r * r / f32(p.h) * red_gx[0];
  for (var i = lid; i < p.h; i += 256u) {
    let v = r * w[i] * dy[base + i] - c * x[base + i];
    if (p.accum != 0u) {
      dx[base + i] += v;
    } else {
      dx[base + i] = v;
    }
  }
  if (lid == 0u) {
    rstd[row] = r;
  }
}

@compute @workgroup_size(256)
fn dw_main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= p.h) {
    return;
  }
  var acc = 0.0;
  for (var m = 0u; m < p.m; m++) {
    acc = fma(dy[m * p.h + i] * x[m * p.h + i], rstd[m], acc);
  }
  // dw is bound at binding 3 (the `dx` slot) for this entry point
  if (p.accum != 0u) {
    dx[i] += acc;
  } else {
    dx[i] = acc;
  }
}
