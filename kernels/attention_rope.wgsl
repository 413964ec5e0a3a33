// Attention fused with RoPE and the KV-cache write, for a few new tokens (decode, small trees):
// takes the fused QKV projection output straight to the attention output, so a decoder layer needs
// no separate `rope_qkv` dispatch (5 dispatches per layer instead of 6 for T ≤ 8 tokens).
//
// entry attention_rope: one workgroup of WG threads per (query head h = wg.x, new token t = wg.y),
//   the same tile loop as attention.wgsl (scores of WG keys into workgroup memory, then an online
//   softmax · V per key group and vec4 of the head dim, key groups merged at the end; the softmax part
//   is attention_online.wgsl, the very code attention.wgsl includes), with:
//   - q: head h of token t of qkv, rotated in registers exactly as rope.wgsl rotates it (same
//     expressions, so the same bits), times the scale;
//   - the T new keys of kv head g (tokens 0..T−1, cache rows row0 + t′ with row0 = cache_row +
//     dyn_state[row_meta]) rotated into workgroup memory (`kn`) at the start, and read from there
//     instead of the cache; their values read from the V part of qkv;
//   - the cache write: the workgroup of the first query head of kv group g (h % (nH / nKv) == 0)
//     writes token t's rotated key and its value to cache row row0 + t. No workgroup of this
//     dispatch reads those rows from the cache, so no ordering between workgroups is needed.
//   Positions: pos(t′) = (use_pos ? positions[t′] : pos0 + t′) + dyn_state[pos_meta] (meta ≥ 0).
//   Masks: use_mask 0 causal (query t sees keys j ≤ kv_len − T + t), 2 prefix + tree (the last
//   tree_len keys are tree nodes, bit j − prefix of the query's mask row), kv_len = p.kv_len +
//   dyn_state[kv_meta]. Keys j in [row0, row0 + T) are the new ones; the caller keeps them inside
//   [0, kv_len). Results equal rope_qkv followed by attention bit for bit (same WG).
//   qkv: (T, (nH + 2·nKv)·hd) as vec4   positions: (T) u32   kc, vc: (S, nKv·hd) as vec4
//   mask: (T, mask_words) u32   out: (T, nH·hd) as vec4 (must not alias qkv)
// Specialised by {{WG}} (threads = keys per tile), {{D4}} (head dim / 4, even) and {{TMAX}} (most new
// tokens: rows of `kn`).

struct Params {
  tq: u32,         // new tokens T (queries)
  nh: u32,         // query heads
  nkv: u32,        // key/value heads
  kv_len: u32,     // valid cache rows after the write (static part)
  scale: f32,      // logit scale
  use_mask: u32,   // 0 causal, 2 prefix + tree
  mask_words: u32, // u32 words per mask row
  kv_meta: i32,    // index into dyn_state added to kv_len, or −1
  tree_len: u32,   // use_mask == 2: tree keys at the end of the valid rows
  cache_row: u32,  // cache row of new token 0 (static part)
  row_meta: i32,   // index into dyn_state added to cache_row, or −1
  pos0: u32,       // position of token 0 when use_pos == 0
  use_pos: u32,    // 1: positions[t]
  pos_meta: i32,   // index into dyn_state added to every position, or −1
  log2_theta: f32, // log2(rope theta)
}

@group(0) @binding(0) var<storage, read_write> qkv: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> kc: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> vc: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> dyn_state: array<u32>;
@group(0) @binding(6) var<storage, read_write> positions: array<u32>;
@group(0) @binding(7) var<uniform> p: Params;

const WG: u32 = {{WG}}u;
const D4: u32 = {{D4}}u;
const TMAX: u32 = {{TMAX}}u;
const TWO_PI_HI: f32 = 6.28125;
const TWO_PI_LO: f32 = 0.0019353071795864769253;
const INV_TWO_PI: f32 = 0.15915494309189533577;

var<workgroup> qs: array<vec4f, D4>;
// NKG, NEG, VISIBLE, the tile scores `sc` and the online softmax:
// #include attention_online.wgsl
var<workgroup> kn: array<vec4f, TMAX * D4>; // rotated new keys of this kv head, (T, D4)

fn position(t: u32) -> u32 {
  var pos = p.pos0 + t;
  if (p.use_pos != 0u) {
    pos = positions[t];
  }
  if (p.pos_meta >= 0) {
    pos += dyn_state[u32(p.pos_meta)];
  }
  return pos;
}

// rope.wgsl's rotation of pair i at position pos: (cos a, sin a), same expressions.
fn cos_sin(pos: u32, i: u32) -> vec2f {
  let hd = D4 * 4u;
  let inv_freq = exp2(-(f32(2u * i) / f32(hd)) * p.log2_theta);
  let ang = f32(pos) * inv_freq;
  let k = round(ang * INV_TWO_PI);
  let a = (ang - k * TWO_PI_HI) - k * TWO_PI_LO;
  return vec2f(cos(a), sin(a));
}

