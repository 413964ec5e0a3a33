// EAGLE-3 training-time-test (TTT) bookkeeping kernels (packages/core/src/train/ttt.ts): everything of
// the Phase-I step that is neither a forward op nor a backward op — turning the target's logits into
// soft targets, building the shifted per-step inputs, filling the zero-filled rows' uniform targets,
// and reducing the per-row losses into the metrics the trainer reads back only when asked.
// EAGLE's conventions (traineagle3/cnets.py): at unrolled step k, position t holds the target logits
// of t+k+1, the input id x[t+k+1] and the loss mask lm[t+k] (zero fill past the sequence end; a
// zero-filled logits row has argmax 0 and a uniform softmax).
//
// entry target_prep (one 256-thread workgroup per target row, row = wg.y·nwg.x + wg.x < rows):
//   logits (rows, V) → tp[(row_base+row)·Vd + j] = softmax over the draft vocabulary of
//   logits[d2tt[j]] (draft order), in_vocab[flag_base+row] = t2d[argmax_v logits] (0/1 f32),
//   targ[flag_base+row] = argmax_j of the restricted logits (draft id). Ties go to the lower index
//   (torch.argmax returns the first maximum).
// entry fill_rows (one thread per element): tp[(b·row_stride + row_at)·Vd + j] = value for b < nb,
//   j < Vd (the uniform target of the zero-filled row after each sequence).
// entry step_prep (one thread per (k, r), k < steps, r < mpad): for r = b·S + t < M,
//   ids_all[k·mpad + r] = x[b·S + t+k+1] (0 past the end), pos_all = t + k,
//   w_all = in_vocab[b·S + t+k+1] (t2d0 past the end) · lm[b·S + t+k] (0 past the end) · c_k
//   (c_k = w_k / M);
//   rows r ≥ M get id 0, position 0, weight 0.
// entry metrics (one 256-thread workgroup): per step k, the sums over rows of the weighted losses
//   (ploss_k = Σ loss / w_k via inv_k, 0 for a step of weight 0), of the correct-and-masked rows and
//   of the shifted loss mask; out = [ploss_0..7, acc_0..7, Σ_k Σ loss, sqrt(norm_sq)] (18 f32; steps
//   ≥ p.steps read 0). Up to 8 unrolled steps (c0..c7, i0..i7).
// All bindings are read_write: arenas pack several tensors into one buffer (see gpu/kernel.ts).

struct PrepParams { v: u32, vd: u32, row_base: u32, rows: u32, flag_base: u32 }

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> t2d: array<u32>;
@group(0) @binding(2) var<storage, read_write> d2tt: array<u32>;
@group(0) @binding(3) var<storage, read_write> tp: array<f32>;
@group(0) @binding(4) var<storage, read_write> in_vocab: array<f32>;
@group(0) @binding(5) var<storage, read_write> targ: array<u32>;
@group(0) @binding(6) var<uniform> pp: PrepParams;

var<workgroup> rv: array<f32, 256>;
var<workgroup> ri: array<u32, 256>;

const NEG_MAX: f32 = -3.4028234663852886e38;
const NONE: u32 = 0xffffffffu;

// Tree-reduce (rv, ri) to slot 0 keeping the larger value, the lower index on ties.
fn reduce_argmax(lid: u32) {
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      let v2 = rv[lid + s];
      let i2 = ri[lid + s];
      if (i2 != NONE && (ri[lid] == NONE || v2 > rv[lid] || (v2 == rv[lid] && i2 < ri[lid]))) {
        rv[lid] = v2;
        ri[lid] = i2;
      }
    }
  }
  workgroupBarrier();
}

fn reduce_sum(lid: u32) {
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      rv[lid] += rv[lid + s];
    }
  }
  workgroupBarrier();
}

@compute @workgroup_size(256)
fn target_prep(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= pp.rows) {
    return; // uniform per workgroup
  }
  let base = row * pp.v;
  // 1. argmax over the full vocabulary (each thread scans ascending, so strict > keeps the first).
  var bv = NEG_MAX;
  var bi = NONE;
  for (var i = lid; i < pp.v; i += 256u) {
    let z = logits[base + i];
    if (bi == NONE || z > bv) {
      bv = z;
      bi = i;
    }
  }
  rv[lid] = bv;
  ri[lid] = bi;
  reduce_argmax(lid);
  let am = ri[0];
  workgroupBarrier();
  // 2. max and argmax of the logits restricted to the draft vocabulary, in draft order.
  bv = NEG_MAX;
  bi = NONE;
  for (var j = lid; j < pp.vd; j += 256u) {
    let z = logits[base + d2tt[j]];
    if (bi == NONE || z > bv) {
      bv = z;
      bi = j;
    }
  }
  rv[lid] = bv;
  ri[lid] = bi;
  reduce_argmax(lid);
  let zmax = rv[0];
  let jarg = ri[0];
  workgroupBarrier();
  // 3. softmax denominator.
  var s = 0.0;
  for (var j = lid; j < pp.vd; j += 256u) {
    s += exp(logits[base + d2tt[j]] - zmax);
  }
  rv[lid] = s;
  reduce_sum(lid);
  let inv = 1.0 / rv[0];
  let dst = (pp.row_base + row) * pp.vd;
  for (var j = lid; j < pp.vd; j += 256u) {
    tp[dst + j] = exp(logits[base + d2tt[j]] - zmax) * inv;
  }
  if (lid == 0u) {
    var iv = 0.0;
    if (am < pp.v && t2d[am] != 0u) {
      iv = 1.0;
    }
    in_vocab[pp.flag_base + row] = iv;
    targ[pp.flag_base + row] = jarg;
  }
}

