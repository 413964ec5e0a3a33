// Scaled-dot-product attention over a KV cache with grouped-query heads, causal or bitset masks.
// Written for decode and tree verification (Tq = 1..64 queries against hundreds to thousands of
// cached keys), flash-decoding style inside one workgroup, so a whole layer's attention is one
// dispatch and scores never touch global memory.
//
// entry attention: one workgroup of WG threads per (query head h = wg.x, query t = wg.y).
//   Keys are processed in tiles of WG keys:
//   1. scores: thread i computes s_j = (q·scale)·k_j for key j = j0 + i (q staged in workgroup
//      memory as D4 vec4s; k read as vec4s) or a sentinel for masked / out-of-range keys, into sc[i];
//   2. values: thread (kg = i / D4, d4 = i % D4) owns output dims [4·d4, 4·d4 + 4) for key group
//      kg (keys j0 + kg, j0 + kg + NKG, …) and keeps an online softmax in registers — running max
//      m, sum l, vec4 accumulator — rescaled once per tile by exp(m_old − m_new). 2 barriers/tile.
//   At the end the NKG partial (m, l, acc) triples are combined through workgroup memory.
//   Step 2 and the combine are attention_online.wgsl (included by kernels/mod.ts `linkWgsl`, shared
//   with attention_rope.wgsl and attention_split.wgsl); this file supplies the scores and `tile_value`.
//   A query with no visible key writes zeros. Only rows [0, kv_len) of the caches are read.
//   q, out: (Tq, nH·hd) as vec4   kc, vc: (S, nKv·hd) as vec4   mask: (Tq, mask_words) u32
//   kv_len = p.kv_len + (p.kv_meta ≥ 0 ? dyn_state[p.kv_meta] : 0): the valid length may live on the GPU
//   (speculative decoding keeps the committed length in a state buffer, so no CPU round trip).
//   Masking: p.use_mask == 0 → causal, query t sees keys j ≤ kv_len − Tq + t;
//            p.use_mask == 1 → bit (j & 31) of mask[t·mask_words + j/32] says whether t sees key j;
//            p.use_mask == 2 → prefix + tree: the last p.tree_len keys are tree nodes; every query
//            sees all keys j < prefix = kv_len − tree_len, and tree key j ≥ prefix iff bit (j − prefix)
//            of its mask row (mask_words = ceil(tree_len / 32)) is set. The mask does not depend on
//            the prefix length, so it can be built once per tree on the GPU;
//            p.use_mask == 3 → segmented (many trees per dispatch, GTO training): query t belongs to
//            group g = t / q_per_group, whose prefix length is pre = min(dyn_state[kv_meta + g],
//            tree_base); it sees keys [0, pre) and its tree key jt < tree_len iff bit jt of its mask
//            row is set, tree key jt living at physical row tree_base + (jt / blk)·blk_stride + g·blk +
//            jt % blk (blocks of blk keys per group, e.g. one block per draft expansion). The key loop
//            runs over the virtual index [0, pre + tree_len), so a query scans only the keys it can
//            see (its own prefix plus its own tree), never the other groups'. p.kv_len is unused;
//            p.use_mask == 4 → training-time test (EAGLE-3 TTT, train/ttt.ts): the Tq = B·S queries of
//            one unrolled step are B sequences of S = p.q_per_group; query t = b·S + u sees the causal
//            keys of its own sequence, rows b·S .. t, and row j·p.blk_stride + t of each earlier step
//            j = 1..p.tree_len (its own position's key). The loop runs over the virtual index
//            [0, u + 1 + tree_len) of exactly those keys (no mask is read), instead of a bitset over
//            all tree_len·blk_stride + Tq rows.
//   Specialised by {{WG}} (threads = keys per tile, 128 or 256) and {{D4}} (head dim / 4, ≤ 32).
//   `out` may alias `q`: a workgroup reads its q row before it writes the same row, and no other.

struct Params {
  tq: u32,         // queries
  nh: u32,         // query heads
  nkv: u32,        // key/value heads (divides nh)
  kv_len: u32,     // valid cache rows
  scale: f32,      // logit scale
  use_mask: u32,   // 0: causal; 1: bitset mask
  mask_words: u32, // u32 words per mask row
  kv_meta: i32,    // index into meta added to kv_len, or −1
  tree_len: u32,   // use_mask == 2: number of tree keys at the end of the valid rows; 3: per group;
                   // 4: earlier unrolled steps
  q_per_group: u32, // use_mask == 3: queries per group; 4: tokens per sequence
  tree_base: u32,   // use_mask == 3: physical row of tree key 0 of group 0
  blk: u32,         // use_mask == 3: tree keys per block per group
  blk_stride: u32,  // use_mask == 3: rows between consecutive blocks; 4: rows between steps' keys
}

