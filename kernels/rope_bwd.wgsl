// Backward of rotate-half RoPE (kernels/rope.wgsl): each (x_i, x_{i+hd/2}) pair is rotated by an
// orthogonal 2×2 rotation, so the gradient is the same pair rotation by the negated angle. In place.
//
// entry rope_bwd: one thread per (token t, head h, pair i < hd/2) (index = (wg.y·nwg.x + wg.x)·256
//   + lid): (d1, d2) ← (d1·cos a + d2·sin a, d2·cos a − d1·sin a), a = pos · θ^(−2i/hd),
//   pos = positions[t] when p.use_pos != 0, else p.pos0 + t. Angle reduction as in rope.wgsl.
//   d: (T, nH·hd) f32   positions: (T) u32

struct Params {
  t: u32,          // tokens
  nh: u32,         // heads
  hd: u32,         // head dim (even)
  pos0: u32,       // position of token 0 when use_pos == 0
  use_pos: u32,    // 1: read positions[t]
  log2_theta: f32, // log2(rope theta)
}

@group(0) @binding(0) var<storage, read_write> d: array<f32>;
@group(0) @binding(1) var<storage, read_write> positions: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

const TWO_PI_HI: f32 = 6.28125;
const TWO_PI_LO: f32 = 0.0019353071795864769253;
const INV_TWO_PI: f32 = 0.15915494309189533577;

@compute @workgroup_size(256)
fn rope_bwd(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let idx = (wg.y * nwg.x + wg.x) * 256u + lid;
  let half = p.hd / 2u;
  let per_tok = p.nh * half;
  if (idx >= p.t * per_tok) {
    return;
  }
  let t = idx / per_tok;
  let r = idx - t * per_tok;
  let h = r / half;
  let i = r - h * half;
  var pos = p.pos0 + t;
  if (p.use_pos != 0u) {
    pos = positions[t];
  }
  let inv_freq = exp2(-(f32(2u * i) / f32(p.hd)) * p.log2_theta);
  let ang = f32(pos) * inv_freq;
  let k = round(ang * INV_TWO_PI);
  let a = (ang - k * TWO_PI_HI) - k * TWO_PI_LO;
  let c = cos(a);
  let s = sin(a);
  let o = t * p.nh * p.hd + h * p.hd + i;
  let d1 = d[o];
  let d2 = d[o + half];
  d[o] = d1 * c + d2 * s;
  d[o + half] = d2 * c - d1 * s;
}
