// Soft cross-entropy against a target distribution, forward and backward fused (EAGLE-3 Phase I
// loss: the target's probabilities restricted to the draft vocabulary), for training:
//   loss_m = −w_m · Σ_v p_v · log_softmax(z)_v = −w_m · (Σ p·z − Σp · lse(z))
//   dz_v   =  w_m · (softmax(z)_v · Σp − p_v)
// The per-row weight w_m carries the position mask, the step weight 0.8^k and the 1/(B·S) mean.
// With p.hard == 1 a hard-label term with a signed per-row weight h_m is added (the GTO surrogate's
// gradient along the accepted path, train/gto_ref.ts): hloss_m = −h_m · log_softmax(z)[y_m] (kept
// apart from the soft loss, so token-loss metrics stay clean), dz_v += h_m · (softmax(z)_v −
// [v = y_m]); rows with y_m ≥ V have no hard term (hloss 0).
//
// entry soft_xent: one 256-thread workgroup per row (row = wg.y · nwg.x + wg.x). Pass 1: per thread
//   an online (max, Σexp) plus Σp and Σp·z over a strided slice, merged by a tree reduction in
//   workgroup memory ((m1, s1) ⊕ (m2, s2) = (max, s1·e^(m1−max) + s2·e^(m2−max))). Thread 0 writes
//   loss[row]; pass 2 writes dz. d_logits may alias logits (each element is read, then written, by
//   the same thread after the reduction). logits, probs, d_logits: (M, V)   w, loss, hw: (M) f32
//   labels: (M) u32   hloss: (M) f32.

struct Params { v: u32, m: u32, hard: u32 }

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> probs: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;
@group(0) @binding(5) var<storage, read_write> labels: array<u32>;
@group(0) @binding(6) var<storage, read_write> hw: array<f32>;
@group(0) @binding(7) var<storage, read_write> hloss: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

var<workgroup> red_m: array<f32, 256>;
var<workgroup> red_s: array<f32, 256>;
var<workgroup> red_p: array<f32, 256>;
var<workgroup> red_pz: array<f32, 256>;

const NEG_MAX: f32 = -3.4028234663852886e38;

@compute @workgroup_size(256)
fn soft_xent(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= p.m) {
    return; // uniform per workgroup
  }
  let base = row * p.v;
  var m = NEG_MAX;
  var s = 0.0;
  var sp = 0.0;
  var spz = 0.0;
  for (var i = lid; i < p.v; i += 256u) {
    let z = logits[base + i];
    let pv = probs[base + i];
    sp += pv;
    spz += pv * z;
    if (z > m) {
      s = s * exp(m - z) + 1.0;
      m = z;
    } else {
      s += exp(z - m);
    }
  }
  red_m[lid] = m;
  red_s[lid] = s;
  red_p[lid] = sp;
  red_pz[lid] = spz;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (lid < k) {
      let m1 = red_m[lid];
      let m2 = red_m[lid + k];
      let mm = max(m1, m2);
      red_s[lid] = red_s[lid] * exp(m1 - mm) + red_s[lid + k] * exp(m2 - mm);
      red_m[lid] = mm;
      red_p[lid] += red_p[lid + k];
      red_pz[lid] += red_pz[lid + k];
    }
    workgroupBarrier();
  }
  let lse = red_m[0] + log(red_s[0]);
  let wr = w[row];
  let psum = red_p[0];
  var lbl = 0xffffffffu;
  var wh = 0.0;
  if (p.hard == 1u) {
    lbl = labels[row];
    if (lbl < p.v) {
      wh = hw[row];
    }
  }
  if (lid == 0u) {
    loss[row] = -wr * (red_pz[0] - psum * lse);
    if (p.hard == 1u) {
      var hl = 0.0;
      if (lbl < p.v) {
        hl = -wh * (logits[base + lbl] - lse);
      }
      hloss[row] = hl;
    }
  }
  workgroupBarrier(); // the label's logit is read before any thread overwrites it (dz may alias logits)
  for (var i = lid; i < p.v; i += 256u) {
    let z = logits[base + i];
    let q = exp(z - lse);
    var d = wr * (q * psum - probs[base + i]) + wh * q;
    if (i == lbl) {
      d -= wh;
    }
    dz[base + i] = d;
  }
}
