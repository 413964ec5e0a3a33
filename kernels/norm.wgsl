// RMSNorm (HF LlamaRMSNorm): out = x * rsqrt(mean(x²) + eps) * w, computed in f32.
//
// Exists because every transformer layer normalises its input twice and the final hidden state
// once; the row statistic needs a reduction, so it cannot be fused into the elementwise kernels.
//
// The two entries are the shared fragment rms_rows.wgsl (also draft_input.wgsl's), with this file's
// hooks: a row is its element base in x; the stored value is x · (1/rms) · w, in that order.
//
// entry main: one 256-thread workgroup per row. Pass 1: each thread sums x² over a strided slice of
//   the row (coalesced), then a tree reduction in workgroup memory gives Σx². Pass 2: each thread
//   scales its slice. The row index is (wg.y * nwg.x + wg.x), so more than 65535 rows fit.
//   x, out: (M, H) f32 (out may alias x: every element is read and written by the same thread,
//   after the reduction); w: (H) {{WT}} from the weight arena (read-only binding).
//
// entry main_sw (software adapters, llvmpipe): one invocation per row, 8 per workgroup (one SIMD
//   vector of llvmpipe: no barrier, no workgroup memory), row = (wg.y · nwg.x + wg.x) · 8 + lid. The
//   256-thread entry spends 9 barriers per row, each a coroutine switch of 32 fibers there (~1 ms for
//   60 rows of 128 on tiny's verification, against ~0.05 ms for this entry; docs/engine.md §7).
//
// Placeholders: {{ENABLE}} is `enable f16;` or empty, {{WT}} the weight element type (f32 | f16),
// {{WACCESS}} `read` (weight arena) or `read_write` (weight shares a buffer with x/out).
{{ENABLE}}

struct Params { h: u32, m: u32, eps: f32 }

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, {{WACCESS}}> w: array<{{WT}}>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> red: array<f32, 256>;

// #include rms_rows.wgsl

struct RmsRow { base: u32 }

fn rms_rows() -> u32 {
  return p.m;
}

fn rms_row(r: u32) -> RmsRow {
  return RmsRow(r * p.h);
}

fn rms_value(q: RmsRow, i: u32) -> f32 {
  return x[q.base + i];
}

fn rms_store(q: RmsRow, r: u32, i: u32, v: f32, scale: f32) {
  out[q.base + i] = v * scale * f32(w[i]);
}
