// Fused row log-softmax + top-k for draft-tree expansion: the k best draft log-probs of each row
// straight from the logits, in one dispatch that reads each row from storage once.
//
// Why: a tree level used to run `log_softmax` (softmax.wgsl: two reads + one write of the row) and
// then `topk` (select.wgsl: k strided passes over the row in storage, k = 10 at the default tree).
// On a software adapter every storage load is a per-lane scalar loop, so those k + 3 row passes
// dominated tree construction; on a GPU they are k + 3 dependent sweeps of DRAM/L2.
//
// One workgroup of WG threads per row (row = wg.y * nwg.x + wg.x; WG divides 256), x (M, N) f32 →
// ids (M, K) u32, vals (M, K) f32, descending, equal values by lower index, NaNs never selected (rows
// with fewer than K non-NaN values get id 0xffffffff and value NaN). Bit for bit equal to
// `log_softmax` (softmax.wgsl) followed by `topk` (select.wgsl):
//   1. Stats: exactly softmax.wgsl's `row_stats` computed by 256 *virtual* threads: virtual thread v
//      streams elements v, v+256, … with the online (max, Σexp) update of z = x / T, and the 256
//      partial pairs are merged by the same tree (v < h merges v + h, h = 128 … 1). Real thread t runs
//      virtual threads t, t+WG, …; the levels h ≥ WG merge pairs owned by one real thread, so only
//      the last log2(WG) levels need barriers. lse = max + log(Σ) thus has the same bits as in
//      `log_softmax`, and an element's log-prob is z − lse as that kernel writes it. Selection
//      compares these log-probs, not the logits, so logits that round to the same log-prob tie (and
//      go to the lower index) exactly as after `log_softmax`.
//   2. Real thread t owns the elements i ≡ t (mod WG). With CACHED, z is kept in workgroup memory
//      (`zc[i]`: only its owner touches it, so no barrier guards it) and the row is never read from
//      storage again; without (rows too long for the workgroup memory) z is re-read from storage.
//   3. Each thread holds its best not-yet-picked element as a candidate; each of the K rounds is one
//      workgroup reduction of the WG candidates under the total order (value desc, index asc), after
//      which only the winner's owner rescans its own elements. The row is scanned ~2 times in all
//      instead of K times.
// Why WG is a parameter: on llvmpipe a workgroup runs as fibers of SIMD-width lanes that switch at
// every barrier, so the K·(log2 WG + 2) barriers dominate at WG = 256; WG = 16 is the software-adapter
// default (10 rows × 1024, k = 10, loaded llvmpipe: WG 8–32 0.56–0.68 ms, 64 1.8 ms, 256 14.6 ms,
// vs 9.0 ms for log_softmax + topk; benchmarks/kernels_bench.ts). Hardware GPUs get WG = 256. Also measured there: declaring the large `zc` array before the reduction arrays made this
// kernel 4–5× slower on llvmpipe (0.54 → 2.2–3.4 ms for one 1024-row), so it is declared last.
// entry topk_log_softmax_sw (software adapters): the same result, bit for bit, from one invocation per
//   row (8 per workgroup, row = (wg.y · nwg.x + wg.x) · 8 + lid; no barriers, no workgroup memory): the
//   256 virtual threads' (max, Σexp) pairs and their merge tree run in order in private arrays, then one
//   more pass keeps the K best log-probs in a sorted private list (insertion only when an element beats
//   the K-th; ties keep the lower index first). Loaded llvmpipe, 10 rows × 2048, k = 10: 0.46 → 0.29 ms;
//   slower below 8 rows (one invocation walks its row serially), where the op keeps the WG entry.
//   Placeholder {{KMAX}}: list length (the op passes 64 = TOPK_MAX).
// Placeholders: {{WG}}, {{CACHED}} (true | false), {{CACHE}} (elements of zc, ≥ N when CACHED, else 1).

struct Params { n: u32, m: u32, k: u32, t: f32 }

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out_ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out_vals: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = {{WG}}u;
const CACHED: bool = {{CACHED}};
const NONE: u32 = 0xffffffffu;
const NEG_MAX: f32 = -3.4028234663852886e38;

var<workgroup> red_m: array<f32, 256>;
var<workgroup> red_s: array<f32, 256>;
var<workgroup> red_i: array<u32, WG>;
var<workgroup> zc: array<f32, {{CACHE}}>;

// z = x / T of element i of the row at `base` (from the cache when CACHED).
fn z_at(base: u32, i: u32) -> f32 {
  if (CACHED) {
    return zc[i];
  }
  return x[base + i] / p.t;
}

// (v, i) ranks before (bv, bi): larger value, ties by lower index; NONE (no candidate) ranks last.
fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return i != NONE && (bi == NONE || v > bv || (v == bv && i < bi));
}

// Thread lid's best element ranking strictly below (pv, pi) (everything when pi == NONE), NaNs
// skipped; returns (value bits, index) with index NONE when there is none.
fn own_best(base: u32, lid: u32, lse: f32, pv: f32, pi: u32) -> vec2u {
  var bv = 0.0;
  var bi = NONE;
  for (var i = lid; i < p.n; i += WG) {
    let v = z_at(base, i) - lse;
    let below = pi == NONE || v < pv || (v == pv && i > pi);
    if (v == v && below && (bi == NONE || v > bv)) { // ascending i: a later i wins only when larger
      bv = v;
      bi = i;
    }
  }
  return vec2u(bitcast<u32>(bv), bi);
}

