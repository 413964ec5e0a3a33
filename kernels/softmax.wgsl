// Row softmax and log-softmax of x / T (temperature T > 0), used for output probabilities,
// distillation losses and speculative-decoding acceptance.
//
// One 256-thread workgroup per row (row = wg.y * nwg.x + wg.x). Pass 1 is an online (streaming)
// max/sum: each thread keeps (m, s) with s = Σ exp(z − m) over its strided slice, z = x / T; the
// 256 pairs are merged by a tree reduction in workgroup memory with
//   (m1, s1) ⊕ (m2, s2) = (max, s1·exp(m1 − max) + s2·exp(m2 − max)).
// Pass 2 writes the row. m starts at −FLT_MAX (not −inf), so a −inf logit contributes exp(−inf) = 0
// and fully masked entries never produce inf − inf.
//   x, out: (M, N) f32; out may alias x (each element is read and written by the same thread).
//
// entry softmax:     out = exp(z − m) / s
// entry log_softmax: out = z − (m + log s)

struct Params { n: u32, m: u32, t: f32 }

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> red_m: array<f32, 256>;
var<workgroup> red_s: array<f32, 256>;

const NEG_MAX: f32 = -3.4028234663852886e38;

// Row max and Σ exp(z − max) of row `row`, identical in every thread of the workgroup.
fn row_stats(row: u32, lid: u32) -> vec2f {
  let base = row * p.n;
  var m = NEG_MAX;
  var s = 0.0;
  for (var i = lid; i < p.n; i += 256u) {
    let z = x[base + i] / p.t;
    if (z > m) {
      s = s * exp(m - z) + 1.0;
      m = z;
    } else {
      s += exp(z - m);
    }
  }
  red_m[lid] = m;
  red_s[lid] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (lid < k) {
      let m1 = red_m[lid];
      let m2 = red_m[lid + k];
      let mm = max(m1, m2);
      red_s[lid] = red_s[lid] * exp(m1 - mm) + red_s[lid + k] * exp(m2 - mm);
      red_m[lid] = mm;
    }
    workgroupBarrier();
  }
  return vec2f(red_m[0], red_s[0]);
}

@compute @workgroup_size(256)
fn softmax(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= p.m) {
    return;
  }
  let st = row_stats(row, lid);
  let inv = 1.0 / st.y;
  let base = row * p.n;
  for (var i = lid; i < p.n; i += 256u) {
    out[base + i] = exp(x[base + i] / p.t - st.x) * inv;
  }
}

@compute @workgroup_size(256)
fn log_softmax(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= p.m) {
    return;
  }
  let st = row_stats(row, lid);
  let lse = st.x + log(st.y);
  let base = row * p.n;
  for (var i = lid; i < p.n; i += 256u) {
    out[base + i] = x[base + i] / p.t - lse;
  }
}
