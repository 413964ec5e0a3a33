// Split-K ("flash-decoding") attention for a few queries over a long KV cache: the keys of each
// (query, head) are cut into SPLITS ranges processed by separate workgroups, and a second pass merges
// the partial softmax states. attention.wgsl runs one workgroup per (query, head), so a decode step
// (Tq = 1) keeps only nH workgroups busy however long the cache is; a GPU with 100+ compute units
// then idles, and a software adapter with more threads than heads does too.
//
// entry attn_split: one workgroup of WG threads per (head h = wg.x, query t = wg.y, split z = wg.z).
//   The visible key range [0, kend) (same masks and GPU-resident length as attention.wgsl modes
//   0 causal, 1 bitset, 2 prefix + tree) is cut into SPLITS chunks of ceil(kend / SPLITS) keys, so
//   the split sizes follow a dynamic length. Within its chunk a workgroup runs attention.wgsl's tile
//   loop (scores of WG keys into workgroup memory, then an online softmax · V per key group and
//   vec4 of the head dim, attention_online.wgsl as in attention.wgsl) and merges its key groups;
//   it writes the unnormalised partial state
//   (running max m, sum l, accumulator acc (hd)) to part[(t, h, z)] = D4 vec4s of acc then
//   vec4(m, l, 0, 0). An empty chunk writes m = NEG, l = 0, acc = 0.
// entry attn_merge: one workgroup of D4 threads per (head, query): with M = max_z m_z,
//   out = Σ_z acc_z·exp(m_z − M) / Σ_z l_z·exp(m_z − M) (zeros when no key is visible).
//   q, out: (Tq, nH·hd) as vec4   kc, vc: (S, nKv·hd) as vec4   mask: (Tq, mask_words) u32
//   part: (Tq, nH, SPLITS, D4 + 1) vec4. `out` may alias `q` (q is only read by attn_split).
// Specialised by {{WG}} (threads = keys per tile), {{D4}} (head dim / 4, ≤ 32 and ≤ WG).

struct Params {
  tq: u32,         // queries
  nh: u32,         // query heads
  nkv: u32,        // key/value heads (divides nh)
  kv_len: u32,     // valid cache rows (static part)
  scale: f32,      // logit scale
  use_mask: u32,   // 0: causal; 1: bitset; 2: prefix + tree
  mask_words: u32, // u32 words per mask row
  kv_meta: i32,    // index into dyn_state added to kv_len, or −1
  tree_len: u32,   // use_mask == 2: tree keys at the end of the valid rows
  splits: u32,     // key ranges per (query, head) = workgroups along z
}

@group(0) @binding(0) var<storage, read_write> q: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> kc: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> vc: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> part: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> dyn_state: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;
@group(0) @binding(0) var<storage, read_write> mpart: array<vec4f>; // attn_merge
@group(0) @binding(1) var<storage, read_write> out: array<vec4f>;   // attn_merge
@group(0) @binding(2) var<uniform> mp: Params;                     // attn_merge

const WG: u32 = {{WG}}u;
const D4: u32 = {{D4}}u;

var<workgroup> qs: array<vec4f, D4>;
// NKG, NEG, VISIBLE, the tile scores `sc` and the online softmax:
// #include attention_online.wgsl

// attention_online.wgsl's value source: the kv head at vec4 koff of a cache row.
struct ValueSrc {
  row4: u32, // vec4s per cache row
  koff: u32,
}

fn tile_value(src: ValueSrc, j: u32, d4: u32) -> vec4f {
  return vc[j * src.row4 + src.koff + d4];
}

@compute @workgroup_size(WG)
fn attn_split(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let t = wg.y;
  let z = wg.z;
  let g = h / (p.nh / p.nkv);
  let qrow = (t * p.nh + h) * D4;
  if (lid < D4) {
    qs[lid] = q[qrow + lid] * p.scale;
  }
  var kv_len = p.kv_len;
  if (p.kv_meta >= 0) {
    kv_len += dyn_state[u32(p.kv_meta)];
  }
  let prefix = kv_len - p.tree_len;
  var kend = kv_len;
  if (p.use_mask == 0u) {
    kend = kv_len - p.tq + t + 1u;
  }
  let chunk = (kend + p.splits - 1u) / p.splits;
  let k0 = min(z * chunk, kend);
  let k1 = min(k0 + chunk, kend);
  let row4 = p.nkv * D4;
  let koff = g * D4;
  let src = ValueSrc(row4, koff);
  var st = online_init();
  workgroupBarrier();
  for (var j0 = k0; j0 < k1; j0 += WG) {
    let j = j0 + lid;
    var s = NEG;
    if (j < k1) {
      var vis = true;
      if (p.use_mask == 1u) {
        vis = ((mask[t * p.mask_words + (j >> 5u)] >> (j & 31u)) & 1u) != 0u;
      } else if (p.use_mask == 2u && j >= prefix) {
        let jt = j - prefix;
        vis = ((mask[t * p.mask_words + (jt >> 5u)] >> (jt & 31u)) & 1u) != 0u;
      }
      if (vis) {
        let kb = j * row4 + koff;
        var dot4 = vec4f(0.0);
        for (var d = 0u; d < D4; d++) {
          dot4 = fma(qs[d], kc[kb + d], dot4);
        }
        s = (dot4.x + dot4.y) + (dot4.z + dot4.w);
      }
    }
    sc[lid] = s;
    workgroupBarrier();
    st = online_tile(st, src, j0, min(WG, k1 - j0), lid);
    workgroupBarrier();
  }
  online_publish(st, lid);
  workgroupBarrier();
  if (lid < D4) {
    let r = online_merged(lid);
    let base = ((t * p.nh + h) * p.splits + z) * (D4 + 1u);
    part[base + lid] = r.acc;
    if (lid == 0u) {
      part[base + D4] = vec4f(r.m, r.l, 0.0, 0.0);
    }
  }
}

@compute @workgroup_size(D4)
fn attn_merge(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let t = wg.y;
  let base = (t * mp.nh + h) * mp.splits * (D4 + 1u);
  var mx = NEG;
  for (var z = 0u; z < mp.splits; z++) {
    mx = max(mx, mpart[base + z * (D4 + 1u) + D4].x);
  }
  var den = 0.0;
  var num = vec4f(0.0);
  for (var z = 0u; z < mp.splits; z++) {
    let b = base + z * (D4 + 1u);
    let ml = mpart[b + D4];
    let w = exp(ml.x - mx);
    den += ml.y * w;
    num += mpart[b + lid] * w;
  }
  out[(t * mp.nh + h) * D4 + lid] = online_out(Online(mx, den, num));
}
