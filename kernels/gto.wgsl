// GTO Phase II reward, acceptance and advantage kernels (arXiv 2509.22134 §3), so a training step turns
// the target's tree-verification logits into per-prefix rewards, advantages and gradient coefficients
// without any CPU readback. The f64 reference, with the paper's equation numbers and the choices the
// paper leaves open, is packages/core/src/train/gto_ref.ts; packages/core/src/train/gto_ops.ts
// records these kernels.
//
// Trees come from kernels/tree.wgsl (P trees, tree p's N nodes at rows p·N of tokens / parents, its
// N − 1 retrieve rows at p·(N−1), its state block at p·st_stride). Verification logits are processed
// in chunks of whole trees: a chunk holds trees [tree0, tree0 + count), the logits of tree tree0 + q at
// rows q·N .. q·N + N of the chunk's (count·N, V) tensor; row i = target logits after node i.
//
// entry row_lse (one 256-thread workgroup per logits row): stats[2·(row_off + row)] = bits of
//   logsumexp(z_row) (f32, max subtracted), stats[2·(row_off + row) + 1] = argmax (lowest index on ties).
// entry node_logprob (one thread per node of the chunk): for node j ≥ 1 of tree p with parent a,
//   nodes[2·(p·N + j)] = bits of log p_T(x̄_j) = z[a][tok_j] − lse[a] (T = 1, full vocabulary; Eq. 3),
//   nodes[2·(p·N + j) + 1] = 1 iff tok_j = argmax[a] (greedy agreement); the root gets (0, 0). With
//   use_map, a's logits row in the chunk is map[p·N + a] (internal-only verification: only nodes with
//   a child are verified, compacted), else q·N + a.
// entry tree_reward (one 256-thread workgroup per tree of the chunk): per retrieve row b (a root→leaf
//   branch), L_b = Σ_{j≥1} Π_{k≤j} p_k (Eq. 4; rows past the leaf count, whose first entry is −1, get 0)
//   into branch_out[p·(N−1) + b]; then tree_out[p·8 + ·] = [r_lse = max + log(Σ exp(η(L − max)))/η
//   (Eq. 5), r_max, r_mean, l (data-path acceptance: the longest root path whose tokens equal
//   cont[p·cont_w ..], NONE- or STOP-terminated), log M(Ŝ) = node score of Ŝ's last node (0 when
//   l = 0), l_greedy (greedy walk over nodes with greedy agreement, at most the index of a STOP in
//   cont: decoding stops at the eos), number of branches, last node of Ŝ].
//   Sums run serially in row order: deterministic.
// entry gto_coeff (one thread per prefix i, groups of m adjacent prefixes): R = r(M) − r(M₀) (or r(M)
//   without debiasing) for the chosen aggregate; A = (R − mean)/(std + δ) (sample or population std;
//   m = 1 → A = R; deviations are taken from the group's first member so equal rewards give A = 0
//   exactly); s = exp((log M(Ŝ) − log M₀(Ŝ))/l) (1 when l = 0); PPO clip with ε; coefficient
//   ∂L_GTO/∂log M(Ŝ) = −A·s/(P_tot·l) when the unclipped branch is the minimum and l > 0, else 0.
//   coef_out[i·8 + ·] = [R, A, s, coefficient, min(s·A, clip(s)·A), clipped (0/1), l, log M − log M₀].
// entry tree_positions (one thread per row): pos[i] = prefix[pre_off + i / per] + (use_offs ?
//   offs[offs_off + i] : add) — absolute RoPE positions of P trees' rows: verification (per = N, offs =
//   node depths: root x_r at r, node at r + depth) or draft expansion e (per = k, add = e).
// entry gto_hard_weights (one thread per (step k, row t) of the TTT's (steps·stride) hard rows):
//   p = rowmap[t] (the prefix whose root row is t, or −1); w[k·stride + t] = alpha·src[p·8 + vcol] +
//   beta when p ≥ 0 and k < l_p = src[p·8 + lcol], else 0. The current draft: src = gto_coeff rows,
//   vcol = coefficient, alpha = −ω, beta = 0 (the hard term's gradient is then ω·∂L_GTO); a frozen
//   draft's path log-probs: alpha = 0, beta = 1.
// entry gto_path_logprob (one thread per prefix): out[p] = −Σ_{k<steps} hloss[k·stride + row_p] —
//   with unit weights on Ŝ's rows, log M(Ŝ_p).
//
// All bindings are read_write: tensors share arena buffers (see packages/core/src/gpu/kernel.ts).

