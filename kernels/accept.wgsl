// Bookkeeping of GPU-resident speculative decoding: acceptance and KV compaction run on the GPU so a
// decode loop never waits for the CPU between cycles (Deno resolves readbacks ≥ 10 ms late).
//
// State words (u32, see packages/core/src/speculative/state.ts):
//   0 committed   tokens whose target KV is cached (prompt + accepted; the root is not)
//   1 out_len     output tokens so far (the first is the prefill's root)
//   2 done        1 once eos or max_tokens was reached (later cycles change nothing)
//   3 cycles      verification cycles run (while not done)
//   4 draft_len   draft KV rows kept (prefix pairs)
//   5 last_accept drafts accepted in the last cycle (bonus excluded)
//   6 prompt_len  P: ring[P] is the first output token
//   7 max_tokens
//   8 base        `committed` before the last cycle (KV compaction base)
//   9 draft_base  `draft_len` before the last cycle (draft extension base)
//   10 root       the next cycle's root token (the last bonus; after prefill, the target argmax)
//
// entry commit_path (one thread; the decode loop's commit after the pure `greedy_path` kernel in
//   greedy_path.wgsl): path_acc (2) = [L accepted drafts, bonus]; path_out (DP) the accepted node
//   indices (root first, padded); tokens: (N) tree tokens. New tokens: the accepted drafts then the
//   bonus; they go to ring[committed + 1 ..]. eos (ends, excluded) and max_tokens truncate and set
//   done. Writes seq (DP + 1): [root, accepted drafts.., bonus] padded; hist: hist[L] += 1
//   (accepted-length histogram), hist[DP + 1 + j] += 1 for each accepted depth j ≥ 1 (accepted per
//   position), and the per-cycle log hist[2·DP + 1 + cycle] = L for the first log_cap cycles; advances
//   the state. No-op once done. Slots 2 and 3 are unused by this entry point.
// entry accept_sample (T > 0; one workgroup of 256 threads): probs (N, V) filtered target
//   distribution after each node; parents (N) i32 (slot 2; slot 3 is unused).
//   Walk (thread 0; the tree is tiny): from the root, try the children of the current node in
//   increasing index; child x is accepted with probability p(x) / (1 − r), r = mass of the siblings
//   already rejected here (u·(1 − r) < p(x)); a rejected child's p(x) is zeroed in place (probs is
//   per-cycle scratch; a duplicate sibling then has p = 0 and is never accepted); a NONE token (≥ V,
//   from a NaN draft row) counts as p = 0 and is never read; on acceptance move to x (r = 0).
//   Bonus (all 256 threads), when all children are rejected or at a leaf: inverse CDF of the
//   (zeroed) row in index order, as `sample` in select.wgsl: thread t sums its contiguous chunk
//   [t·C, (t+1)·C), C = ⌈V/256⌉, an inclusive scan of the chunk sums gives the CDF at chunk ends,
//   goal = u·total, and the one thread whose [excl, incl) holds goal walks its chunk with goal − excl
//   from a running sum started at 0 (so weights far below ulp(excl) are not absorbed). Fallbacks:
//   goal ≥ total by rounding → the last positive-weight index; an all-zero residual (the children
//   covered the support and f32 rounding rejected them all) → the last rejected child with p > 0
//   (in exact arithmetic it is accepted with probability 1); a degenerate all-zero/NaN row → 0.
//   Lossless: the emitted sequence has the distribution of sampling from p token by token.
//   u_d = pcg(d + pcg(cycles + pcg(seed))) · 2⁻²⁴ for the d-th draw of the cycle (`acceptSampleRef`
//   replays the walk and the chunked draw on the CPU, bit for bit).
// entry kv_compact: one workgroup per call (one layer): for j = 0..L, cache row base + path[j] →
//   base + j, for K and V, sequentially in j (a destination may be a later source otherwise).
// entry kv_compact_all: the same for every layer in one dispatch, when a KvCache's layers lie in one
//   buffer at a fixed stride (KvCache.allocate's layout): `kv_all` spans them, workgroup w moves
//   layer w / 2's keys (w even) or values (w odd) at element offset (w / 2)·layer_words +
//   (w % 2)·v_words. 2·layers workgroups instead of `layers` dispatches.

struct AcceptParams {
  n: u32,        // tree nodes
  dp: u32,       // path length bound (max depth + 1)
  leaves_max: u32,
  n_eos: u32,
  v: u32,        // accept_sample: vocabulary size (row length of probs)
  seed: u32,     // accept_sample: RNG seed
  log_cap: u32,  // entries of the per-cycle accept-length log at hist[2·dp + 1 ..]
}

