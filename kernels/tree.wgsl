// EAGLE-3 draft-tree construction on the GPU, so a speculative cycle grows, re-ranks and assembles
// its draft tree without any CPU readback. The semantics (and tie rules) are those of
// packages/core/src/tree/tree_ref.ts; packages/core/src/tree/tree_ops.ts records these kernels.
//
// P trees per dispatch: one workgroup per tree (p = wg.x), every per-tree array at a per-tree stride
// (the layouts below are tree p's block; P = 1 is the single-tree layout the decoder uses, so decoding
// and GTO training share these kernels).
//
// All tree state lives in one u32 buffer `st` (f32 and i32 values stored as bit patterns), tree p's
// block at p·st_stride, with k = top-k, C = k + depth·k² candidates, N = tree nodes:
//   [0, k)            frontier cumulative score (f32)
//   [k, 2k)           frontier candidate index (u32)
//   [2k, 2k+C)        candidate cumulative score (f32)
//   [2k+C, 2k+2C)     candidate target token (u32)
//   [2k+2C, 2k+3C)    candidate parent candidate index (i32, −1 = root)
//   [2k+3C, 2k+3C+N)  node → candidate index (i32, −1 for the root)      (written by finalize)
//   [2k+3C+N, +N)     node cumulative score (f32, 0 for the root)         (written by finalize)
// Order everywhere: larger value first, equal values by lower index first. Scores are assumed
// finite and non-NaN (WGSL may assume no infinities).
//
// entry tree_level (one 256-thread workgroup per tree): level L's per-row top-k (ids (P·R, k) draft
//   ids, vals (P·R, k) log-probs; R = 1 at L = 0, else k; tree p's rows at p·R) → appends R·k
//   candidates at base = L == 0 ? 0 :
//   k + (L−1)·k² (score = val + frontier score of the row, token = id + d2t[id], parent = frontier
//   candidate of the row); selects the next frontier (L = 0: the k children in order; else the top-k of
//   the k² cumulative scores by rank counting, O(k²) per candidate with early exit at k); writes the
//   next draft step's inputs (tree p's rows at p·k): out_ids[p·k + r] = p·R + (row of this level's
//   draft output the node continues from) — a global row of the (P·R, H) draft output, so gather_rows
//   needs no tree index —, ftok[p·k + r] (target id) and the draft mask mask_next (P·k,
//   ceil(k·(L+1)/32)) = the parent's row of mask_prev (P·k, ceil(k·L/32)) plus bit k·L + r.
//
// entry tree_finalize (one 256-thread workgroup per tree): ranks every candidate (early exit at N−1)
//   to pick the top-(N−1), orders them by candidate index (node i = 1 + #{picked < c}), prepends the
//   root (root_src[root_index + p]); parent node = 1 + #{picked < parent candidate} (0 for the root's
//   children); ancestor-or-self bitset (N, ceil(N/32)) by walking the parent chain (stops when a
//   parent index is not below the current node); depth = ancestors; leaves = nodes nobody names as
//   parent, ranked by node index; retrieve (N−1, width) = root→leaf paths, −1 padded (rows past the
//   leaf count all −1); info = [numLeaves, maxDepth, N, C]. Tree p's outputs: tokens, parents,
//   depths (P, N); tmask (P·N, ceil(N/32)); retrieve (P·(N−1), width); info (P, 4).
//
// entry gather_rows (one thread per element): dst[r, c] = src[idx[idx_off + r], c] (NaN when the index ≥
//   src_rows) — input_hidden = out_hidden[out_ids] for the next draft step.
//
// All bindings are read_write: tensors share arena buffers (see packages/core/src/gpu/kernel.ts).

const NONE: u32 = 0xffffffffu;

fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return v > bv || (v == bv && i < bi);
}

// ---------------------------------------------------------------------------------------------
// tree_level

struct LevelParams { k: u32, level: u32, vd: u32, c: u32, st_stride: u32 }

@group(0) @binding(0) var<storage, read_write> top_ids: array<u32>;
@group(0) @binding(1) var<storage, read_write> top_vals: array<f32>;
@group(0) @binding(2) var<storage, read_write> d2t: array<i32>;
@group(0) @binding(3) var<storage, read_write> st: array<u32>;
@group(0) @binding(4) var<storage, read_write> ftok: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_ids: array<u32>;
@group(0) @binding(6) var<storage, read_write> mask_prev: array<u32>;
@group(0) @binding(7) var<storage, read_write> mask_next: array<u32>;
@group(0) @binding(8) var<uniform> lp: LevelParams;

var<workgroup> sel_idx: array<u32, 64>;
var<workgroup> sel_val: array<f32, 64>;

fn to_target(d: u32) -> u32 {
  if (d >= lp.vd) {
    return NONE;
  }
  return u32(i32(d) + d2t[d]);
}

