// Bindings and bounds-checked loaders shared by the linear kernels (matmul.wgsl, matvec.wgsl), for
// K a multiple of 4: x and w are read as vec4 along K, so every weight byte moves in 16-byte (f32) or
// 8-byte (f16) loads. The op prepends this file (or linear_io_scalar.wgsl when K % 4 != 0) to the
// kernel body; both files define the same functions, so the bodies never see the storage types.
//
// bindings: 0 x (M, K) f32 · 1 w (N, K) f32|f16 · 2 out (M, N) f32 · [3 res (M, N) f32] ·
//   [next: g (K) f32, the fused RMSNorm weight (matvec only)] · p (M, K, N, KV, eps)
// ldx(m, k4) / ldw(n, k4): the vec4 at K-index 4·k4 of row m of x / row n of w, zero out of range.
// ldx_in / ldw_in: the same for rows the caller knows are in range (k4 < KV is the caller's too).
// ldg(k4): the norm weight g at K-index 4·k4 (G_LOAD is `return vec4(1.0)` / `1.0` without a norm).
// put(m, n, v): out[m, n] = v (+ residual), skipped out of range.
{{ENABLE}}
struct Params { M: u32, K: u32, N: u32, KV: u32, eps: f32 }

@group(0) @binding(0) var<storage, read_write> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, {{WACCESS}}> w: array<vec4<{{WDT}}>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
{{RES_DECL}}
{{G_DECL}}
@group(0) @binding({{PB}}) var<uniform> p: Params;

fn ldx_in(m: u32, k4: u32) -> vec4<f32> {
  return x[m * p.KV + k4];
}

fn ldw_in(n: u32, k4: u32) -> vec4<f32> {
  return vec4<f32>(w[n * p.KV + k4]);
}

fn ldx(m: u32, k4: u32) -> vec4<f32> {
  if (m < p.M && k4 < p.KV) {
    return ldx_in(m, k4);
  }
  return vec4<f32>();
}

fn ldw(n: u32, k4: u32) -> vec4<f32> {
  if (n < p.N && k4 < p.KV) {
    return ldw_in(n, k4);
  }
  return vec4<f32>();
}

fn put(m: u32, n: u32, v: f32) {
  if (m < p.M && n < p.N) {
    let i = m * p.N + n;
    out[i] = {{RES_EXPR}};
  }
}

fn ldg(k4: u32) -> vec4<f32> {
  {{G_LOAD}}
}
