// Backward of SwiGLU over the fused gate/up projection (kernels/activation.wgsl), for training.
// out = silu(g) · u with silu(g) = g·σ(g):
//   dg = dout · u · σ(g) · (1 + g · (1 − σ(g)))      du = dout · g · σ(g)
//
// entry swiglu_bwd: one thread per (row m, column i < I) (index = (wg.y·nwg.x + wg.x)·256 + lid);
//   reads gate_up[m, i], gate_up[m, I + i], dout[m, i] and writes d_gate_up[m, i] and
//   d_gate_up[m, I + i] — so d_gate_up may alias gate_up (each thread reads its pair before writing).
//   gate_up, d_gate_up: (M, 2I) rows [gate | up]   dout: (M, I)

struct Params { i: u32, n: u32 }

@group(0) @binding(0) var<storage, read_write> gate_up: array<f32>;
@group(0) @binding(1) var<storage, read_write> dout: array<f32>;
@group(0) @binding(2) var<storage, read_write> dgu: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn swiglu_bwd(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let idx = (wg.y * nwg.x + wg.x) * 256u + lid; // over M · I
  if (idx >= p.n) {
    return;
  }
  let m = idx / p.i;
  let c = idx - m * p.i;
  let gi = m * 2u * p.i + c;
  let g = gate_up[gi];
  let u = gate_up[gi + p.i];
  let dy = dout[idx];
  let sg = 1.0 / (1.0 + exp(-g));
  dgu[gi] = dy * u * sg * (1.0 + g * (1.0 - sg));
  dgu[gi + p.i] = dy * g * sg;
}