@group(0) @binding(0) var<storage, read_write> path_acc: array<u32>; // commit_path: [L, bonus]
@group(0) @binding(1) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> paths: array<i32>;
@group(0) @binding(4) var<storage, read_write> state: array<u32>;
@group(0) @binding(5) var<storage, read_write> ring: array<u32>;
@group(0) @binding(6) var<storage, read_write> path_out: array<u32>;
@group(0) @binding(7) var<storage, read_write> seq: array<u32>;
@group(0) @binding(8) var<storage, read_write> hist: array<u32>;
@group(0) @binding(9) var<storage, read_write> eos: array<u32>;
@group(0) @binding(0) var<storage, read_write> probs: array<f32>; // accept_sample (at the `path_acc` slot)
@group(0) @binding(10) var<uniform> ap: AcceptParams;

fn is_eos(t: u32) -> bool {
  for (var i = 0u; i < ap.n_eos; i++) {
    if (eos[i] == t) {
      return true;
    }
  }
  return false;
}

@compute @workgroup_size(1)
fn commit_path() {
  if (state[2] != 0u) {
    return;
  }
  let best_len = path_acc[0];
  for (var j = 0u; j <= best_len; j++) {
    seq[j] = tokens[path_out[j]];
  }
  finish_cycle(best_len, path_acc[1]);
}

// After path_out[0..L] and seq[0..L] are set: pad them, emit drafts 1..L then the bonus into the ring
// (stopping at eos or max_tokens), update the histograms and advance the state.
fn finish_cycle(best_len: u32, bonus: u32) {
  let committed = state[0];
  for (var j = best_len + 1u; j < ap.dp; j++) {
    path_out[j] = path_out[best_len];
  }
  for (var j = best_len + 1u; j <= ap.dp; j++) {
    seq[j] = bonus;
  }
  var out_len = state[1];
  var done = 0u;
  if (out_len == 1u && state[3] == 0u && is_eos(ring[state[6]])) { // the prefill's root is eos
    out_len = 0u;
    done = 1u;
  }
  for (var j = 1u; j <= best_len + 1u && done == 0u; j++) {
    let t = seq[j];
    if (is_eos(t)) {
      done = 1u;
      break;
    }
    ring[committed + j] = t;
    out_len += 1u;
    if (out_len >= state[7]) {
      done = 1u;
    }
  }
  hist[best_len] += 1u;
  for (var j = 1u; j <= best_len; j++) {
    hist[ap.dp + 1u + j] += 1u;
  }
  if (state[3] < ap.log_cap) {
    hist[2u * ap.dp + 1u + state[3]] = best_len;
  }
  state[8] = committed;
  state[9] = state[4];
  state[0] = committed + best_len + 1u;
  state[4] = state[4] + best_len + 1u;
  state[5] = best_len;
  state[1] = out_len;
  state[2] = done;
  state[3] += 1u;
  state[10] = bonus;
}

fn pcg(v: u32) -> u32 {
  let st = v * 747796405u + 2891336453u;
  let word = ((st >> ((st >> 28u) + 4u)) ^ st) * 277803737u;
  return (word >> 22u) ^ word;
}

fn uniform01(d: u32) -> f32 {
  let h = pcg(d + pcg(state[3] + pcg(ap.seed)));
  return f32(h >> 8u) * (1.0 / 16777216.0);
}

const NONE: u32 = 0xffffffffu;

// accept_sample: the walk's result, handed from thread 0 to the workgroup.
var<workgroup> s_active: u32;   // 1 unless the state was already done
var<workgroup> s_cur: u32;      // node whose (zeroed) row the bonus is drawn from
var<workgroup> s_len: u32;      // drafts accepted
var<workgroup> s_u: f32;        // the bonus draw's uniform
var<workgroup> s_fallback: u32; // last rejected child with p > 0 at s_cur (NONE if none)
var<workgroup> s_goal: f32;     // u · total (from memory, so `goal − excl` cannot be fused with it)
var<workgroup> s_scan: array<f32, 256>;
var<workgroup> s_pick: atomic<u32>;
var<workgroup> s_last: atomic<u32>; // 1 + the last positive-weight index of the row (0: none)

// Thread 0: the rejection walk down the tree; writes path_out / seq [0..len] and the s_* hand-over.
fn sample_walk() {
  atomicStore(&s_pick, NONE);
  atomicStore(&s_last, 0u);
  s_cur = 0u;
  s_len = 0u;
  s_fallback = NONE;
  s_active = select(1u, 0u, state[2] != 0u);
  if (s_active == 0u) {
    return;
  }
  var cur = 0u;
  var len = 0u;
  var r = 0.0;
  var d = 0u;
  var fallback = NONE;
  path_out[0] = 0u;
  seq[0] = tokens[0];
  loop {
    var accepted = false;
    var has_child = false;
    for (var c = cur + 1u; c < ap.n; c++) {
      if (paths[c] != i32(cur)) {
        continue;
      }
      has_child = true;
      let x = tokens[c];
      var px = 0.0;
      if (x < ap.v) {
        px = probs[cur * ap.v + x];
      }
      let u = uniform01(d);
      d += 1u;
      if (u * (1.0 - r) < px) {
        accepted = true;
        len += 1u;
        path_out[len] = c;
        seq[len] = x;
        cur = c;
        r = 0.0;
        fallback = NONE;
        break;
      }
      r += px;
      if (px > 0.0) {
        probs[cur * ap.v + x] = 0.0;
        fallback = x;
      }
    }
    if (!accepted || !has_child || len + 1u >= ap.dp) {
      break;
    }
  }
  s_cur = cur;
  s_len = len;
  s_u = uniform01(d);
  s_fallback = fallback;
}