const NONE: u32 = 0xffffffffu; // continuation: unknown past here (a cut, or no data)
const STOP: u32 = 0xfffffffeu; // continuation: the text ended here (the previous token is the eos)
const NEG: f32 = -3.0e38;

// ---------------------------------------------------------------------------------------------
// row_lse

struct LseParams { v: u32, rows: u32, row_off: u32 }

@group(0) @binding(0) var<storage, read_write> lz: array<f32>;
@group(0) @binding(1) var<storage, read_write> lstats: array<u32>;
@group(0) @binding(2) var<uniform> lsp: LseParams;

var<workgroup> red_v: array<f32, 256>;
var<workgroup> red_i: array<u32, 256>;

@compute @workgroup_size(256)
fn row_lse(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= lsp.rows) {
    return;
  }
  let base = row * lsp.v;
  var bv = NEG;
  var bi = NONE;
  for (var c = lid; c < lsp.v; c += 256u) {
    let z = lz[base + c];
    if (z > bv) {
      bv = z;
      bi = c;
    }
  }
  red_v[lid] = bv;
  red_i[lid] = bi;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let ov = red_v[lid + s];
      let oi = red_i[lid + s];
      if (ov > red_v[lid] || (ov == red_v[lid] && oi < red_i[lid])) {
        red_v[lid] = ov;
        red_i[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  let mx = red_v[0];
  let am = red_i[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var c = lid; c < lsp.v; c += 256u) {
    sum += exp(lz[base + c] - mx);
  }
  red_v[lid] = sum;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red_v[lid] += red_v[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let o = 2u * (lsp.row_off + row);
    lstats[o] = bitcast<u32>(mx + log(red_v[0]));
    lstats[o + 1u] = am;
  }
}

// ---------------------------------------------------------------------------------------------
// node_logprob

struct NodeParams { v: u32, count: u32, n: u32, tree0: u32, use_map: u32 }

@group(0) @binding(0) var<storage, read_write> nz: array<f32>;
@group(0) @binding(1) var<storage, read_write> nstats: array<u32>;
@group(0) @binding(2) var<storage, read_write> ntok: array<u32>;
@group(0) @binding(3) var<storage, read_write> npar: array<i32>;
@group(0) @binding(4) var<storage, read_write> nodes: array<u32>;
@group(0) @binding(5) var<storage, read_write> nmap: array<i32>;
@group(0) @binding(6) var<uniform> np: NodeParams;

@compute @workgroup_size(256)
fn node_logprob(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid; // node of the chunk
  if (i >= np.count * np.n) {
    return;
  }
  let q = i / np.n;
  let j = i % np.n;
  let g = np.tree0 * np.n + i; // global node row
  var lp = 0.0;
  var ok = 0u;
  if (j > 0u) {
    let a = u32(npar[g]);
    let tok = ntok[g];
    var arow = q * np.n + a; // parent's logits row in the chunk
    if (np.use_map == 1u) {
      arow = u32(nmap[np.tree0 * np.n + q * np.n + a]); // internal-only verification: compacted row
    }
    let st = 2u * (np.tree0 * np.n + arow);
    lp = nz[arow * np.v + tok] - bitcast<f32>(nstats[st]);
    if (nstats[st + 1u] == tok) {
      ok = 1u;
    }
  }
  nodes[2u * g] = bitcast<u32>(lp);
  nodes[2u * g + 1u] = ok;
}

// ---------------------------------------------------------------------------------------------
// tree_reward

struct RewardParams {
  n: u32,
  width: u32,
  cont_w: u32,
  st_stride: u32,
  score_off: u32,
  tree0: u32,
  eta: f32,
}

@group(0) @binding(0) var<storage, read_write> rnodes: array<u32>;
@group(0) @binding(1) var<storage, read_write> rtok: array<u32>;
@group(0) @binding(2) var<storage, read_write> rpar: array<i32>;
@group(0) @binding(3) var<storage, read_write> rretrieve: array<i32>;
@group(0) @binding(4) var<storage, read_write> rcont: array<u32>;
@group(0) @binding(5) var<storage, read_write> rst: array<u32>;
@group(0) @binding(6) var<storage, read_write> branch_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> tree_out: array<f32>;
@group(0) @binding(8) var<uniform> rp: RewardParams;

var<workgroup> wl: array<f32, 256>;
var<workgroup> wvalid: array<u32, 256>;

// First child of `cur` (tree-local) in tree p whose token is `tok` (greedy: whose agreement flag is
// set when `greedy`), or −1.
fn child_of(p: u32, cur: u32, tok: u32, greedy: bool) -> i32 {
  let nb = p * rp.n;
  for (var j = cur + 1u; j < rp.n; j++) {
    if (rpar[nb + j] == i32(cur)) {
      if ((greedy && rnodes[2u * (nb + j) + 1u] == 1u) || (!greedy && rtok[nb + j] == tok)) {
        return i32(j);
      }
    }
  }
  return -1;
}

@compute @workgroup_size(256)
fn tree_reward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let p = rp.tree0 + wg.x;
  let n = rp.n;
  let m = n - 1u;
  let W = rp.width;
  for (var b = lid; b < m; b += 256u) {
    let rb = (p * m + b) * W;
    var L = 0.0;
    var valid = 0u;
    if (rretrieve[rb] >= 0) {
      valid = 1u;
      var cum = 1.0;
      for (var j = 1u; j < W; j++) {
        let node = rretrieve[rb + j];
        if (node < 0) {
          break;
        }
        cum *= exp(bitcast<f32>(rnodes[2u * (p * n + u32(node))]));
        L += cum;
      }
    }
    branch_out[p * m + b] = L;
    wl[b] = L;
    wvalid[b] = valid;
  }
  workgroupBarrier();
  if (lid != 0u) {
    return;
  }
  var mx = NEG;
  var sum = 0.0;
  var cnt = 0u;
  for (var b = 0u; b < m; b++) {
    if (wvalid[b] == 1u) {
      mx = max(mx, wl[b]);
      sum += wl[b];
      cnt++;
    }
  }
  var se = 0.0;
  for (var b = 0u; b < m; b++) {
    if (wvalid[b] == 1u) {
      se += exp(rp.eta * (wl[b] - mx));
    }
  }
  // Ŝ by data-path acceptance; `cap` = where the text ended (STOP), else no cap.
  var cur = 0u;
  var l = 0u;
  var cap = rp.cont_w;
  for (var d = 0u; d < rp.cont_w; d++) {
    if (rcont[p * rp.cont_w + d] == STOP) {
      cap = d;
      break;
    }
  }
  for (var d = 0u; d < rp.cont_w; d++) {
    let t = rcont[p * rp.cont_w + d];
    if (t == NONE || t == STOP) {
      break;
    }
    let c = child_of(p, cur, t, false);
    if (c < 0) {
      break;
    }
    cur = u32(c);
    l++;
  }
  var log_m = 0.0;
  if (l > 0u) {
    log_m = bitcast<f32>(rst[p * rp.st_stride + rp.score_off + cur]);
  }
  // Greedy (T = 0) acceptance, stopping where the text ended (decoding stops at the eos too).
  var gcur = 0u;
  var lg = 0u;
  loop {
    if (lg >= cap) {
      break;
    }
    let c = child_of(p, gcur, 0u, true);
    if (c < 0) {
      break;
    }
    gcur = u32(c);
    lg++;
  }
  let o = p * 8u;
  tree_out[o] = mx + log(se) / rp.eta;
  tree_out[o + 1u] = mx;
  tree_out[o + 2u] = sum / f32(max(cnt, 1u));
  tree_out[o + 3u] = f32(l);
  tree_out[o + 4u] = log_m;
  tree_out[o + 5u] = f32(lg);
  tree_out[o + 6u] = f32(cnt);
  tree_out[o + 7u] = f32(cur);
}

