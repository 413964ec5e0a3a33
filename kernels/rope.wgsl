// Rotary position embedding (HF "rotate-half" layout) fused with the split of the QKV projection and
// the KV-cache write, so that one dispatch takes the fused projection output to attention-ready q and
// cache rows. The same entry point also serves plain in-place RoPE (nKv = 0, qkv = q = x).
//
// entry rope_qkv: one thread per (token t, head slot, rotation pair i < hd/2), head slots being
//   [nH query heads | nKv key heads | nKv value heads]:
//   - query head h:  q[t, h, i], q[t, h, i + hd/2]   = rotate(qkv[t, q-part, h, i / i + hd/2])
//   - key head g:    kc[cacheRow + t, g, i / i+hd/2] = rotate(qkv[t, k-part, g, ...])
//   - value head g:  vc[cacheRow + t, g, i / i+hd/2] = qkv[t, v-part, g, ...]          (exact copy)
//   rotate(x1, x2) = (x1·cos a − x2·sin a, x2·cos a + x1·sin a), a = pos · θ^(−2i/hd),
//   pos = (positions[t] when p.use_pos != 0, else p.pos0 + t) + (p.pos_meta ≥ 0 ? dyn_state[p.pos_meta] : 0);
//   the written cache row is cache_row + t + (p.row_meta ≥ 0 ? dyn_state[p.row_meta] : 0). The meta terms
//   let speculative decoding keep its committed length on the GPU.
//   qkv: (T, (nH + 2·nKv)·hd)   q: (T, nH·hd)   kc, vc: (S, nKv·hd)   positions: (T) u32
//   The angle is reduced to [−π, π] with a two-constant (Cody–Waite) 2π before cos/sin, whose
//   accuracy the GPU only guarantees on that range; inv_freq = exp2(−(2i/hd)·log2 θ), log2 θ given.
//   In-place use (q aliasing qkv) is safe: every thread reads and writes only its own pair.

struct Params {
  t: u32,          // tokens
  nh: u32,         // query heads
  nkv: u32,        // key/value heads (0 for plain RoPE)
  hd: u32,         // head dim (even)
  cache_row: u32,  // first cache row written
  pos0: u32,       // position of token 0 when use_pos == 0
  use_pos: u32,    // 1: read positions[t]
  log2_theta: f32, // log2(rope theta)
  row_meta: i32,   // index into meta added to cache_row, or −1
  pos_meta: i32,   // index into meta added to every position, or −1
}

@group(0) @binding(0) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(1) var<storage, read_write> positions: array<u32>;
@group(0) @binding(2) var<storage, read_write> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> kc: array<f32>;
@group(0) @binding(4) var<storage, read_write> vc: array<f32>;
@group(0) @binding(5) var<storage, read_write> dyn_state: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

const TWO_PI_HI: f32 = 6.28125;                  // 201/32: k · TWO_PI_HI is exact for k < 2^16
const TWO_PI_LO: f32 = 0.0019353071795864769253; // 2π − TWO_PI_HI
const INV_TWO_PI: f32 = 0.15915494309189533577;

@compute @workgroup_size(256)
fn rope_qkv(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let idx = (wg.y * nwg.x + wg.x) * 256u + lid;
  let half = p.hd / 2u;
  let slots = p.nh + 2u * p.nkv;
  let per_tok = slots * half;
  if (idx >= p.t * per_tok) {
    return;
  }
  let t = idx / per_tok;
  let r = idx - t * per_tok;
  let slot = r / half;
  let i = r - slot * half;
  let src = t * slots * p.hd + slot * p.hd + i; // qkv[t, slot, i]
  let x1 = qkv[src];
  let x2 = qkv[src + half];
  let kv_w = p.nkv * p.hd;
  var row0 = p.cache_row;
  if (p.row_meta >= 0) {
    row0 += dyn_state[u32(p.row_meta)];
  }
  if (slot >= p.nh + p.nkv) { // value head: copy
    let dst = (row0 + t) * kv_w + (slot - p.nh - p.nkv) * p.hd + i;
    vc[dst] = x1;
    vc[dst + half] = x2;
    return;
  }
  var pos = p.pos0 + t;
  if (p.use_pos != 0u) {
    pos = positions[t];
  }
  if (p.pos_meta >= 0) {
    pos += dyn_state[u32(p.pos_meta)];
  }
  let inv_freq = exp2(-(f32(2u * i) / f32(p.hd)) * p.log2_theta);
  let ang = f32(pos) * inv_freq;
  let k = round(ang * INV_TWO_PI);
  let a = (ang - k * TWO_PI_HI) - k * TWO_PI_LO;
  let c = cos(a);
  let s = sin(a);
  let y1 = x1 * c - x2 * s;
  let y2 = x2 * c + x1 * s;
  if (slot < p.nh) {
    let dst = t * p.nh * p.hd + slot * p.hd + i;
    q[dst] = y1;
    q[dst + half] = y2;
  } else {
    let dst = (row0 + t) * kv_w + (slot - p.nh) * p.hd + i;
    kc[dst] = y1;
    kc[dst + half] = y2;
  }
}
