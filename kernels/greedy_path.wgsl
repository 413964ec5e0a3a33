// T=0 tree acceptance as a pure function of one or more verified trees: no decoder state, no token
// ring, no histogram (those are the decode loop's commit, `commit_path` in accept.wgsl), so the
// speculative decoder and GPU training (GTO: "the path the decoder would accept") run the same code.
// CPU reference: acceptGreedyRef in packages/core/src/speculative/accept_ref.ts.
//
// entry greedy_path (one 64-thread workgroup per tree p < P; N ≤ 64 nodes, leaves ≤ 64):
//   am (P, N) target argmax after each node; tokens (P, N) tree tokens, root first;
//   paths (P, leaves_max, DP) root→leaf node indices, −1 padded; leaf count of tree p at
//   n_leaves[lc_index + p·lc_stride].
//   Path i accepts its longest prefix with tokens[path[j]] == am[path[j−1]]; the first path with the
//   most accepted wins (EAGLE's evaluate_posterior, greedy). Writes
//   path_out (P, DP): accepted node indices, root first, padded by repeating the last one;
//   result (P, 2): [L = accepted drafts (bonus excluded), bonus = am[last accepted node]].
//
// All bindings are read_write: tensors share arena buffers (see packages/core/src/gpu/kernel.ts).

struct Params {
  n: u32,          // nodes per tree
  dp: u32,         // path width (max depth + 1)
  leaves_max: u32, // rows of each tree's paths
  lc_index: u32,   // leaf count of tree 0 in n_leaves
  lc_stride: u32,  // words between consecutive trees' leaf counts
}

@group(0) @binding(0) var<storage, read_write> am: array<u32>;
@group(0) @binding(1) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> paths: array<i32>;
@group(0) @binding(3) var<storage, read_write> n_leaves: array<u32>;
@group(0) @binding(4) var<storage, read_write> path_out: array<u32>;
@group(0) @binding(5) var<storage, read_write> result: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

var<workgroup> acc_len: array<u32, 64>;

@compute @workgroup_size(64)
fn greedy_path(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tree = wg.x;
  let nb = tree * p.n;                         // node base in am / tokens
  let pb = tree * p.leaves_max * p.dp;          // path base
  let nl = min(n_leaves[p.lc_index + tree * p.lc_stride], p.leaves_max);
  var len = 0u;
  if (lid < nl) {
    let row = pb + lid * p.dp;
    for (var j = 1u; j < p.dp; j++) {
      let node = paths[row + j];
      if (node < 0) {
        break;
      }
      let prev = u32(paths[row + j - 1u]);
      if (tokens[nb + u32(node)] != am[nb + prev]) {
        break;
      }
      len = j;
    }
  }
  acc_len[lid] = len;
  workgroupBarrier();
  if (lid != 0u) {
    return;
  }
  var best = 0u;
  var best_len = 0u;
  for (var i = 0u; i < nl; i++) {
    if (acc_len[i] > best_len) {
      best_len = acc_len[i];
      best = i;
    }
  }
  let row = pb + best * p.dp;
  for (var j = 0u; j < p.dp; j++) {
    path_out[tree * p.dp + j] = u32(paths[row + min(j, best_len)]);
  }
  result[2u * tree] = best_len;
  result[2u * tree + 1u] = am[nb + u32(paths[row + best_len])];
}
