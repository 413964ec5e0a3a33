// Elementwise ops over flat f32 arrays. One thread per element; the grid is 2-D so that more than
// 65535 workgroups' worth of elements can be covered (index = (wg.y * nwg.x + wg.x) * 256 + lid).
//
// entry add:  out[i] = a[i] + b[i]             (residual add)           a, b, out: (n)

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i < p.n) {
    out[i] = a[i] + b[i];
  }
}
