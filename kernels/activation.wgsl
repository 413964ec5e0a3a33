// Activations. SwiGLU reads the fused gate/up projection so the MLP needs one matmul for both
// halves and one dispatch for the activation (docs/engine.md §2: few dispatches per layer).
//
// entry swiglu: one thread per output element; the 2-D grid addresses more than 65535 workgroups
//   (index = (wg.y * nwg.x + wg.x) * 256 + lid).
//   gate_up: (M, 2I) rows laid out [gate(I) | up(I)];  out: (M, I) = silu(gate) * up,
//   silu(g) = g / (1 + exp(-g)) (exp(-g) = inf for very negative g gives -0, the correct limit).

struct Params { i: u32, n: u32 }

@group(0) @binding(0) var<storage, read_write> gate_up: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn swiglu(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let idx = (wg.y * nwg.x + wg.x) * 256u + lid; // over M * I
  if (idx >= p.n) {
    return;
  }
  let m = idx / p.i;
  let c = idx - m * p.i;
  let g = gate_up[m * 2u * p.i + c];
  let u = gate_up[m * 2u * p.i + p.i + c];
  out[idx] = g / (1.0 + exp(-g)) * u;
}