// Cumulative score of child idx = r·k + j at level ≥ 1 (reads the current frontier); `tv` / `sb`:
// this tree's offsets into top_vals / st.
fn level_score(idx: u32, tv: u32, sb: u32) -> f32 {
  return top_vals[tv + idx] + bitcast<f32>(st[sb + idx / lp.k]);
}

@compute @workgroup_size(256)
fn tree_level(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let k = lp.k;
  let L = lp.level;
  let p = wg.x;
  let sb = p * lp.st_stride; // this tree's state block
  let c_score = sb + 2u * k;
  let c_tok = sb + 2u * k + lp.c;
  let c_par = sb + 2u * k + 2u * lp.c;
  var base = 0u;
  var count = k;
  var rows = 1u; // R: top-k rows per tree at this level
  if (L > 0u) {
    base = k + (L - 1u) * k * k;
    count = k * k;
    rows = k;
  }
  let tv = p * rows * k; // this tree's (R, k) block of top_ids / top_vals
  // Phase 1: append the candidates; at L ≥ 1 rank them against each other.
  for (var idx = lid; idx < count; idx += 256u) {
    var v = top_vals[tv + idx];
    var par = -1;
    if (L > 0u) {
      v = level_score(idx, tv, sb);
      par = i32(st[sb + k + idx / k]);
      var rank = 0u;
      for (var o = 0u; o < count && rank < k; o++) {
        if (better(level_score(o, tv, sb), o, v, idx)) {
          rank++;
        }
      }
      if (rank < k) {
        sel_idx[rank] = idx;
        sel_val[rank] = v;
      }
    }
    st[c_score + base + idx] = bitcast<u32>(v);
    st[c_tok + base + idx] = to_target(top_ids[tv + idx]);
    st[c_par + base + idx] = bitcast<u32>(par);
  }
  storageBarrier();
  workgroupBarrier();
  // Phase 2: the next frontier and the next draft step's inputs.
  if (lid < k) {
    let r = lid;
    var sidx = r;
    var sv = top_vals[tv + r];
    var row = 0u;
    if (L > 0u) {
      sidx = sel_idx[r];
      sv = sel_val[r];
      row = sidx / k;
    }
    st[sb + r] = bitcast<u32>(sv);
    st[sb + k + r] = base + sidx;
    out_ids[p * k + r] = p * rows + row;
    ftok[p * k + r] = to_target(top_ids[tv + sidx]);
    let prev_words = (k * L + 31u) / 32u;
    let next_words = (k * (L + 1u) + 31u) / 32u;
    let bit = k * L + r;
    for (var w = 0u; w < next_words; w++) {
      var word = 0u;
      if (w < prev_words) {
        word = mask_prev[(p * k + row) * prev_words + w];
      }
      if (w == bit / 32u) {
        word |= 1u << (bit % 32u);
      }
      mask_next[(p * k + r) * next_words + w] = word;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// tree_finalize

struct FinParams { k: u32, c: u32, n: u32, width: u32, root_index: u32, st_stride: u32 }

@group(0) @binding(0) var<storage, read_write> fst: array<u32>;
@group(0) @binding(1) var<storage, read_write> root_src: array<u32>;
@group(0) @binding(2) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> parents: array<i32>;
@group(0) @binding(4) var<storage, read_write> depths: array<i32>;
@group(0) @binding(5) var<storage, read_write> tmask: array<u32>;
@group(0) @binding(6) var<storage, read_write> retrieve: array<i32>;
@group(0) @binding(7) var<storage, read_write> info: array<u32>;
@group(0) @binding(8) var<uniform> fp: FinParams;

var<workgroup> picked: array<u32, 256>;   // picked candidates, in pick order (arbitrary)
var<workgroup> node_cand: array<u32, 256>;
var<workgroup> node_par: array<i32, 256>;
var<workgroup> node_depth: array<i32, 256>;
var<workgroup> node_leaf: array<u32, 256>;
var<workgroup> npicked: atomic<u32>;
var<workgroup> max_depth: atomic<u32>;

fn cand_score(sb: u32, c: u32) -> f32 {
  return bitcast<f32>(fst[sb + 2u * fp.k + c]);
}

@compute @workgroup_size(256)
fn tree_finalize(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let p = wg.x;
  let sb = p * fp.st_stride; // this tree's state block
  let n = fp.n;
  let m = n - 1u;
  let C = fp.c;
  let c_tok = sb + 2u * fp.k + C;
  let c_par = sb + 2u * fp.k + 2u * C;
  let n_cand = sb + 2u * fp.k + 3u * C;
  let n_score = n_cand + n;
  let nb = p * n; // this tree's rows of tokens / parents / depths
  let words = (n + 31u) / 32u;
  let rsize = m * fp.width;
  if (lid == 0u) {
    atomicStore(&npicked, 0u);
    atomicStore(&max_depth, 0u);
  }
  workgroupBarrier();
  // 1. Pick the top-(N−1) candidates by rank.
  for (var c = lid; c < C; c += 256u) {
    let v = cand_score(sb, c);
    var rank = 0u;
    for (var o = 0u; o < C && rank < m; o++) {
      if (better(cand_score(sb, o), o, v, c)) {
        rank++;
      }
    }
    if (rank < m) {
      let s = atomicAdd(&npicked, 1u);
      if (s < m) {
        picked[s] = c;
      }
    }
  }
  workgroupBarrier();
  // 2. Node order = candidate order.
  if (lid < m) {
    let c = picked[lid];
    var pos = 1u;
    for (var s = 0u; s < m; s++) {
      if (picked[s] < c) {
        pos++;
      }
    }
    node_cand[pos] = c;
  }
  workgroupBarrier();
  // 3. Tokens, parents (EAGLE's searchsorted), per-node candidate and score.
  if (lid < n) {
    var par = -1;
    var tok = root_src[fp.root_index + p];
    var cand = -1;
    var score = 0.0;
    if (lid > 0u) {
      let c = node_cand[lid];
      cand = i32(c);
      tok = fst[c_tok + c];
      score = cand_score(sb, c);
      let pc = bitcast<i32>(fst[c_par + c]);
      par = 0;
      if (pc >= 0) {
        par = 1;
        for (var s = 1u; s < n; s++) {
          if (i32(node_cand[s]) < pc) {
            par++;
          }
        }
      }
    }
    node_par[lid] = par;
    tokens[nb + lid] = tok;
    parents[nb + lid] = par;
    fst[n_cand + lid] = bitcast<u32>(cand);
    fst[n_score + lid] = bitcast<u32>(score);
  }
  workgroupBarrier();
  // 4. Ancestor-or-self mask rows, depths, leaf flags; retrieve filled with −1.
  for (var e = lid; e < rsize; e += 256u) {
    retrieve[p * rsize + e] = -1;
  }
  if (lid < n) {
    let i = lid;
    var bits = 0u;
    for (var w = 0u; w < words; w++) {
      var word = 0u;
      if (w == 0u) {
        word = 1u; // the root
      }
      var cur = i32(i);
      var guard = 0u;
      loop {
        if (u32(cur) / 32u == w) {
          word |= 1u << (u32(cur) % 32u);
        }
        let p = node_par[cur];
        if (p <= 0 || p >= cur || guard >= n) {
          break;
        }
        cur = p;
        guard++;
      }
      tmask[(nb + i) * words + w] = word;
      bits += countOneBits(word);
    }
    let d = i32(bits) - 1;
    node_depth[i] = d;
    depths[nb + i] = d;
    atomicMax(&max_depth, u32(d));
    var leaf = 1u;
    for (var j = 1u; j < n; j++) {
      if (node_par[j] == i32(i)) {
        leaf = 0u;
      }
    }
    node_leaf[i] = leaf;
  }
  storageBarrier();
  workgroupBarrier();
  // 5. Retrieve paths: leaf rank by node index, walk the parent chain depth + 1 steps.
  if (lid < n && node_leaf[lid] == 1u) {
    var row = 0u;
    for (var j = 0u; j < lid; j++) {
      row += node_leaf[j];
    }
    if (row < m) {
      var cid = i32(lid);
      for (var j = node_depth[lid]; j >= 0; j--) {
        if (u32(j) < fp.width) {
          retrieve[p * rsize + row * fp.width + u32(j)] = cid;
        }
        if (cid >= 0) {
          cid = node_par[cid];
        }
      }
    }
  }
  if (lid == 0u) {
    var leaves = 0u;
    for (var j = 0u; j < n; j++) {
      leaves += node_leaf[j];
    }
    info[4u * p] = leaves;
    info[4u * p + 1u] = atomicLoad(&max_depth);
    info[4u * p + 2u] = n;
    info[4u * p + 3u] = C;
  }
}

// ---------------------------------------------------------------------------------------------
// gather_rows

struct GatherParams { rows: u32, cols: u32, src_rows: u32, idx_off: u32 }

@group(0) @binding(0) var<storage, read_write> g_src: array<f32>;
@group(0) @binding(1) var<storage, read_write> g_idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> g_dst: array<f32>;
@group(0) @binding(3) var<uniform> gp: GatherParams;

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= gp.rows * gp.cols) {
    return;
  }
  let r = i / gp.cols;
  let c = i % gp.cols;
  let s = g_idx[gp.idx_off + r];
  if (s < gp.src_rows) {
    g_dst[i] = g_src[s * gp.cols + c];
  } else {
    g_dst[i] = bitcast<f32>(0x7fc00000u);
  }
}
