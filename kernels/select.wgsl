// Token selection on the GPU, so a decode loop never reads logits back to the CPU: greedy argmax,
// top-k (EAGLE draft-tree expansion) and exact stochastic sampling with temperature / top-k / top-p.
//
// Every entry point runs one 256-thread workgroup per row (row = wg.y * nwg.x + wg.x) with strided,
// coalesced loops over the row and tree reductions in workgroup memory (no subgroups, no
// runtime-indexed private arrays). The entry points have different interfaces, so some bindings are
// declared twice with different types; each pipeline only sees its own entry point's bindings.
//
// entry argmax: x (M, N) f32 → out[out_offset + m] u32, lowest index on ties (NaNs are skipped).
//
// entry argmax_sw (software adapters, N % 4 == 0): the same result from one 8-thread workgroup per
//   row (one llvmpipe SIMD vector: a barrier costs no fiber switches) reading vec4s; lane l scans
//   vec4s l, l + 8, … in index order, then lane 0 combines the 8 candidates (value desc, index asc).
//
// entry topk: x (M, N) f32 → ids (M, K) u32, vals (M, K) f32, descending, ties by lower index.
//   K rounds; round j finds the best element strictly below round j−1's pick in the total order
//   (value desc, index asc), so ties and duplicates are exact. K ≤ 64 keeps it at K passes over N.
//
// entry sample: logits (M, N) f32 → out[out_offset + m] u32. With z = x / T and w = exp(z − max z):
//   1. top-k (0 < top_k < N): τk = the top_k-th largest z, found exactly by a radix search on an
//      order-preserving u32 key of z, 3 bits per pass (11 passes, each counting keys ≥ the 7
//      candidates in one workgroup reduction; see radix_threshold). Keep z ≥ τk: ties at the
//      threshold are all kept (as HF's TopKLogitsWarper).
//   2. top-p (top_p < 1), over the top-k-filtered, tempered distribution: τp = the largest key t
//      with Σ_{kept, key ≥ t} w ≥ top_p · Σ_kept w (the same radix search on masses). Keep z ≥ τp:
//      the smallest highest-probability set with mass ≥ top_p, plus any ties of its last member
//      (same kept set as HF's TopPLogitsWarper when there are no ties).
//   3. Inverse CDF in index order: thread t owns the contiguous chunk [t·C, (t+1)·C), C = ⌈N/256⌉,
//      sums its kept w, an inclusive Hillis–Steele scan over the 256 chunk sums gives the CDF at
//      chunk ends; with goal = u · total, the one thread whose [excl, incl) holds goal walks
//      its chunk with goal − excl and a running sum from 0, and picks the first index whose sum
//      exceeds it (zero-weight entries can never be picked). Exact in distribution up to f32
//      rounding of the sums (a weight is lost only below ulp/2 of its own chunk's running sum).
// entry probs: the same filtered distribution written out: out_p (M, N) f32 = w / Σ kept w on kept
//   entries, 0 elsewhere (steps 1–2 of `sample`). Used by tree verification at T > 0, whose
//   rejection walk needs the target's probabilities of the drafted tokens.
// entry probs_sw (software adapters; no top-k / top-p filter, N % 4 == 0): the same distribution, w / Σ w
//   over the whole row, from one 8-thread workgroup per row (one llvmpipe SIMD vector: barriers switch no
//   fibers) reading and writing vec4s: max, Σ exp(z − max), then the row. Sums in another order than
//   `probs` (f32 rounding differs, the distribution does not).
//   RNG (counter-based, stateless): h = pcg(row + pcg(step + pcg(seed))) with the PCG-RXS-M-XS
//   hash pcg(v) of Jarzynski & Olano (JCGT 2020); u = (h >> 8) · 2⁻²⁴ ∈ [0, 1). `sampleUniform` in
//   packages/core/src/ops/select.ts computes the same u on the CPU.

