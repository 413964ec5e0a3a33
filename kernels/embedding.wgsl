// Token embedding gather: out[t] = table[ids[ids_offset + t]]. Token ids stay on the GPU (a decode
// loop writes sampled ids into a token ring and embeds from it without a CPU round trip), hence the
// ids offset.
//
// entry main: one thread per output element, 2-D grid (index = (wg.y * nwg.x + wg.x) * 256 + lid).
//   table: (V, H) {{WT}} (weight arena, read-only), ids: u32 (≥ ids_offset + T), out: (T, H) f32.
//   An id ≥ V writes a NaN row: clamping would be a silent wrong answer, a NaN is caught by tests.
//
// Placeholders: {{ENABLE}} is `enable f16;` or empty, {{WT}} the table element type (f32 | f16),
// {{WACCESS}} `read` (weight arena) or `read_write` (table shares a buffer with ids/out).
{{ENABLE}}

struct Params { t: u32, h: u32, v: u32, ids_offset: u32 }

@group(0) @binding(0) var<storage, {{WACCESS}}> table: array<{{WT}}>;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let idx = (wg.y * nwg.x + wg.x) * 256u + lid; // over T * H
  if (idx >= p.t * p.h) {
    return;
  }
  let t = idx / p.h;
  let c = idx - t * p.h;
  let id = ids[p.ids_offset + t];
  if (id < p.v) {
    out[idx] = f32(table[id * p.h + c]);
  } else {
    // A quiet NaN built from a runtime value (a NaN constant is a WGSL const-evaluation error).
    out[idx] = bitcast<f32>(0x7fc00000u | (id & 0u));
  }
}
