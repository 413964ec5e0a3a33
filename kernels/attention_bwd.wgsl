// Backward of scaled-dot-product attention with grouped-query heads and a causal or per-query bitset
// mask (the EAGLE-3 training-time-test mask), for training. Scores are recomputed, never stored
// (flash-attention style), so memory is O(Tq·nH) beyond the inputs. With P = softmax(s),
// s_j = scale · q·k_j, dP_j = dout·v_j, D = dout·out = Σ_j P_j·dP_j and dS_j = P_j·(dP_j − D):
//   dq = scale · Σ_j dS_j · k_j      dk_j = scale · Σ_(t,h) dS_j · q      dv_j = Σ_(t,h) P_j · dout
// (dk, dv summed over the queries and over the nH/nKV query heads that share the kv head).
//
// entry dq_main: one workgroup of 128 threads per (query head h = wg.x, query t = wg.y).
//   Pass 1: each thread keeps an online (max, Σexp) over keys lid, lid+128, …; merged by a tree
//   reduction, together with D = Σ_d dout_d·out_d, into lse = m + log l. Pass 2: tiles of 128 keys:
//   thread i computes dS for key j0 + i into workgroup memory; thread d (< hd) then accumulates
//   Σ dS_j·k_j[d]. Writes dq and stats[t, h] = (lse, D) for dkv_main. Bindings 6, 7 = out, dq.
// entry dkv_main: one workgroup of 128 threads per (kv head g = wg.x, key j = wg.y). Tiles of 128
//   (query, head-in-group) pairs: thread i computes P and scale·dS of pair i (0 when masked) from
//   stats; thread d then accumulates Σ scale·dS·q[d] and Σ P·dout[d]. In causal mode the pairs of
//   queries that cannot see key j are skipped. Writes (or adds, p.accum != 0) dk, dv. Bindings
//   6, 7 = dk, dv.
//   q, dout, out, dq: (Tq, nH·hd)   k, v, dk, dv: (S ≥ kv_len, nKV·hd) (rows ≥ kv_len untouched)
//   mask: (Tq, mask_words) u32   stats: (Tq, nH, 2) f32 scratch
//   Masking as kernels/attention.wgsl: use_mask == 0 → causal (query t sees keys ≤ kv_len − Tq + t);
//   1 → bit (j & 31) of mask[t·mask_words + j/32]; 4 → training-time test (no mask read): query
//   t = b·S + u (S = p.seq_len) sees rows b·S..t and row j·p.step_stride + t for j = 1..p.steps.
//   In mode 4 dq_main loops over the virtual index [0, u + 1 + steps) of exactly those keys;
//   dkv_main runs over the step-0 keys only (rows j < Tq), visiting the queries j..(b+1)·S − 1 of
//   key j's sequence, and the later rows go to dkv_diag. hd ≤ 128 (any value); scalar loads.
// entry dkv_diag (mode 4 only): one workgroup of 128 threads per (kv head g = wg.x, position
//   r = wg.y < step_stride). The keys of steps 1..steps at rows s·step_stride + r are seen by query
//   r alone, so thread i < steps·grp computes P and scale·dS of (step i / grp + 1, head i % grp of
//   the group) and thread d < hd sums them per step (the same arithmetic as dkv_main, one workgroup
//   for all steps instead of one per key). For r ≥ Tq, the padding rows s·step_stride + r, s < steps,
//   that no query sees are written 0 (left as they are with accum). steps·grp ≤ 128.

struct Params {
  tq: u32,
  nh: u32,
  nkv: u32,
  kv_len: u32,
  scale: f32,
  use_mask: u32,
  mask_words: u32,
  hd: u32,
  accum: u32,
  seq_len: u32,     // use_mask == 4: tokens per sequence
  step_stride: u32, // use_mask == 4: rows between consecutive steps' keys
  steps: u32,       // use_mask == 4: earlier steps whose diagonal key a query sees
}

@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> k: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> b6: array<f32>; // dq_main: out   dkv_main: dk
@group(0) @binding(7) var<storage, read_write> b7: array<f32>; // dq_main: dq    dkv_main: dv
@group(0) @binding(8) var<uniform> p: Params;

const WG: u32 = {{WG}}u; // 128, or 64 (software adapters, hd ≤ 64)
const NEG: f32 = -1.0e30;

var<workgroup> xa: array<f32, 128>; // dq_main: q·scale   dkv_main: k_j
var<workgroup> xb: array<f32, 128>; // dq_main: dout      dkv_main: v_j
var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;
var<workgroup> red_d: array<f32, WG>;
var<workgroup> tp: array<f32, WG>;  // per-tile P
var<workgroup> tds: array<f32, WG>; // per-tile dS