struct ArgmaxParams { n: u32, m: u32, out_offset: u32 }
struct TopkParams { n: u32, m: u32, k: u32 }
struct SampleParams { n: u32, m: u32, out_offset: u32, top_k: u32, t: f32, top_p: f32, seed: u32, step: u32 }

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out_ids: array<u32>;
@group(0) @binding(2) var<uniform> ap: ArgmaxParams;    // argmax
@group(0) @binding(2) var<storage, read_write> out_vals: array<f32>; // topk
@group(0) @binding(3) var<uniform> kp: TopkParams;      // topk
@group(0) @binding(2) var<uniform> sp: SampleParams;    // sample, probs
@group(0) @binding(1) var<storage, read_write> out_p: array<f32>;  // probs
@group(0) @binding(0) var<storage, read_write> x4: array<vec4f>;   // argmax_sw, probs_sw
@group(0) @binding(1) var<storage, read_write> out_p4: array<vec4f>; // probs_sw

const NONE: u32 = 0xffffffffu;
const NEG_MAX: f32 = -3.4028234663852886e38;

var<workgroup> red_v: array<f32, 256>;
var<workgroup> red_i: array<u32, 256>;
var<workgroup> scan: array<f32, 256>;
var<workgroup> chosen: atomic<u32>;
var<workgroup> last_pos: atomic<u32>;

fn row_of(wg: vec3u, nwg: vec3u) -> u32 {
  return wg.y * nwg.x + wg.x;
}

// (v, i) ranks before (bv, bi): larger value, ties by lower index; NONE (no candidate) ranks last.
fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return i != NONE && (bi == NONE || v > bv || (v == bv && i < bi));
}

// Workgroup-wide best (value, index) of each thread's candidate; result in every thread.
fn reduce_best(lid: u32, v: f32, i: u32) -> u32 {
  red_v[lid] = v;
  red_i[lid] = i;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s && better(red_v[lid + s], red_i[lid + s], red_v[lid], red_i[lid])) {
      red_v[lid] = red_v[lid + s];
      red_i[lid] = red_i[lid + s];
    }
    workgroupBarrier();
  }
  let r = red_i[0];
  workgroupBarrier(); // everyone has read slot 0 before it is reused
  return r;
}

fn reduce_sum_f(lid: u32, v: f32) -> f32 {
  red_v[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red_v[lid] += red_v[lid + s];
    }
    workgroupBarrier();
  }
  let r = red_v[0];
  workgroupBarrier();
  return r;
}

fn reduce_max_f(lid: u32, v: f32) -> f32 {
  red_v[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red_v[lid] = max(red_v[lid], red_v[lid + s]);
    }
    workgroupBarrier();
  }
  let r = red_v[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(256)
fn argmax(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wg, nwg);
  if (row >= ap.m) {
    return;
  }
  let base = row * ap.n;
  var bv = 0.0;
  var bi = NONE;
  for (var i = lid; i < ap.n; i += 256u) {
    let v = x[base + i];
    if (v == v && (bi == NONE || v > bv)) { // strided: a later i only wins when strictly larger
      bv = v;
      bi = i;
    }
  }
  let best = reduce_best(lid, bv, bi);
  if (lid == 0u) {
    out_ids[ap.out_offset + row] = best;
  }
}

var<workgroup> sw_v: array<f32, 8>;
var<workgroup> sw_i: array<u32, 8>;