// softmax.wgsl's merge of partial (max, Σexp) pairs a ← a ⊕ b, same expression (same bits).
fn merge(a: u32, b: u32) {
  let m1 = red_m[a];
  let m2 = red_m[b];
  let mm = max(m1, m2);
  red_s[a] = red_s[a] * exp(m1 - mm) + red_s[b] * exp(m2 - mm);
  red_m[a] = mm;
}

@compute @workgroup_size(WG)
fn topk_log_softmax(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) lid: u32) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= p.m) {
    return;
  }
  let base = row * p.n;
  // 1. The row's only storage pass: online max / Σ exp per virtual thread (softmax.wgsl's order).
  for (var v = lid; v < 256u; v += WG) {
    var m = NEG_MAX;
    var s = 0.0;
    for (var i = v; i < p.n; i += 256u) {
      let z = x[base + i] / p.t;
      if (CACHED) {
        zc[i] = z;
      }
      if (z > m) {
        s = s * exp(m - z) + 1.0;
        m = z;
      } else {
        s += exp(z - m);
      }
    }
    red_m[v] = m;
    red_s[v] = s;
  }
  for (var h = 128u; h >= WG; h >>= 1u) { // levels within one real thread's virtual threads
    for (var v = lid; v < h; v += WG) {
      merge(v, v + h);
    }
  }
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) {
      merge(lid, lid + h);
    }
    workgroupBarrier();
  }
  let lse = red_m[0] + log(red_s[0]);
  workgroupBarrier(); // everyone has read slot 0 before red_m is reused for candidates

  // 2–3. K rounds over the per-thread candidates.
  var cand = own_best(base, lid, lse, 0.0, NONE);
  for (var j = 0u; j < p.k; j++) {
    red_m[lid] = bitcast<f32>(cand.x);
    red_i[lid] = cand.y;
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h >>= 1u) {
      if (lid < h && better(red_m[lid + h], red_i[lid + h], red_m[lid], red_i[lid])) {
        red_m[lid] = red_m[lid + h];
        red_i[lid] = red_i[lid + h];
      }
      workgroupBarrier();
    }
    let best = red_i[0];
    let bv = red_m[0];
    workgroupBarrier(); // slot 0 read by all before the next round writes it
    if (lid == 0u) {
      out_ids[row * p.k + j] = best;
      out_vals[row * p.k + j] = select(bv, bitcast<f32>(0x7fc00000u | (best & 0u)), best == NONE);
    }
    if (best != NONE && best % WG == lid) {
      cand = own_best(base, lid, lse, bv, best);
    }
  }
}

const KMAX: u32 = {{KMAX}}u;

@compute @workgroup_size(8)
fn topk_log_softmax_sw(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                       @builtin(local_invocation_index) lid: u32) {
  let row = (wg.y * nwg.x + wg.x) * 8u + lid;
  if (row >= p.m) {
    return;
  }
  let base = row * p.n;
  // 1. The 256 virtual threads of softmax.wgsl's row_stats, in order, then its merge tree.
  var pm: array<f32, 256>;
  var ps: array<f32, 256>;
  for (var v = 0u; v < 256u; v++) {
    var m = NEG_MAX;
    var s = 0.0;
    for (var i = v; i < p.n; i += 256u) {
      let z = x[base + i] / p.t;
      if (z > m) {
        s = s * exp(m - z) + 1.0;
        m = z;
      } else {
        s += exp(z - m);
      }
    }
    pm[v] = m;
    ps[v] = s;
  }
  for (var h = 128u; h > 0u; h >>= 1u) {
    for (var v = 0u; v < h; v++) {
      let m1 = pm[v];
      let m2 = pm[v + h];
      let mm = max(m1, m2);
      ps[v] = ps[v] * exp(m1 - mm) + ps[v + h] * exp(m2 - mm);
      pm[v] = mm;
    }
  }
  let lse = pm[0] + log(ps[0]);
  // 2. The K best log-probs, sorted descending, equal values by lower index (i ascends, so a later
  //    equal value goes after); NaNs are never kept.
  var bv: array<f32, KMAX>;
  var bi: array<u32, KMAX>;
  var cnt = 0u;
  for (var i = 0u; i < p.n; i++) {
    let v = x[base + i] / p.t - lse;
    // `v == v` is the NaN test (as in select.wgsl); `v != v` let NaNs through on llvmpipe.
    if (v == v && (cnt < p.k || v > bv[p.k - 1u])) {
      var j = min(cnt, p.k - 1u);
      while (j > 0u && v > bv[j - 1u]) {
        bv[j] = bv[j - 1u];
        bi[j] = bi[j - 1u];
        j--;
      }
      bv[j] = v;
      bi[j] = i;
      cnt = min(cnt + 1u, p.k);
    }
  }
  for (var j = 0u; j < p.k; j++) {
    if (j < cnt) {
      out_ids[row * p.k + j] = bi[j];
      out_vals[row * p.k + j] = bv[j];
    } else {
      out_ids[row * p.k + j] = NONE;
      out_vals[row * p.k + j] = bitcast<f32>(0x7fc00000u | (row & 0u));
    }
  }
}
