// Per-cycle trace of speculative decoding (opt-in, for the playground): copies the small buffers that
// describe one verification cycle into slot `slot` of a trace buffer, so a whole readback batch of
// cycles comes back with the batch's one readback (no extra CPU round trip).
//
// entry trace_record (one 64-thread workgroup): trace[slot·W ..] = tokens (N) | parents (N) | depths (N)
//   | path (DP) | seq (DP + 1) | state (SW), W = 3N + 2·DP + 1 + SW. Values are copied as raw 32-bit
//   words (i32 parents/depths keep their bit patterns).
//
// All bindings are read_write: tensors share arena buffers (see packages/core/src/gpu/kernel.ts).

struct Params {
  n: u32,    // tree nodes
  dp: u32,   // path width
  sw: u32,   // state words
  slot: u32, // cycle slot in the trace buffer
}

@group(0) @binding(0) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(1) var<storage, read_write> parents: array<u32>;
@group(0) @binding(2) var<storage, read_write> depths: array<u32>;
@group(0) @binding(3) var<storage, read_write> path: array<u32>;
@group(0) @binding(4) var<storage, read_write> seq: array<u32>;
@group(0) @binding(5) var<storage, read_write> state: array<u32>;
@group(0) @binding(6) var<storage, read_write> trace: array<u32>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(64)
fn trace_record(@builtin(local_invocation_index) lid: u32) {
  let w = 3u * p.n + 2u * p.dp + 1u + p.sw;
  let base = p.slot * w;
  for (var i = lid; i < p.n; i += 64u) {
    trace[base + i] = tokens[i];
    trace[base + p.n + i] = parents[i];
    trace[base + 2u * p.n + i] = depths[i];
  }
  let b2 = base + 3u * p.n;
  for (var i = lid; i < p.dp; i += 64u) {
    trace[b2 + i] = path[i];
  }
  for (var i = lid; i <= p.dp; i += 64u) {
    trace[b2 + p.dp + i] = seq[i];
  }
  for (var i = lid; i < p.sw; i += 64u) {
    trace[b2 + 2u * p.dp + 1u + i] = state[i];
  }
}