// ---------------------------------------------------------------------------------------------
// gto_coeff

struct CoeffParams {
  count: u32,   // prefixes P (a multiple of m)
  m: u32,       // group size
  agg: u32,     // 0 lse, 1 max, 2 mean (column of tree_out)
  debias: u32,  // 1: R = r(M) − r(M₀)
  delta: f32,   // std floor δ
  sample: u32,  // 1: sample std (÷ (m − 1)), 0: population (÷ m)
  eps: f32,     // clip ε
  p_tot: u32,   // prefixes the loss is averaged over (≥ count)
}

@group(0) @binding(0) var<storage, read_write> cm: array<f32>;
@group(0) @binding(1) var<storage, read_write> c0: array<f32>;
@group(0) @binding(2) var<storage, read_write> clogm0: array<f32>;
@group(0) @binding(3) var<storage, read_write> coef_out: array<f32>;
@group(0) @binding(4) var<uniform> cp: CoeffParams;

fn reward(j: u32) -> f32 {
  var r = cm[j * 8u + cp.agg];
  if (cp.debias == 1u) {
    r -= c0[j * 8u + cp.agg];
  }
  return r;
}

@compute @workgroup_size(256)
fn gto_coeff(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= cp.count) {
    return;
  }
  let R = reward(i);
  var A = R;
  if (cp.m > 1u) {
    let g0 = (i / cp.m) * cp.m;
    let r0 = reward(g0);
    var mean = 0.0;
    for (var j = 0u; j < cp.m; j++) {
      mean += reward(g0 + j) - r0;
    }
    mean /= f32(cp.m);
    var ss = 0.0;
    for (var j = 0u; j < cp.m; j++) {
      let d = reward(g0 + j) - r0 - mean;
      ss += d * d;
    }
    var den = f32(cp.m);
    if (cp.sample == 1u) {
      den = f32(cp.m - 1u);
    }
    A = (R - r0 - mean) / (sqrt(ss / den) + cp.delta);
  }
  let l = cm[i * 8u + 3u];
  let dlog = cm[i * 8u + 4u] - clogm0[i];
  var s = 1.0;
  if (l > 0.0) {
    s = exp(dlog / l);
  }
  let lo = 1.0 - cp.eps;
  let hi = 1.0 + cp.eps;
  var unclipped = s >= lo;
  if (A >= 0.0) {
    unclipped = s <= hi;
  }
  var term = clamp(s, lo, hi) * A;
  var coeff = 0.0;
  var clipped = 1.0;
  if (unclipped) {
    term = s * A;
    clipped = 0.0;
    if (l > 0.0) {
      coeff = -A * s / (f32(cp.p_tot) * l);
    }
  }
  let o = i * 8u;
  coef_out[o] = R;
  coef_out[o + 1u] = A;
  coef_out[o + 2u] = s;
  coef_out[o + 3u] = coeff;
  coef_out[o + 4u] = term;
  coef_out[o + 5u] = clipped;
  coef_out[o + 6u] = l;
  coef_out[o + 7u] = dlog;
}

