// Fragment (spliced by `linkWgsl` at a `// #include rms_rows.wgsl` line): the two RMSNorm entries over
// rows, shared by norm.wgsl (rmsNorm) and draft_input.wgsl (the draft's two input norms), so the fused
// draft input is bit-identical to the separate rmsNorm by construction, not by a copy kept in step.
//
// The including kernel supplies: `p.h` (row width) and `p.eps`; `var<workgroup> red: array<f32, 256>`;
// a row handle type `RmsRow`; `rms_rows() -> u32` (rows in the dispatch); `rms_row(r) -> RmsRow`;
// `rms_value(q, i) -> f32` (element i of the row to normalise); `rms_store(q, r, i, v, scale)` (store
// element i given its value v and the row's 1/rms; the gain and its product order are the caller's).
//
// entry main: one 256-thread workgroup per row (row = wg.y · nwg.x + wg.x, so > 65535 rows fit):
//   strided Σx², workgroup tree reduction, then each thread scales its slice.
// entry main_sw (software adapters, llvmpipe): one invocation per row, 8 per workgroup, no barrier
//   (row = (wg.y · nwg.x + wg.x) · 8 + lid); Σx² with fma in index order.

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let r = wg.y * nwg.x + wg.x;
  if (r >= rms_rows()) {
    return; // uniform: depends only on the workgroup id and the uniform
  }
  let q = rms_row(r);
  var ss = 0.0;
  for (var i = lid; i < p.h; i += 256u) {
    let v = rms_value(q, i);
    ss += v * v;
  }
  red[lid] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red[lid] += red[lid + s];
    }
    workgroupBarrier();
  }
  let scale = inverseSqrt(red[0] / f32(p.h) + p.eps);
  for (var i = lid; i < p.h; i += 256u) {
    rms_store(q, r, i, rms_value(q, i), scale);
  }
}

@compute @workgroup_size(8)
fn main_sw(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let r = (wg.y * nwg.x + wg.x) * 8u + lid;
  if (r >= rms_rows()) {
    return;
  }
  let q = rms_row(r);
  var ss = 0.0;
  for (var i = 0u; i < p.h; i++) {
    let v = rms_value(q, i);
    ss = fma(v, v, ss);
  }
  let scale = inverseSqrt(ss / f32(p.h) + p.eps);
  for (var i = 0u; i < p.h; i++) {
    rms_store(q, r, i, rms_value(q, i), scale);
  }
}