@compute @workgroup_size(256)
fn accept_sample(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) {
    sample_walk();
  }
  storageBarrier(); // the zeroed probs entries
  workgroupBarrier(); // the s_* hand-over
  // Bonus: inverse CDF of row s_cur over contiguous chunks (see the header).
  let n = ap.v;
  let base = s_cur * n;
  let chunk = (n + 255u) / 256u;
  let lo = min(lid * chunk, n);
  var hi = min(lo + chunk, n);
  if (s_active == 0u) {
    hi = lo;
  }
  var cs = 0.0;
  var last = NONE;
  for (var i = lo; i < hi; i++) {
    let w = probs[base + i];
    cs += w;
    if (w > 0.0) {
      last = i;
    }
  }
  if (last != NONE) {
    atomicMax(&s_last, last + 1u);
  }
  s_scan[lid] = cs;
  workgroupBarrier();
  for (var off = 1u; off < 256u; off <<= 1u) {
    var v = 0.0;
    if (lid >= off) {
      v = s_scan[lid - off];
    }
    workgroupBarrier();
    s_scan[lid] += v;
    workgroupBarrier();
  }
  if (lid == 0u) {
    s_goal = s_u * s_scan[255];
  }
  workgroupBarrier();
  let goal = s_goal;
  let incl = s_scan[lid];
  var excl = 0.0;
  if (lid > 0u) {
    excl = s_scan[lid - 1u];
  }
  if (excl <= goal && goal < incl) {
    let g = goal - excl; // relative to the chunk start
    var acc = 0.0;
    var pick = last; // rounding fallback: the chunk's last positive-weight index
    for (var i = lo; i < hi; i++) {
      let w = probs[base + i];
      acc += w;
      if (w > 0.0 && acc > g) {
        pick = i;
        break;
      }
    }
    atomicMin(&s_pick, pick);
  }
  workgroupBarrier();
  if (lid != 0u || s_active == 0u) {
    return;
  }
  var bonus = atomicLoad(&s_pick);
  if (bonus == NONE) {
    let lp = atomicLoad(&s_last);
    if (lp > 0u) {
      bonus = lp - 1u; // goal ≥ total by rounding
    } else if (s_fallback != NONE) {
      bonus = s_fallback; // empty residual: the children covered the support
    } else {
      bonus = 0u; // degenerate row (all zero or NaN)
    }
  }
  finish_cycle(s_len, bonus);
}

struct CompactParams {
  row_words: u32, // f32 per cache row
  dp: u32,
}

@group(0) @binding(0) var<storage, read_write> kc: array<f32>;
@group(0) @binding(1) var<storage, read_write> vc: array<f32>;
@group(0) @binding(2) var<storage, read_write> cstate: array<u32>;
@group(0) @binding(3) var<storage, read_write> cpath: array<u32>;
@group(0) @binding(4) var<uniform> cp: CompactParams;

struct CompactAllParams {
  row_words: u32,   // f32 per cache row
  dp: u32,
  layer_words: u32, // f32 from one layer's k to the next layer's k
  v_words: u32,     // f32 from a layer's k to its v
}

@group(0) @binding(0) var<storage, read_write> kv_all: array<f32>;
@group(0) @binding(1) var<storage, read_write> astate: array<u32>;
@group(0) @binding(2) var<storage, read_write> apath: array<u32>;
@group(0) @binding(3) var<uniform> cap: CompactAllParams;

@compute @workgroup_size(64)
fn kv_compact_all(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let base = astate[8];
  let L = astate[5];
  let off = (wg.x / 2u) * cap.layer_words + (wg.x % 2u) * cap.v_words;
  for (var j = 1u; j <= L; j++) { // j = 0 is the root: already in place
    let src = off + (base + apath[j]) * cap.row_words;
    let dst = off + (base + j) * cap.row_words;
    for (var c = lid; c < cap.row_words; c += 64u) {
      kv_all[dst + c] = kv_all[src + c];
    }
    storageBarrier();
  }
}

@compute @workgroup_size(64)
fn kv_compact(@builtin(local_invocation_index) lid: u32) {
  let base = cstate[8];
  let L = cstate[5];
  for (var j = 1u; j <= L; j++) { // j = 0 is the root: already in place
    let src = (base + cpath[j]) * cp.row_words;
    let dst = (base + j) * cp.row_words;
    for (var c = lid; c < cp.row_words; c += 64u) {
      kc[dst + c] = kc[src + c];
      vc[dst + c] = vc[src + c];
    }
    storageBarrier();
  }
}