@compute @workgroup_size(8)
fn argmax_sw(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wg, nwg);
  if (row >= ap.m) {
    return;
  }
  let n4 = ap.n / 4u;
  let base = row * n4;
  var bv = 0.0;
  var bi = NONE;
  for (var i4 = lid; i4 < n4; i4 += 8u) {
    let v = x4[base + i4];
    let i = 4u * i4;
    if (v.x == v.x && (bi == NONE || v.x > bv)) {
      bv = v.x;
      bi = i;
    }
    if (v.y == v.y && (bi == NONE || v.y > bv)) {
      bv = v.y;
      bi = i + 1u;
    }
    if (v.z == v.z && (bi == NONE || v.z > bv)) {
      bv = v.z;
      bi = i + 2u;
    }
    if (v.w == v.w && (bi == NONE || v.w > bv)) {
      bv = v.w;
      bi = i + 3u;
    }
  }
  sw_v[lid] = bv;
  sw_i[lid] = bi;
  workgroupBarrier();
  if (lid == 0u) {
    var best_v = sw_v[0];
    var best_i = sw_i[0];
    for (var l = 1u; l < 8u; l++) {
      if (better(sw_v[l], sw_i[l], best_v, best_i)) {
        best_v = sw_v[l];
        best_i = sw_i[l];
      }
    }
    out_ids[ap.out_offset + row] = best_i;
  }
}

@compute @workgroup_size(256)
fn topk(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wg, nwg);
  if (row >= kp.m) {
    return;
  }
  let base = row * kp.n;
  var pv = 0.0;     // previous pick (value, index); pi == NONE before the first round
  var pi = NONE;
  var exhausted = false;
  for (var j = 0u; j < kp.k; j++) {
    var bv = 0.0;
    var bi = NONE;
    if (!exhausted) {
      for (var i = lid; i < kp.n; i += 256u) {
        let v = x[base + i];
        let below = pi == NONE || v < pv || (v == pv && i > pi);
        if (v == v && below && (bi == NONE || v > bv)) {
          bv = v;
          bi = i;
        }
      }
    }
    let best = reduce_best(lid, bv, bi);
    if (best == NONE) {
      exhausted = true; // only NaNs left
    } else {
      pi = best;
      pv = x[base + best];
    }
    if (lid == 0u) {
      out_ids[row * kp.k + j] = best;
      out_vals[row * kp.k + j] = select(x[base + min(best, kp.n - 1u)], bitcast<f32>(0x7fc00000u | (best & 0u)),
                                        best == NONE);
    }
  }
}

// Order-preserving u32 key of a float (−0 and +0 share the key of +0).
fn key_of(z: f32) -> u32 {
  let b = bitcast<u32>(z);
  if (z == 0.0) {
    return 0x80000000u;
  }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

var<workgroup> red_a: array<vec4f, 256>;
var<workgroup> red_b: array<vec4f, 256>;

// Workgroup sums of two vec4s per thread (8 lanes); result in every thread.
fn reduce_sum8(lid: u32, a: vec4f, b: vec4f) -> array<vec4f, 2> {
  red_a[lid] = a;
  red_b[lid] = b;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red_a[lid] += red_a[lid + s];
      red_b[lid] += red_b[lid + s];
    }
    workgroupBarrier();
  }
  let r = array<vec4f, 2>(red_a[0], red_b[0]);
  workgroupBarrier();
  return r;
}

// For the candidates c_j = t + (j << shift), j = 1..2^width − 1 (t is zero below shift + width):
// returns 8 when key's bits above the digit exceed t's (key ≥ every c_j), else the key's digit when
// those bits are equal (key ≥ c_j ⇔ digit ≥ j), else 0.
fn digit_of(key: u32, t: u32, shift: u32, width: u32) -> u32 {
  let top = shift + width;
  let kp = select(key >> (top & 31u), 0u, top >= 32u);
  let tp = select(t >> (top & 31u), 0u, top >= 32u);
  if (kp > tp) {
    return 8u;
  }
  if (kp < tp) {
    return 0u;
  }
  return (key >> shift) & ((1u << width) - 1u);
}