// Rotated vec4 d4 of the head starting at vec4 `head4` of qkv (rotate-half layout, D4 even), at
// position pos: rope.wgsl's y1 = x1·c − x2·s (first half) and y2 = x2·c + x1·s (second half).
fn rotated(head4: u32, d4: u32, pos: u32) -> vec4f {
  let half4 = D4 / 2u;
  let x = qkv[head4 + d4];
  if (d4 < half4) {
    let y = qkv[head4 + d4 + half4];
    let i = d4 * 4u;
    let c0 = cos_sin(pos, i);
    let c1 = cos_sin(pos, i + 1u);
    let c2 = cos_sin(pos, i + 2u);
    let c3 = cos_sin(pos, i + 3u);
    return vec4f(x.x * c0.x - y.x * c0.y, x.y * c1.x - y.y * c1.y, x.z * c2.x - y.z * c2.y,
                 x.w * c3.x - y.w * c3.y);
  }
  let y = qkv[head4 + d4 - half4];
  let i = (d4 - half4) * 4u;
  let c0 = cos_sin(pos, i);
  let c1 = cos_sin(pos, i + 1u);
  let c2 = cos_sin(pos, i + 2u);
  let c3 = cos_sin(pos, i + 3u);
  return vec4f(x.x * c0.x + y.x * c0.y, x.y * c1.x + y.y * c1.y, x.z * c2.x + y.z * c2.y,
               x.w * c3.x + y.w * c3.y);
}

// attention_online.wgsl's value source: key j is a new key (value in qkv) iff j ∈ [row0, row0 + T).
struct ValueSrc {
  row0: u32,
  slots4: u32, // vec4s per qkv row
  vnew: u32,   // vec4 offset of the kv head's value in a qkv row
  row4: u32,   // vec4s per cache row
  koff: u32,
}

fn tile_value(src: ValueSrc, j: u32, d4: u32) -> vec4f {
  if (j < src.row0 || j >= src.row0 + p.tq) {
    return vc[j * src.row4 + src.koff + d4];
  }
  return qkv[(j - src.row0) * src.slots4 + src.vnew + d4];
}

@compute @workgroup_size(WG)
fn attention_rope(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let t = wg.y;
  let per_group = p.nh / p.nkv;
  let g = h / per_group;
  let slots4 = (p.nh + 2u * p.nkv) * D4; // vec4s per qkv row
  let row4 = p.nkv * D4;                 // vec4s per cache row
  let koff = g * D4;
  var row0 = p.cache_row;
  if (p.row_meta >= 0) {
    row0 += dyn_state[u32(p.row_meta)];
  }
  if (lid < D4) {
    qs[lid] = rotated(t * slots4 + h * D4, lid, position(t)) * p.scale;
  }
  for (var e = lid; e < p.tq * D4; e += WG) {
    let tt = e / D4;
    kn[e] = rotated(tt * slots4 + (p.nh + g) * D4, e % D4, position(tt));
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
  let vnew = (p.nh + p.nkv + g) * D4; // vec4 offset of kv head g's value in a qkv row
  let src = ValueSrc(row0, slots4, vnew, row4, koff);
  var st = online_init();
  workgroupBarrier();
  if (h % per_group == 0u && lid < D4) { // cache write of token t, kv head g
    let dst = (row0 + t) * row4 + koff + lid;
    kc[dst] = kn[t * D4 + lid];
    vc[dst] = qkv[t * slots4 + vnew + lid];
  }
  for (var j0 = 0u; j0 < kend; j0 += WG) {
    let j = j0 + lid;
    var s = NEG;
    if (j < kend) {
      var vis = true;
      if (p.use_mask == 2u && j >= prefix) {
        let jt = j - prefix;
        vis = ((mask[t * p.mask_words + (jt >> 5u)] >> (jt & 31u)) & 1u) != 0u;
      }
      if (vis) {
        var dot4 = vec4f(0.0);
        if (j < row0 || j >= row0 + p.tq) {
          let kb = j * row4 + koff;
          for (var d = 0u; d < D4; d++) {
            dot4 = fma(qs[d], kc[kb + d], dot4);
          }
        }
        s = (dot4.x + dot4.y) + (dot4.z + dot4.w);
      }
    }
    if (j < kend && j >= row0 && j < row0 + p.tq && s > VISIBLE) { // a new key: from kn
      let kb = (j - row0) * D4;
      var dot4 = vec4f(0.0);
      for (var d = 0u; d < D4; d++) {
        dot4 = fma(qs[d], kn[kb + d], dot4);
      }
      s = (dot4.x + dot4.y) + (dot4.z + dot4.w);
    }
    sc[lid] = s;
    workgroupBarrier();
    st = online_tile(st, src, j0, min(WG, kend - j0), lid);
    workgroupBarrier();
  }
  online_publish(st, lid);
  workgroupBarrier();
  if (lid < D4) {
    out[(t * p.nh + h) * D4 + lid] = online_out(online_merged(lid));
  }
}
