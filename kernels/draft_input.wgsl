// The EAGLE-3 draft layer's two normalised inputs in one dispatch: for T rows,
//   en[t] = rmsNorm(table[ids[ids_off + t]], g_in)       (input_layernorm of the embedding)
//   hn[t] = rmsNorm(src[srow(t)], g_hid)                  (hidden_norm of the hidden input)
// with srow(t) = t, or idx[idx_off + t] when GATHER (tree growth: the frontier's hidden rows picked
// from the previous level's output), in which case the picked raw row is also written to hout[t]
// (the layer's residual input). This replaces embedding + rmsNorm + rmsNorm (+ gather_rows), four
// dispatches per draft step, with one. en and hn are two (T, h) tensors of one buffer, bound as the
// span `normed` that covers both (element offsets en_off / hn_off): storage bindings must start at
// 256-byte offsets, so hn cannot simply be rows T.. of a (2T, h) tensor, and one binding keeps the
// kernel within WebGPU's default of 8 storage buffers per stage.
//
// Each row is normalised by the same entries as kernels/norm.wgsl (the shared fragment rms_rows.wgsl,
// with this file's row hooks), so the results are bit-identical to the unfused ops on the same adapter.
//
// Output row r < T is en[r], r ≥ T is hn[r − T].
// entry main: one 256-thread workgroup per output row (2T rows; row = wg.y * nwg.x + wg.x): strided
//   Σx², workgroup tree reduction, then scale (norm.wgsl `main`).
// entry main_sw (software adapters, llvmpipe): one invocation per output row, 8 per workgroup, no
//   barrier (norm.wgsl `main_sw`; row = (wg.y · nwg.x + wg.x) · 8 + lid).
//
// An id ≥ v or a gathered row ≥ s reads as a row of NaNs (clamping would be a silent wrong answer).
//
// bindings: 0 table (v, h) {{WT}} · 1 ids u32 · 2 src (s, h) f32 · 3 idx u32 (GATHER only) ·
//   4 g_in (h) f32 · 5 g_hid (h) f32 · 6 normed (en and hn) f32 · 7 hout (t, h) f32 (GATHER only) · p
// Placeholders: {{ENABLE}}, {{WT}} (table f32 | f16), {{TACCESS}} / {{GIACCESS}} / {{GHACCESS}}
//   (`read` for weight-arena bindings, else `read_write`), {{SROW}} the body of srow(t), {{HOUT}}
//   the statement that stores the raw hidden value (empty without GATHER).
{{ENABLE}}

struct Params {
  t: u32, h: u32, v: u32, ids_off: u32, s: u32, idx_off: u32, eps: f32, en_off: u32, hn_off: u32,
}

@group(0) @binding(0) var<storage, {{TACCESS}}> table: array<{{WT}}>;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx: array<u32>;
@group(0) @binding(4) var<storage, {{GIACCESS}}> g_in: array<f32>;
@group(0) @binding(5) var<storage, {{GHACCESS}}> g_hid: array<f32>;
@group(0) @binding(6) var<storage, read_write> normed: array<f32>;
@group(0) @binding(7) var<storage, read_write> hout: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

var<workgroup> red: array<f32, 256>;

fn srow(t: u32) -> u32 {
  {{SROW}}
}

// Where output row r reads from: emb (table or src), the element base, and whether it is in range.
struct RmsRow { emb: bool, ok: bool, base: u32, key: u32 }

fn rms_rows() -> u32 {
  return 2u * p.t;
}

fn rms_row(r: u32) -> RmsRow {
  if (r < p.t) {
    let id = ids[p.ids_off + r];
    return RmsRow(true, id < p.v, select(0u, id * p.h, id < p.v), id);
  }
  let s = srow(r - p.t);
  return RmsRow(false, s < p.s, select(0u, s * p.h, s < p.s), s);
}

fn rms_value(q: RmsRow, i: u32) -> f32 {
  if (!q.ok) {
    // A quiet NaN built from a runtime value (a NaN constant is a WGSL const-evaluation error).
    return bitcast<f32>(0x7fc00000u | (q.key & 0u));
  }
  if (q.emb) {
    return f32(table[q.base + i]);
  }
  return src[q.base + i];
}

fn gain(q: RmsRow, i: u32) -> f32 {
  if (q.emb) {
    return g_in[i];
  }
  return g_hid[i];
}

// Store normalised element i of output row r (and the raw hidden value when gathering).
fn rms_store(q: RmsRow, r: u32, i: u32, v: f32, scale: f32) {
  if (q.emb) {
    normed[p.en_off + r * p.h + i] = v * scale * gain(q, i);
  } else {
    normed[p.hn_off + (r - p.t) * p.h + i] = v * scale * gain(q, i);
    {{HOUT}}
  }
}

// #include rms_rows.wgsl