// Radix bisection over the order-preserving key of z = x / T for the largest key t with
//   Σ_{key ≥ max(t, floor_key)} v ≥ goal,  v = exp(z − mx) if use_mass else 1.
// The 32 key bits are decided as one 2-bit digit and ten 3-bit digits: 11 passes over the row, each
// summing v for the 7 (3) candidate digits at once (8-lane workgroup reduction). The sums are
// non-increasing in the candidate (nested subsets, same reduction tree), so the digit is the number
// of candidates that still reach the goal.
fn radix_threshold(base: u32, lid: u32, mx: f32, floor_key: u32, use_mass: bool, goal: f32) -> u32 {
  var t = 0u;
  for (var step_i = 0u; step_i < 11u; step_i++) {
    let width = select(3u, 2u, step_i == 0u);
    let shift = 30u - 3u * step_i; // 30, 27, 24, ..., 0
    var a = vec4f(0.0);
    var b = vec4f(0.0);
    for (var i = lid; i < sp.n; i += 256u) {
      let z = x[base + i] / sp.t;
      let key = key_of(z);
      if (key >= floor_key) {
        var v = 1.0;
        if (use_mass) {
          v = exp(z - mx);
        }
        let d = vec4u(digit_of(key, t, shift, width));
        a += select(vec4f(0.0), vec4f(v), d >= vec4u(1u, 2u, 3u, 4u));
        b += select(vec4f(0.0), vec4f(v), d >= vec4u(5u, 6u, 7u, 8u));
      }
    }
    let r = reduce_sum8(lid, a, b);
    let ok_a = select(vec4u(0u), vec4u(1u), r[0] >= vec4f(goal));
    let ok_b = select(vec4u(0u), vec4u(1u), r[1] >= vec4f(goal));
    let digit = min(ok_a.x + ok_a.y + ok_a.z + ok_a.w + ok_b.x + ok_b.y + ok_b.z, (1u << width) - 1u);
    t |= digit << shift;
  }
  return t;
}

// Steps 1–2 of `sample` (shared with `probs`): the smallest kept key.
// 1. top-k: the largest key t with #{key ≥ t} ≥ top_k.
// 2. top-p: the largest t with mass(key ≥ max(t, thr)) ≥ top_p · mass(key ≥ thr).
fn kept_threshold(base: u32, lid: u32, mx: f32) -> u32 {
  let n = sp.n;
  var thr = 0u;
  if (sp.top_k > 0u && sp.top_k < n) {
    thr = radix_threshold(base, lid, mx, 0u, false, f32(sp.top_k));
  }
  if (sp.top_p < 1.0) {
    var s = 0.0;
    for (var i = lid; i < n; i += 256u) {
      let z = x[base + i] / sp.t;
      if (key_of(z) >= thr) {
        s += exp(z - mx);
      }
    }
    let goal = sp.top_p * reduce_sum_f(lid, s);
    thr = max(thr, radix_threshold(base, lid, mx, thr, true, goal));
  }
  return thr;
}