// ---------------------------------------------------------------------------------------------
// tree_positions

struct PosParams { rows: u32, per: u32, pre_off: u32, use_offs: u32, offs_off: u32, add: u32 }

@group(0) @binding(0) var<storage, read_write> ppre: array<u32>;
@group(0) @binding(1) var<storage, read_write> poffs: array<i32>;
@group(0) @binding(2) var<storage, read_write> pout: array<u32>;
@group(0) @binding(3) var<uniform> pp: PosParams;

@compute @workgroup_size(256)
fn tree_positions(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= pp.rows) {
    return;
  }
  var off = pp.add;
  if (pp.use_offs == 1u) {
    off = u32(poffs[pp.offs_off + i]);
  }
  pout[i] = ppre[pp.pre_off + i / pp.per] + off;
}

// ---------------------------------------------------------------------------------------------
// gto_hard_weights

struct HardParams { steps: u32, stride: u32, rows: u32, lcol: u32, vcol: u32, alpha: f32, beta: f32 }

@group(0) @binding(0) var<storage, read_write> hmap: array<i32>;
@group(0) @binding(1) var<storage, read_write> hsrc: array<f32>;
@group(0) @binding(2) var<storage, read_write> hw_out: array<f32>;
@group(0) @binding(3) var<uniform> hp: HardParams;

@compute @workgroup_size(256)
fn gto_hard_weights(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= hp.steps * hp.stride) {
    return;
  }
  let k = i / hp.stride;
  let t = i % hp.stride;
  var w = 0.0;
  if (t < hp.rows) {
    let p = hmap[t];
    if (p >= 0) {
      let o = u32(p) * 8u;
      if (f32(k) < hsrc[o + hp.lcol]) {
        w = hp.alpha * hsrc[o + hp.vcol] + hp.beta;
      }
    }
  }
  hw_out[i] = w;
}

// ---------------------------------------------------------------------------------------------
// gto_path_logprob

struct PathParams { count: u32, steps: u32, stride: u32 }

@group(0) @binding(0) var<storage, read_write> lrows: array<u32>;
@group(0) @binding(1) var<storage, read_write> lhloss: array<f32>;
@group(0) @binding(2) var<storage, read_write> lout: array<f32>;
@group(0) @binding(3) var<uniform> lp3: PathParams;

@compute @workgroup_size(256)
fn gto_path_logprob(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) lid: u32) {
  let p = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (p >= lp3.count) {
    return;
  }
  var s = 0.0;
  for (var k = 0u; k < lp3.steps; k++) {
    s -= lhloss[k * lp3.stride + lrows[p]];
  }
  lout[p] = s;
}
