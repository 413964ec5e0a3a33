// Elementwise and data-movement kernels over flat f32 arrays. One thread per element; the grid is 2-D
// so that more than 65535 workgroups' worth of elements can be covered:
//   index = (wg.y * nwg.x + wg.x) * 256 + lid.
//
// entry add:       out[i] = a[i] + b[i]                                   a, b, out: (n)   (residual add)
// entry copy_rows: dst[dOff + r*dStride + c] = src[sOff + r*sStride + c] for r < rows, c < cols
//                  (2-D strided copy: pick the last row, gather hidden-state taps into a concat)
// All bindings are read_write: arenas pack several tensors into one buffer (see gpu/kernel.ts).

struct AddParams { n: u32 }
struct CopyParams { rows: u32, cols: u32, s_off: u32, s_stride: u32, d_off: u32, d_stride: u32 }

@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: AddParams;

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i < p.n) {
    out[i] = a[i] + b[i];
  }
}

@group(0) @binding(0) var<storage, read_write> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> cp: CopyParams;

@compute @workgroup_size(256)
fn copy_rows(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i < cp.rows * cp.cols) {
    let r = i / cp.cols;
    let c = i % cp.cols;
    dst[cp.d_off + r * cp.d_stride + c] = src[cp.s_off + r * cp.s_stride + c];
  }
}
