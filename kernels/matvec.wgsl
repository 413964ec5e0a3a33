// Matrix-vector style linear for small M (decode, draft steps, small trees: M ≤ 8):
// out (M, N) = x (M, K) · w (N, K)ᵀ. This regime is memory-bound on the weight, so the kernel streams
// every weight row exactly once and applies it to all M activation rows while it is in registers.
// Prepended by linear_io_vec4.wgsl or linear_io_scalar.wgsl (bindings, ldx/ldw/put).
//
// entry matvec: workgroup of 256 threads owns ROWS consecutive weight rows (output columns n);
//   TPR = 256 / ROWS threads per row walk K in vec4 steps (coalesced: neighbours read neighbouring
//   16-byte chunks), each keeping MR partial sums in two vec4 registers (component m = row m of x),
//   then a workgroup-memory tree reduction per row; thread 0 of each row writes the MR outputs.
//   MR (= M, 1..8) is a pipeline-overridable constant, so the per-row branches fold away.
//   Grid: ceil(N / ROWS) workgroups, split over x and y (index = wg.y * nwg.x + wg.x).

const ROWS: u32 = {{ROWS}}u;
const TPR: u32 = 256u / ROWS;
override MR: u32 = 1u;

var<workgroup> redA: array<vec4<f32>, 256>;
var<workgroup> redB: array<vec4<f32>, 256>;

@compute @workgroup_size(256)
fn matvec(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let r = lid / TPR;
  let t = lid % TPR;
  let n = (wg.y * nwg.x + wg.x) * ROWS + r;
  var a = vec4<f32>();
  var b = vec4<f32>();
  if (n < p.N) {
    for (var k4 = t; k4 < p.KV; k4 += TPR) {
      let wv = ldw_in(n, k4);
      a.x += dot(wv, ldx_in(0u, k4));
      if (MR > 1u) { a.y += dot(wv, ldx_in(1u, k4)); }
      if (MR > 2u) { a.z += dot(wv, ldx_in(2u, k4)); }
      if (MR > 3u) { a.w += dot(wv, ldx_in(3u, k4)); }
      if (MR > 4u) { b.x += dot(wv, ldx_in(4u, k4)); }
      if (MR > 5u) { b.y += dot(wv, ldx_in(5u, k4)); }
      if (MR > 6u) { b.z += dot(wv, ldx_in(6u, k4)); }
      if (MR > 7u) { b.w += dot(wv, ldx_in(7u, k4)); }
    }
  }
  redA[lid] = a;
  redB[lid] = b;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      redA[lid] += redA[lid + s];
      if (MR > 4u) { redB[lid] += redB[lid + s]; }
    }
    workgroupBarrier();
  }
  if (t == 0u && n < p.N) {
    let sa = redA[lid];
    let sb = redB[lid];
    put(0u, n, sa.x);
    if (MR > 1u) { put(1u, n, sa.y); }
    if (MR > 2u) { put(2u, n, sa.z); }
    if (MR > 3u) { put(3u, n, sa.w); }
    if (MR > 4u) { put(4u, n, sb.x); }
    if (MR > 5u) { put(5u, n, sb.y); }
    if (MR > 6u) { put(6u, n, sb.z); }
    if (MR > 7u) { put(7u, n, sb.w); }
  }
}