@compute @workgroup_size(256)
fn sample(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wg, nwg);
  if (row >= sp.m) {
    return;
  }
  let n = sp.n;
  let base = row * n;
  if (lid == 0u) {
    atomicStore(&chosen, NONE);
    atomicStore(&last_pos, 0u);
  }

  // max z
  var mx = NEG_MAX;
  for (var i = lid; i < n; i += 256u) {
    mx = max(mx, x[base + i] / sp.t);
  }
  mx = reduce_max_f(lid, mx);

  let thr = kept_threshold(base, lid, mx); // keep key ≥ thr

  // 3. inverse CDF over contiguous chunks.
  let chunk = (n + 255u) / 256u;
  let lo = min(lid * chunk, n);
  let hi = min(lo + chunk, n);
  var cs = 0.0;
  var last = NONE;
  for (var i = lo; i < hi; i++) {
    let z = x[base + i] / sp.t;
    if (key_of(z) >= thr) {
      let w = exp(z - mx);
      cs += w;
      if (w > 0.0) {
        last = i;
      }
    }
  }
  if (last != NONE) {
    atomicMax(&last_pos, last + 1u);
  }
  scan[lid] = cs;
  workgroupBarrier();
  for (var off = 1u; off < 256u; off <<= 1u) {
    var v = 0.0;
    if (lid >= off) {
      v = scan[lid - off];
    }
    workgroupBarrier();
    scan[lid] += v;
    workgroupBarrier();
  }
  let incl = scan[lid];
  var excl = 0.0;
  if (lid > 0u) {
    excl = scan[lid - 1u];
  }
  let h = pcg(row + pcg(sp.step + pcg(sp.seed)));
  let u = f32(h >> 8u) * (1.0 / 16777216.0);
  let goal = u * scan[255];
  if (excl <= goal && goal < incl) {
    // Walk relative to the chunk start: a running sum started at excl would absorb every weight
    // below ulp(excl)/2 (e.g. 2.3e-8 tokens after a 0.997 mode: all fell back to the chunk's last).
    let g = goal - excl;
    var r = 0.0;
    var pick = last; // rounding fallback: the chunk's last positive-weight index
    for (var i = lo; i < hi; i++) {
      let z = x[base + i] / sp.t;
      if (key_of(z) >= thr) {
        r += exp(z - mx);
        if (r > g) {
          pick = i;
          break;
        }
      }
    }
    atomicMin(&chosen, pick);
  }
  workgroupBarrier();
  if (lid == 0u) {
    var c = atomicLoad(&chosen);
    if (c == NONE) {
      c = atomicLoad(&last_pos) - 1u; // goal ≥ total by rounding: the last positive-weight index
    }
    out_ids[sp.out_offset + row] = c;
  }
}

@compute @workgroup_size(256)
fn probs(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wg, nwg);
  if (row >= sp.m) {
    return;
  }
  let n = sp.n;
  let base = row * n;
  var mx = NEG_MAX;
  for (var i = lid; i < n; i += 256u) {
    mx = max(mx, x[base + i] / sp.t);
  }
  mx = reduce_max_f(lid, mx);
  let thr = kept_threshold(base, lid, mx);
  var s = 0.0;
  for (var i = lid; i < n; i += 256u) {
    let z = x[base + i] / sp.t;
    if (key_of(z) >= thr) {
      s += exp(z - mx);
    }
  }
  let inv = 1.0 / reduce_sum_f(lid, s);
  for (var i = lid; i < n; i += 256u) {
    let z = x[base + i] / sp.t;
    var pr = 0.0;
    if (key_of(z) >= thr) {
      pr = exp(z - mx) * inv;
    }
    out_p[base + i] = pr;
  }
}

@compute @workgroup_size(8)
fn probs_sw(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wg, nwg);
  if (row >= sp.m) {
    return;
  }
  let n4 = sp.n / 4u;
  let base = row * n4;
  var mx4 = vec4f(NEG_MAX);
  for (var i = lid; i < n4; i += 8u) {
    mx4 = max(mx4, x4[base + i] / sp.t);
  }
  sw_v[lid] = max(max(mx4.x, mx4.y), max(mx4.z, mx4.w));
  workgroupBarrier();
  var mx = sw_v[0];
  for (var l = 1u; l < 8u; l++) {
    mx = max(mx, sw_v[l]);
  }
  workgroupBarrier(); // all have read sw_v before it holds the sums
  var s4 = vec4f(0.0);
  for (var i = lid; i < n4; i += 8u) {
    s4 += exp(x4[base + i] / sp.t - mx);
  }
  sw_v[lid] = (s4.x + s4.y) + (s4.z + s4.w);
  workgroupBarrier();
  var s = 0.0;
  for (var l = 0u; l < 8u; l++) {
    s += sw_v[l];
  }
  let inv = 1.0 / s;
  for (var i = lid; i < n4; i += 8u) {
    out_p4[base + i] = exp(x4[base + i] / sp.t - mx) * inv;
  }
}