// Whether query t sees key j (j is virtual in dq_main's mode 4 and always in range there; in
// dkv_main's mode 4 only visible (query, key) pairs are visited).
fn visible(t: u32, j: u32) -> bool {
  if (p.use_mask == 0u) {
    return j + p.tq <= p.kv_len + t;
  }
  if (p.use_mask == 4u) {
    return true;
  }
  return ((mask[t * p.mask_words + (j >> 5u)] >> (j & 31u)) & 1u) != 0u;
}

// Physical row of virtual key v of query t (identity except in mode 4).
fn key_row(t: u32, v: u32, base: u32, pre: u32) -> u32 {
  if (p.use_mask != 4u) {
    return v;
  }
  if (v < pre) {
    return base + v;
  }
  return (v - pre + 1u) * p.step_stride + t;
}

@compute @workgroup_size(WG)
fn dq_main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let t = wg.y;
  let g = h / (p.nh / p.nkv);
  let hd = p.hd;
  let qrow = (t * p.nh + h) * hd;
  let row = p.nkv * hd;
  let koff = g * hd;
  var dd = 0.0;
  if (lid < hd) {
    xa[lid] = q[qrow + lid] * p.scale;
    xb[lid] = dout[qrow + lid];
    dd = xb[lid] * b6[qrow + lid];
  }
  var kend = p.kv_len;
  var base = 0u; // mode 4: first row of the query's sequence
  var pre = 0u;  // mode 4: its causal keys (virtual index; later ones are the diagonal keys)
  if (p.use_mask == 0u) {
    kend = p.kv_len - p.tq + t + 1u;
  } else if (p.use_mask == 4u) {
    base = (t / p.seq_len) * p.seq_len;
    pre = t - base + 1u;
    kend = pre + p.steps;
  }
  workgroupBarrier();
  // pass 1: log-sum-exp of the visible scores, and D
  var m = NEG;
  var l = 0.0;
  for (var j = lid; j < kend; j += WG) {
    if (visible(t, j)) {
      let kr = key_row(t, j, base, pre) * row + koff;
      var s = 0.0;
      for (var d = 0u; d < hd; d++) {
        s = fma(xa[d], k[kr + d], s);
      }
      if (s > m) {
        l = l * exp(m - s) + 1.0;
        m = s;
      } else {
        l += exp(s - m);
      }
    }
  }
  red_m[lid] = m;
  red_s[lid] = l;
  red_d[lid] = dd;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (lid < st) {
      let m1 = red_m[lid];
      let m2 = red_m[lid + st];
      let mm = max(m1, m2);
      red_s[lid] = red_s[lid] * exp(m1 - mm) + red_s[lid + st] * exp(m2 - mm);
      red_m[lid] = mm;
      red_d[lid] += red_d[lid + st];
    }
    workgroupBarrier();
  }
  let has_keys = red_s[0] > 0.0;
  let lse = red_m[0] + log(max(red_s[0], 1e-30));
  let dsum = red_d[0];
  // pass 2: dq = scale · Σ_j dS_j k_j
  var acc = 0.0;
  for (var j0 = 0u; j0 < kend; j0 += WG) {
    let j = j0 + lid;
    var ds = 0.0;
    if (has_keys && j < kend && visible(t, j)) {
      let kr = key_row(t, j, base, pre) * row + koff;
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < hd; d++) {
        s = fma(xa[d], k[kr + d], s);
        dp = fma(xb[d], v[kr + d], dp);
      }
      let pj = exp(s - lse);
      ds = pj * (dp - dsum);
    }
    tds[lid] = ds;
    workgroupBarrier();
    if (lid < hd) {
      let n = min(WG, kend - j0);
      for (var jj = 0u; jj < n; jj++) {
        let w = tds[jj];
        if (w != 0.0) {
          acc = fma(w, k[key_row(t, j0 + jj, base, pre) * row + koff + lid], acc);
        }
      }
    }
    workgroupBarrier();
  }
  if (lid < hd) {
    b7[qrow + lid] = acc * p.scale;
  }
  if (lid == 0u) {
    let si = (t * p.nh + h) * 2u;
    if (has_keys) {
      stats[si] = lse;
    } else {
      stats[si] = -NEG; // never used: the query sees no key
    }
    stats[si + 1u] = dsum;
  }
}

