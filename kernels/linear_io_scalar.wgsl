// Bindings and bounds-checked loaders shared by the linear kernels (matmul.wgsl, matvec.wgsl), for
// any K (used when K % 4 != 0, where rows of x and w are not 16-byte aligned): x and w are read as
// scalars and packed into vec4 along K, zero-filled past K. Same functions as linear_io_vec4.wgsl,
// so the kernel bodies are shared; KV = ceil(K / 4).
//
// bindings: 0 x (M, K) f32 · 1 w (N, K) f32|f16 · 2 out (M, N) f32 · [3 res (M, N) f32] ·
//   [next: g (K) f32, the fused RMSNorm weight (matvec only)] · p (M, K, N, KV, eps)
// ldx(m, k4) / ldw(n, k4): elements 4·k4 .. 4·k4+3 of row m of x / row n of w, zero out of range.
// ldx_in / ldw_in: the same for rows the caller knows are in range (K is still checked).
// ldg(k4): the norm weight g at K-index 4·k4 (G_LOAD is `return vec4(1.0)` / `1.0` without a norm).
// put(m, n, v): out[m, n] = v (+ residual), skipped out of range.
{{ENABLE}}
struct Params { M: u32, K: u32, N: u32, KV: u32, eps: f32 }

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, {{WACCESS}}> w: array<{{WDT}}>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
{{RES_DECL}}
{{G_DECL}}
@group(0) @binding({{PB}}) var<uniform> p: Params;

fn xs(row: u32, k: u32) -> f32 {
  if (k < p.K) {
    return x[row + k];
  }
  return 0.0;
}

fn ws(row: u32, k: u32) -> f32 {
  if (k < p.K) {
    return f32(w[row + k]);
  }
  return 0.0;
}

fn ldx_in(m: u32, k4: u32) -> vec4<f32> {
  let r = m * p.K;
  let k = k4 * 4u;
  return vec4<f32>(xs(r, k), xs(r, k + 1u), xs(r, k + 2u), xs(r, k + 3u));
}

fn ldw_in(n: u32, k4: u32) -> vec4<f32> {
  let r = n * p.K;
  let k = k4 * 4u;
  return vec4<f32>(ws(r, k), ws(r, k + 1u), ws(r, k + 2u), ws(r, k + 3u));
}

fn ldx(m: u32, k4: u32) -> vec4<f32> {
  if (m < p.M) {
    return ldx_in(m, k4);
  }
  return vec4<f32>();
}

fn ldw(n: u32, k4: u32) -> vec4<f32> {
  if (n < p.N) {
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

fn gs(k: u32) -> f32 {
  if (k < p.K) {
    {{G_LOAD}}
  }
  return 0.0;
}

fn ldg(k4: u32) -> vec4<f32> {
  let k = k4 * 4u;
  return vec4<f32>(gs(k), gs(k + 1u), gs(k + 2u), gs(k + 3u));
}
