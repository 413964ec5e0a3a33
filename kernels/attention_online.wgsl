// The online softmax shared by the workgroup attention kernels (attention.wgsl, attention_rope.wgsl,
// attention_split.wgsl): the per-tile update and the merge of the key groups, written once so that the
// three kernels cannot drift apart (the fused RoPE kernel must equal rope_qkv → attention bit for bit).
// WGSL has no #include: each of those sources has a line `// #include attention_online.wgsl` that
// `linkWgsl` (kernels/mod.ts) replaces by this text once, at import. Module-scope declarations in WGSL
// are order-independent, so this fragment may use names the kernel defines after it; the line sits
// where the kernel wants these workgroup arrays (after the small `qs`, before larger arrays).
//
// Layout: a workgroup of WG threads, thread lid = kg·D4 + d4 (d4 = lid % D4) owns key group kg < NKG
// (keys kg, kg + NKG, … of each tile) and output vec4 d4 of the head dim, and keeps an online softmax
// in registers: running max m, sum l, vec4 accumulator acc, rescaled once per tile by exp(m_old − m_new).
// The D4 lanes of a group compute the same exp(s_j − m) in one SIMD instruction; spreading those exps
// over the lanes (one more barrier and a weight array) measured 2× slower on lavapipe. Threads with
// kg ≥ NKG idle in the update. A key group that has seen no visible key keeps m = NEG, l = 0.
//
// The including kernel provides
//   const WG: u32, D4: u32        threads per workgroup (= keys per tile), head dim / 4 (D4 ≤ WG);
//   struct ValueSrc               whatever it needs to locate a value row (per workgroup);
//   fn tile_value(src: ValueSrc, j: u32, d4: u32) -> vec4f   vec4 d4 of key j's value (j as the kernel
//                                 indexes keys: physical, virtual, or with new keys outside the cache);
// and drives the loop, keeping every barrier in its entry point (all threads reach them):
//   var st = online_init();
//   for (each tile of n ≤ WG keys starting at key j0) {
//     sc[lid] = score of key j0 + lid, or NEG when masked / beyond the tile;   workgroupBarrier();
//     st = online_tile(st, src, j0, n, lid);                                    workgroupBarrier();
//   }
//   online_publish(st, lid);   workgroupBarrier();
//   if (lid < D4) { let r = online_merged(lid); … online_out(r) or (r.m, r.l, r.acc) … }

const NKG: u32 = WG / D4;  // key groups (threads lid ≥ NKG·D4 idle in the update)
const NEG: f32 = -1.0e30;  // score of a masked key (finite: WGSL may assume no infinities)
const VISIBLE: f32 = -5.0e29;

var<workgroup> sc: array<f32, WG>;   // scores of the current tile
var<workgroup> gm: array<f32, WG>;   // key-group merge: running max per thread
var<workgroup> gl: array<f32, WG>;   //                  running sum per thread
var<workgroup> ga: array<vec4f, WG>; //                  accumulator per thread

// Unnormalised softmax state: out = acc / l, each score taken relative to m.
struct Online {
  m: f32,
  l: f32,
  acc: vec4f,
}

fn online_init() -> Online {
  return Online(NEG, 0.0, vec4f(0.0));
}

// Fold this thread's keys of the tile sc[0, n) (keys j0 .. j0 + n) into its state.
fn online_tile(st: Online, src: ValueSrc, j0: u32, n: u32, lid: u32) -> Online {
  let kg = lid / D4;
  if (kg >= NKG) {
    return st;
  }
  let d4 = lid % D4;
  var mt = NEG;
  for (var jj = kg; jj < n; jj += NKG) {
    mt = max(mt, sc[jj]);
  }
  let mn = max(st.m, mt); // stays NEG while the group has seen no visible key
  let alpha = exp(st.m - mn);
  var acc = st.acc * alpha;
  var l = st.l * alpha;
  for (var jj = kg; jj < n; jj += NKG) {
    let sj = sc[jj];
    if (sj > VISIBLE) {
      let pj = exp(sj - mn);
      l += pj;
      acc = fma(vec4f(pj), tile_value(src, j0 + jj, d4), acc);
    }
  }
  return Online(mn, l, acc);
}

// Store this thread's state for the merge (every thread; a workgroupBarrier must follow).
fn online_publish(st: Online, lid: u32) {
  gm[lid] = st.m;
  gl[lid] = st.l;
  ga[lid] = st.acc;
}

// The NKG key groups' states of output vec4 d4 merged into one (after online_publish + barrier):
// m = max of the groups' m, l and acc their sums rescaled to m.
fn online_merged(d4: u32) -> Online {
  var mx = NEG;
  for (var k = 0u; k < NKG; k++) {
    mx = max(mx, gm[k * D4 + d4]);
  }
  var den = 0.0;
  var num = vec4f(0.0);
  for (var k = 0u; k < NKG; k++) {
    let w = exp(gm[k * D4 + d4] - mx);
    den += gl[k * D4 + d4] * w;
    num += ga[k * D4 + d4] * w;
  }
  return Online(mx, den, num);
}

// The normalised output acc / l, or zeros when no key was visible (l = 0).
fn online_out(r: Online) -> vec4f {
  var o = vec4f(0.0);
  if (r.l > 0.0) {
    o = r.acc / r.l;
  }
  return o;
}
