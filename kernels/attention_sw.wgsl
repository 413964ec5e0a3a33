// Attention for software adapters (llvmpipe): one invocation per (query t, kv head g) walks the
// visible keys once for all G = nh / nkv query heads of its group, with no workgroup memory and no
// barriers. Same bindings, parameters and masking modes 0–3 as attention.wgsl (entry `attention`),
// which remains the kernel for hardware GPUs and for the TTT mode.
//
// Why: llvmpipe runs 8 invocations per SIMD vector, turns every storage or workgroup-memory load into
// a per-lane scalar loop (~3 ns per vec4 per invocation, uniform address or not; Mesa 22.3) and every
// barrier into a coroutine switch per 8 invocations. attention.wgsl spends one 64-thread workgroup
// per (query, head) with two barriers per 64-key tile and reads each key row through workgroup memory
// per head; here each key and value row is loaded once per (query, kv group) and reused from registers
// by the G heads. Measured (docs/engine.md §7) on tiny's verification shape, Tq 60, 4 heads / 2 kv
// heads, hd 32, ~110 keys with a tree mask.
//
// entry attention_sw: invocation i = t·nkv + g (8 per workgroup, grid ceil(Tq·nkv / 8) along x).
//   q, out: (Tq, nh·hd) as vec4 (out may alias q: an invocation reads its q rows before writing the
//   same rows, and no other invocation touches them); kc, vc: (S, nkv·hd) as vec4, rows [0, kv_len)
//   valid; mask: (Tq, mask_words) u32; kv_len = p.kv_len + (p.kv_meta ≥ 0 ? dyn_state[p.kv_meta] : 0).
//   use_mask 0: causal, query t sees keys j ≤ kv_len − Tq + t; 1: bit j of mask row t; 2: prefix +
//   tree, every key before prefix = kv_len − tree_len, tree key j iff bit (j − prefix) of row t;
//   3: segmented (GTO: many trees per dispatch), query t of group g = t / q_per_group sees keys
//   [0, pre = min(dyn_state[kv_meta + g], tree_base)) and tree key jt < tree_len iff bit jt of its
//   row, at physical row tree_base + (jt / blk)·blk_stride + g·blk + jt % blk (as attention.wgsl).
//   Online softmax per head in registers (running max, sum, D4 vec4 accumulator), the q rows scaled
//   once. A query with no visible key writes zeros.
//   Specialised by {{D4}} (head dim / 4) and {{G}} (query heads per kv head); the per-head registers
//   are unrolled into named variables by the op (ops/attention.ts `attentionSwCode`): llvmpipe keeps
//   runtime-indexed private arrays in memory and loads them lane by lane like storage (an array
//   version ran ~5× slower at Tq 10).

struct Params {
  tq: u32,
  nh: u32,
  nkv: u32,
  kv_len: u32,
  scale: f32,
  use_mask: u32,
  mask_words: u32,
  kv_meta: i32,
  tree_len: u32,
  q_per_group: u32, // use_mask 3: queries per group
  tree_base: u32,   // use_mask 3: physical row of tree key 0 of group 0
  blk: u32,         // use_mask 3: tree keys per block per group
  blk_stride: u32,  // use_mask 3: rows between consecutive blocks
}

@group(0) @binding(0) var<storage, read_write> q: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> kc: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> vc: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> dyn_state: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

const D4: u32 = {{D4}}u;
const G: u32 = {{G}}u;
const NEG: f32 = -1.0e30;

@compute @workgroup_size(8)
fn attention_sw(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.tq * p.nkv) {
    return;
  }
  let t = i / p.nkv;
  let g = i % p.nkv;
  var kv_len = p.kv_len;
  var grp = 0u;
  var prefix = 0u; // use_mask 2, 3: keys before the tree keys (virtual index in mode 3)
  if (p.use_mask == 3u) {
    grp = t / p.q_per_group;
    prefix = min(dyn_state[u32(p.kv_meta) + grp], p.tree_base);
    kv_len = prefix + p.tree_len;
  } else {
    if (p.kv_meta >= 0) {
      kv_len += dyn_state[u32(p.kv_meta)];
    }
    prefix = kv_len - p.tree_len;
  }
  var kend = kv_len;
  if (p.use_mask == 0u) {
    kend = kv_len + t + 1u - p.tq;
  }
  // per head hh: scaled q (q{hh}_{d}), accumulator (a{hh}_{d}), running max m{hh} and sum l{hh}
{{Q_INIT}}
  let row4 = p.nkv * D4;
  let koff = g * D4;
  var word = 0u;
  for (var j = 0u; j < kend; j++) {
    if (p.use_mask == 1u) {
      if ((j & 31u) == 0u) {
        word = mask[t * p.mask_words + (j >> 5u)];
      }
      if (((word >> (j & 31u)) & 1u) == 0u) {
        continue;
      }
    } else if ((p.use_mask == 2u || p.use_mask == 3u) && j >= prefix) {
      let jt = j - prefix;
      if ((jt & 31u) == 0u) {
        word = mask[t * p.mask_words + (jt >> 5u)];
      }
      if (((word >> (jt & 31u)) & 1u) == 0u) {
        continue;
      }
    }
    var row = j;
    if (p.use_mask == 3u && j >= prefix) {
      let jt = j - prefix;
      row = p.tree_base + (jt / p.blk) * p.blk_stride + grp * p.blk + jt % p.blk;
    }
    let kb = row * row4 + koff;
    // k{d}, v{d}: the key and value row, loaded once for the G heads
{{KV_LOAD}}
{{HEAD_UPDATE}}
  }
{{OUT_STORE}}
}