@compute @workgroup_size(WG)
fn dkv_main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wg.x;
  let j = wg.y;
  let grp = p.nh / p.nkv;
  let hd = p.hd;
  let row = p.nkv * hd;
  let kb = j * row + g * hd;
  if (lid < hd) {
    xa[lid] = k[kb + lid];
    xb[lid] = v[kb + lid];
  }
  workgroupBarrier();
  var npairs = p.tq * grp; // pairs [first, npairs) may see key j
  var first = 0u; // causal: queries t < j + tq − kv_len cannot see key j
  if (p.use_mask == 0u && j + p.tq > p.kv_len) {
    first = (j + p.tq - p.kv_len) * grp;
  } else if (p.use_mask == 4u) {
    npairs = 0u; // dispatched over the step-0 keys j < tq only (later rows: dkv_diag)
    if (j < p.tq) {
      first = j * grp; // queries j .. end of its sequence
      npairs = (j / p.seq_len + 1u) * p.seq_len * grp;
    }
  }
  var ak = 0.0;
  var av = 0.0;
  for (var i0 = first; i0 < npairs; i0 += WG) {
    let i = i0 + lid;
    var pj = 0.0;
    var ds = 0.0;
    if (i < npairs) {
      let t = i / grp;
      if (visible(t, j)) {
        let qrow = (t * p.nh + g * grp + (i - t * grp)) * hd; // row (t, h), h = g·grp + i % grp
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < hd; d++) {
          s = fma(q[qrow + d], xa[d], s);
          dp = fma(dout[qrow + d], xb[d], dp);
        }
        let si = (qrow / hd) * 2u;
        pj = exp(s * p.scale - stats[si]);
        ds = pj * (dp - stats[si + 1u]) * p.scale;
      }
    }
    tp[lid] = pj;
    tds[lid] = ds;
    workgroupBarrier();
    if (lid < hd) {
      let n = min(WG, npairs - i0);
      for (var ii = 0u; ii < n; ii++) {
        let pw = tp[ii];
        if (pw != 0.0) {
          let ip = i0 + ii;
          let t = ip / grp;
          let qrow = (t * p.nh + g * grp + (ip - t * grp)) * hd;
          ak = fma(tds[ii], q[qrow + lid], ak);
          av = fma(pw, dout[qrow + lid], av);
        }
      }
    }
    workgroupBarrier();
  }
  if (lid < hd) {
    if (p.accum != 0u) {
      b6[kb + lid] += ak;
      b7[kb + lid] += av;
    } else {
      b6[kb + lid] = ak;
      b7[kb + lid] = av;
    }
  }
}

@compute @workgroup_size(WG)
fn dkv_diag(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wg.x;
  let r = wg.y;
  let grp = p.nh / p.nkv;
  let hd = p.hd;
  let row = p.nkv * hd;
  if (r >= p.tq) {
    // Padding rows s·step_stride + r (s < steps) inside [0, kv_len): no query sees them.
    if (p.accum == 0u && lid < hd) {
      for (var s = 0u; s < p.steps; s++) {
        let kb = (s * p.step_stride + r) * row + g * hd;
        b6[kb + lid] = 0.0;
        b7[kb + lid] = 0.0;
      }
    }
    return;
  }
  // P and scale·dS of (step s = i / grp + 1, head g·grp + i % grp) for query r, as dkv_main.
  if (lid < p.steps * grp) {
    let s = lid / grp + 1u;
    let qrow = (r * p.nh + g * grp + lid % grp) * hd;
    let kb = (s * p.step_stride + r) * row + g * hd;
    var sc = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < hd; d++) {
      sc = fma(q[qrow + d], k[kb + d], sc);
      dp = fma(dout[qrow + d], v[kb + d], dp);
    }
    let si = (qrow / hd) * 2u;
    let pj = exp(sc * p.scale - stats[si]);
    tp[lid] = pj;
    tds[lid] = pj * (dp - stats[si + 1u]) * p.scale;
  }
  workgroupBarrier();
  if (lid < hd) {
    for (var s = 1u; s <= p.steps; s++) {
      var ak = 0.0;
      var av = 0.0;
      for (var hh = 0u; hh < grp; hh++) {
        let i = (s - 1u) * grp + hh;
        let pw = tp[i];
        if (pw != 0.0) {
          let qrow = (r * p.nh + g * grp + hh) * hd;
          ak = fma(tds[i], q[qrow + lid], ak);
          av = fma(pw, dout[qrow + lid], av);
        }
      }
      let kb = (s * p.step_stride + r) * row + g * hd;
      if (p.accum != 0u) {
        b6[kb + lid] += ak;
        b7[kb + lid] += av;
      } else {
        b6[kb + lid] = ak;
        b7[kb + lid] = av;
      }
    }
  }
}