@group(0) @binding(0) var<storage, read_write> q: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> kc: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> vc: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> dyn_state: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

const WG: u32 = {{WG}}u;
const D4: u32 = {{D4}}u;

var<workgroup> qs: array<vec4f, D4>; // q · scale
// NKG, NEG, VISIBLE, the tile scores `sc` and the online softmax:
// #include attention_online.wgsl

// Physical cache row of virtual key v of query t (identity except in modes 3 and 4).
fn key_row(v: u32, pre: u32, grp: u32, t: u32) -> u32 {
  if (p.use_mask == 4u) {
    if (v < pre) {
      return grp * p.q_per_group + v;
    }
    return (v - pre + 1u) * p.blk_stride + t;
  }
  if (p.use_mask != 3u || v < pre) {
    return v;
  }
  let jt = v - pre;
  return p.tree_base + (jt / p.blk) * p.blk_stride + grp * p.blk + jt % p.blk;
}

// attention_online.wgsl's value source: virtual key v of query t, kv head at vec4 koff of a row.
struct ValueSrc {
  pre: u32,
  grp: u32,
  t: u32,
  row4: u32, // vec4s per cache row
  koff: u32,
}

fn tile_value(src: ValueSrc, v: u32, d4: u32) -> vec4f {
  return vc[key_row(v, src.pre, src.grp, src.t) * src.row4 + src.koff + d4];
}

@compute @workgroup_size(WG)
fn attention(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let t = wg.y;
  let g = h / (p.nh / p.nkv);
  let qrow = (t * p.nh + h) * D4;
  if (lid < D4) {
    qs[lid] = q[qrow + lid] * p.scale;
  }
  var kv_len = p.kv_len;
  var grp = 0u;
  var prefix = 0u; // use_mask == 2, 3: keys before the tree keys (virtual index)
  if (p.use_mask == 3u) {
    grp = t / p.q_per_group;
    prefix = min(dyn_state[u32(p.kv_meta) + grp], p.tree_base);
    kv_len = prefix + p.tree_len;
  } else if (p.use_mask == 4u) {
    grp = t / p.q_per_group;
    prefix = t - grp * p.q_per_group + 1u;
    kv_len = prefix + p.tree_len;
  } else {
    if (p.kv_meta >= 0) {
      kv_len += dyn_state[u32(p.kv_meta)];
    }
    prefix = kv_len - p.tree_len;
  }
  var kend = kv_len; // keys [0, kend) may be visible (virtual index in mode 3)
  if (p.use_mask == 0u) {
    kend = kv_len - p.tq + t + 1u;
  }
  let row4 = p.nkv * D4; // vec4s per cache row
  let koff = g * D4;
  let src = ValueSrc(prefix, grp, t, row4, koff);
  var st = online_init();
  workgroupBarrier();
  for (var j0 = 0u; j0 < kend; j0 += WG) {
    // 1. scores of keys j0 .. j0 + WG
    let j = j0 + lid;
    var s = NEG;
    if (j < kend) {
      var vis = true;
      if (p.use_mask == 1u) {
        vis = ((mask[t * p.mask_words + (j >> 5u)] >> (j & 31u)) & 1u) != 0u;
      } else if ((p.use_mask == 2u || p.use_mask == 3u) && j >= prefix) {
        let jt = j - prefix;
        vis = ((mask[t * p.mask_words + (jt >> 5u)] >> (jt & 31u)) & 1u) != 0u;
      }
      if (vis) {
        let kb = key_row(j, prefix, grp, t) * row4 + koff;
        var dot4 = vec4f(0.0);
        for (var d = 0u; d < D4; d++) {
          dot4 = fma(qs[d], kc[kb + d], dot4);
        }
        s = (dot4.x + dot4.y) + (dot4.z + dot4.w);
      }
    }
    sc[lid] = s;
    workgroupBarrier();
    // 2. online softmax · V over this thread's key group and vec4 of the head dim
    st = online_tile(st, src, j0, min(WG, kend - j0), lid);
    workgroupBarrier();
  }
  // combine the NKG key groups
  online_publish(st, lid);
  workgroupBarrier();
  if (lid < D4) {
    out[qrow + lid] = online_out(online_merged(lid));
  }
}
