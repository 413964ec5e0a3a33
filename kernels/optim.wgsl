// Optimizer kernels for training, all on the GPU so that a step never waits on the CPU
// (docs/engine.md §2): the global gradient norm, torch-style clipping and AdamW.
//
// entry sumsq_partial: workgroup wg of NWG (= p.nwg) workgroups reduces Σ g² over the indices
//   wg·256 + lid + k·NWG·256 of g (length p.n) and writes partials[p.base + wg]. One dispatch per
//   gradient tensor, each into its own slice of partials, so nothing races and the order is fixed.
// entry sumsq_final: one workgroup sums partials[0 .. p.n) into out[0] (= ‖g‖², or += when
//   p.base != 0, i.e. accumulate). Deterministic.
// entry adamw: one thread per element (index = (wg.y·nwg.x + wg.x)·256 + lid), torch.optim.AdamW
//   (decoupled weight decay, bias correction), with the gradient first scaled by the clip
//   coefficient min(1, max_norm / (‖g‖ + 1e-6)) read from normsq[0] when p.use_clip != 0
//   (torch.nn.utils.clip_grad_norm_):
//     g ← g·clip;  θ ← θ·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
//     θ ← θ − (lr / bc1) · m / (√v / √bc2 + ε),   bc1 = 1 − β1^t, bc2 = 1 − β2^t (given).
//   theta, grad, m, v: (n) f32   normsq: (1) f32
// entry zero_fill: one thread per element (index as adamw), a0[i] = 0 for i < p.n (zeroing a
//   gradient in recording order, where a queue write would land before earlier recorded work).

struct Params {
  n: u32,
  base: u32,
  nwg: u32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  wd: f32,
  bc1: f32,
  sqrt_bc2: f32,
  max_norm: f32,
  use_clip: u32,
}

@group(0) @binding(0) var<storage, read_write> a0: array<f32>; // g | partials | theta
@group(0) @binding(1) var<storage, read_write> a1: array<f32>; // partials | out | grad
@group(0) @binding(2) var<storage, read_write> a2: array<f32>; // (unused) | (unused) | m
@group(0) @binding(3) var<storage, read_write> a3: array<f32>; // (unused) | (unused) | v
@group(0) @binding(4) var<storage, read_write> a4: array<f32>; // (unused) | (unused) | normsq
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> red: array<f32, 256>;

fn reduce(lid: u32) {
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red[lid] += red[lid + s];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(256)
fn sumsq_partial(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = wg.x * 256u + lid; i < p.n; i += p.nwg * 256u) {
    let g = a0[i];
    acc = fma(g, g, acc);
  }
  red[lid] = acc;
  reduce(lid);
  if (lid == 0u) {
    a1[p.base + wg.x] = red[0];
  }
}

@compute @workgroup_size(256)
fn sumsq_final(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = lid; i < p.n; i += 256u) {
    acc += a0[i];
  }
  red[lid] = acc;
  reduce(lid);
  if (lid == 0u) {
    if (p.base != 0u) {
      a1[0] += red[0];
    } else {
      a1[0] = red[0];
    }
  }
}

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= p.n) {
    return;
  }
  var clip = 1.0;
  if (p.use_clip != 0u) {
    clip = min(1.0, p.max_norm / (sqrt(a4[0]) + 1e-6));
  }
  let g = a1[i] * clip;
  let m = p.beta1 * a2[i] + (1.0 - p.beta1) * g;
  let v = p.beta2 * a3[i] + (1.0 - p.beta2) * g * g;
  a2[i] = m;
  a3[i] = v;
  let th = a0[i] * (1.0 - p.lr * p.wd);
  a0[i] = th - (p.lr / p.bc1) * m / (sqrt(v) / p.sqrt_bc2 + p.eps);
}

@compute @workgroup_size(256)
fn zero_fill(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i < p.n) {
    a0[i] = 0.0;
  }
}