struct FillParams { nb: u32, row_stride: u32, row_at: u32, vd: u32, value: f32 }

@group(0) @binding(0) var<storage, read_write> fill_dst: array<f32>;
@group(0) @binding(1) var<uniform> fp: FillParams;

@compute @workgroup_size(256)
fn fill_rows(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i < fp.nb * fp.vd) {
    let b = i / fp.vd;
    let j = i % fp.vd;
    fill_dst[(b * fp.row_stride + fp.row_at) * fp.vd + j] = fp.value;
  }
}

struct StepParams {
  m: u32, s: u32, mpad: u32, steps: u32, t2d0: f32,
  c0: f32, c1: f32, c2: f32, c3: f32, c4: f32, c5: f32, c6: f32, c7: f32,
}

@group(0) @binding(0) var<storage, read_write> ids: array<u32>;
@group(0) @binding(1) var<storage, read_write> lm: array<f32>;
@group(0) @binding(2) var<storage, read_write> iv_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> ids_all: array<u32>;
@group(0) @binding(4) var<storage, read_write> pos_all: array<u32>;
@group(0) @binding(5) var<storage, read_write> w_all: array<f32>;
@group(0) @binding(6) var<uniform> sp: StepParams;

fn step_coef(k: u32) -> f32 {
  switch k {
    case 0u: { return sp.c0; }
    case 1u: { return sp.c1; }
    case 2u: { return sp.c2; }
    case 3u: { return sp.c3; }
    case 4u: { return sp.c4; }
    case 5u: { return sp.c5; }
    case 6u: { return sp.c6; }
    default: { return sp.c7; }
  }
}

@compute @workgroup_size(256)
fn step_prep(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= sp.steps * sp.mpad) {
    return;
  }
  let k = i / sp.mpad;
  let r = i % sp.mpad;
  var id = 0u;
  var pos = 0u;
  var w = 0.0;
  if (r < sp.m) {
    let b = r / sp.s;
    let t = r % sp.s;
    let src = t + k + 1u;
    pos = t + k;
    var iv = sp.t2d0;
    if (src < sp.s) {
      id = ids[b * sp.s + src];
      iv = iv_in[b * sp.s + src];
    }
    var lmk = 0.0;
    if (t + k < sp.s) {
      lmk = lm[b * sp.s + t + k];
    }
    w = iv * lmk * step_coef(k);
  }
  ids_all[i] = id;
  pos_all[i] = pos;
  w_all[i] = w;
}

struct MetricParams {
  m: u32, s: u32, mpad: u32, steps: u32,
  i0: f32, i1: f32, i2: f32, i3: f32, i4: f32, i5: f32, i6: f32, i7: f32,
}

@group(0) @binding(0) var<storage, read_write> loss_all: array<f32>;
@group(0) @binding(1) var<storage, read_write> mw_all: array<f32>;
@group(0) @binding(2) var<storage, read_write> darg: array<u32>;
@group(0) @binding(3) var<storage, read_write> mtarg: array<u32>;
@group(0) @binding(4) var<storage, read_write> mlm: array<f32>;
@group(0) @binding(5) var<storage, read_write> norm_sq: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> mp: MetricParams;

const MAX_STEPS: u32 = 8u; // TTT_MAX_STEPS (train/ttt.ts)

var<workgroup> ra: array<f32, 256>;
var<workgroup> rb: array<f32, 256>;
var<workgroup> rc: array<f32, 256>;

fn inv_coef(k: u32) -> f32 {
  switch k {
    case 0u: { return mp.i0; }
    case 1u: { return mp.i1; }
    case 2u: { return mp.i2; }
    case 3u: { return mp.i3; }
    case 4u: { return mp.i4; }
    case 5u: { return mp.i5; }
    case 6u: { return mp.i6; }
    default: { return mp.i7; }
  }
}

@compute @workgroup_size(256)
fn metrics(@builtin(local_invocation_index) lid: u32) {
  var total = 0.0;
  for (var k = 0u; k < MAX_STEPS; k++) {
    var l = 0.0;
    var c = 0.0;
    var d = 0.0;
    if (k < mp.steps) {
      for (var r = lid; r < mp.m; r += 256u) {
        l += loss_all[k * mp.mpad + r];
        let b = r / mp.s;
        let t = r % mp.s;
        if (mw_all[k * mp.mpad + r] > 0.0) {
          let src = t + k + 1u;
          var want = 0u; // a zero-filled target row has argmax 0
          if (src < mp.s) {
            want = mtarg[b * mp.s + src];
          }
          if (darg[k * mp.mpad + r] == want) {
            c += 1.0;
          }
        }
        if (t + k < mp.s) {
          d += mlm[b * mp.s + t + k];
        }
      }
    }
    ra[lid] = l;
    rb[lid] = c;
    rc[lid] = d;
    for (var s = 128u; s > 0u; s >>= 1u) {
      workgroupBarrier();
      if (lid < s) {
        ra[lid] += ra[lid + s];
        rb[lid] += rb[lid + s];
        rc[lid] += rc[lid + s];
      }
    }
    workgroupBarrier();
    if (lid == 0u) {
      if (k < mp.steps) {
        out[k] = ra[0] * inv_coef(k);
        out[MAX_STEPS + k] = rb[0] / (rc[0] + 1e-6);
      } else {
        out[k] = 0.0;
        out[MAX_STEPS + k] = 0.0;
      }
      total += ra[0];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    out[2u * MAX_STEPS] = total;
    out[2u * MAX_STEPS + 1u] = sqrt(norm_sq[0]);
  }
}
