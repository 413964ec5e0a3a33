import { deepEqual, equal, ok } from "node:assert/strict";
import { acceptSample } from "./accept.ts";
import { acceptSampleRef } from "./accept_ref.ts";
import { STATE, STATE_WORDS } from "./state.ts";
import { rng, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";
import { sampleUniform } from "../ops/select.ts";

/** Random distribution rows with a few zeros (as top-k/top-p filtering leaves them). */
function randomProbs(rows: number, V: number, seed: number): Float32Array {
  const r = rng(seed);
  const p = new Float32Array(rows * V);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let v = 0; v < V; v++) {
      const w = r() < 0.15 ? 0 : r() ** 2;
      p[i * V + v] = w;
      s += w;
    }
    for (let v = 0; v < V; v++) p[i * V + v] = Math.fround(p[i * V + v] / s);
  }
  return p;
}

// Tree: root 0 with children 1, 2, 3 (tokens 0, 2, 4); node 2 has children 4, 5 (tokens 1, 3); node 4 has child 6.
const PARENTS = [-1, 0, 0, 0, 2, 2, 4];
const TOKENS = [9, 0, 2, 4, 1, 3, 0];

function chiSquareOk(counts: number[], probs: ArrayLike<number>, n: number, what: string): void {
  let chi2 = 0, df = -1;
  for (let v = 0; v < counts.length; v++) {
    const e = probs[v] * n;
    if (e === 0) {
      equal(counts[v], 0, `${what}: token ${v} has probability 0 but was drawn`);
      continue;
    }
    chi2 += (counts[v] - e) ** 2 / e;
    df++;
  }
  // χ² critical values at p = 0.001 for df ≤ 9.
  const crit = [10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88][df - 1];
  ok(chi2 < crit, `${what}: χ² = ${chi2.toFixed(2)} ≥ ${crit} (df ${df})`);
}

Deno.test("T>0 tree acceptance is lossless: emitted tokens follow the target distribution (χ², reference)", () => {
  const V = 6, n = 30000;
  const probs = randomProbs(TOKENS.length, V, 7);
  const r = rng(12345);
  const first = new Array(V).fill(0);
  const afterNode2 = new Array(V).fill(0); // second token given the first was node 2's token
  let n2 = 0;
  for (let i = 0; i < n; i++) {
    const res = acceptSampleRef(TOKENS, PARENTS, probs, V, 4, () => r());
    const emitted = [...res.tokens.slice(1), res.bonus];
    first[emitted[0]]++;
    if (res.nodes[1] === 2) {
      afterNode2[emitted[1]]++;
      n2++;
    }
  }
  chiSquareOk(first, probs.subarray(0, V), n, "first token vs p(root)");
  chiSquareOk(afterNode2, probs.subarray(2 * V, 3 * V), n2, "second token vs p(node 2)");
  ok(n2 > 1000, `node 2 accepted ${n2} times`);
});

Deno.test("acceptSample on the GPU replays the reference exactly (path, tokens, ring, state)", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 20, "accept-sample");
  const V = 300, dp = 4;
  const lengths = new Set<number>();
  for (let seed = 1; seed <= 16; seed++) {
    arena.reset();
    const probs = randomProbs(TOKENS.length, V, seed);
    // On odd seeds put most of each row's mass on its drafted children, so long paths get accepted.
    if (seed % 2) {
      for (let c = 1; c < TOKENS.length; c++) probs[PARENTS[c] * V + TOKENS[c]] += 2;
      for (let i = 0; i < TOKENS.length; i++) {
        const row = probs.subarray(i * V, (i + 1) * V);
        const s = row.reduce((a, b) => a + b, 0);
        row.forEach((v, j) => (row[j] = Math.fround(v / s)));
      }
    }
    const cycles = seed * 3, committed = 20;
    const ref = acceptSampleRef(TOKENS, PARENTS, probs, V, dp, (d) => sampleUniform(seed, cycles, d));
    const state = new Uint32Array(STATE_WORDS);
    state[STATE.committed] = committed;
    state[STATE.outLen] = 3;
    state[STATE.cycles] = cycles;
    state[STATE.promptLen] = 10;
    state[STATE.maxTokens] = 1000;
    const b = {
      probs: arena.upload(probs, [TOKENS.length, V], "f32", "probs"),
      tokens: arena.upload(new Uint32Array(TOKENS), [TOKENS.length], "u32", "tokens"),
      parents: arena.upload(new Int32Array(PARENTS), [TOKENS.length], "i32", "parents"),
      state: arena.upload(state, [STATE_WORDS], "u32", "state"),
      ring: arena.upload(new Uint32Array(40), [40], "u32", "ring"),
      path: arena.alloc([dp], "u32", "path"),
      seq: arena.alloc([dp + 1], "u32", "seq"),
      hist: arena.upload(new Uint32Array(2 * dp + 1), [2 * dp + 1], "u32", "hist"), // no per-cycle log
      eos: arena.upload(new Uint32Array([99999]), [1], "u32", "eos"),
    };
    acceptSample(rec, b, dp, 1, seed);
    const L = ref.nodes.length - 1;
    const path = await rec.read(b.path) as Uint32Array;
    const seq = await rec.read(b.seq) as Uint32Array;
    const ring = await rec.read(b.ring) as Uint32Array;
    const st = await rec.read(b.state) as Uint32Array;
    deepEqual(Array.from(path.subarray(0, L + 1)), ref.nodes, `seed ${seed}: path`);
    deepEqual(Array.from(seq.subarray(0, L + 2)), [...ref.tokens, ref.bonus], `seed ${seed}: seq`);
    deepEqual(Array.from(ring.subarray(committed + 1, committed + L + 2)), [
      ...ref.tokens.slice(1),
      ref.bonus,
    ]);
    equal(st[STATE.committed], committed + L + 1);
    equal(st[STATE.outLen], 3 + L + 1);
    equal(st[STATE.lastAccept], L);
    equal(st[STATE.root], ref.bonus, `seed ${seed}: next root`);
    lengths.add(L);
  }
  ok(lengths.size >= 3, `accepted lengths seen: ${[...lengths]}`);
  arena.destroy();
});

Deno.test("acceptSample at a real vocabulary size (8192) replays the reference, padding included", async () => {
  // Regression: with a runtime-indexed private array for the rejected tokens, llvmpipe never drew
  // some tokens and skipped the padding loops (the fix zeroes rejected p(x) in the probs row).
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 22, "accept-sample-8192");
  const V = 8192, dp = 4;
  const tokens = [2947, 22, 468, 28, 28, 468], parents = [-1, 0, 0, 0, 1, 1];
  const probs = new Float32Array(tokens.length * V);
  probs[422] = 0.256;
  probs[2947] = 0.288;
  probs[4599] = 0.456;
  probs[22] = 0; // the drafted children have no mass: all rejected, bonus from the root row
  for (let r = 1; r < tokens.length; r++) probs[r * V + 5] = 1;
  const seen = new Set<number>();
  for (let seed = 1; seed <= 24; seed++) {
    arena.reset();
    const st = new Uint32Array(STATE_WORDS);
    st[STATE.committed] = 10;
    st[STATE.outLen] = 1;
    st[STATE.maxTokens] = 100;
    st[STATE.promptLen] = 10;
    const b = {
      probs: arena.upload(probs, [tokens.length, V], "f32", "probs"),
      tokens: arena.upload(new Uint32Array(tokens), [tokens.length], "u32", "tokens"),
      parents: arena.upload(new Int32Array(parents), [tokens.length], "i32", "parents"),
      state: arena.upload(st, [STATE_WORDS], "u32", "state"),
      ring: arena.upload(new Uint32Array(40), [40], "u32", "ring"),
      path: arena.alloc([dp], "u32", "path"),
      seq: arena.alloc([dp + 1], "u32", "seq"),
      hist: arena.upload(new Uint32Array(2 * dp + 1), [2 * dp + 1], "u32", "hist"),
      eos: arena.upload(new Uint32Array(1), [1], "u32", "eos"),
    };
    acceptSample(rec, b, dp, 0, seed);
    const ref = acceptSampleRef(tokens, parents, probs, V, dp, (d) => sampleUniform(seed, 0, d));
    const seq = await rec.read(b.seq) as Uint32Array;
    const L = ref.nodes.length - 1;
    deepEqual(Array.from(seq), [...ref.tokens, ...new Array(dp + 1 - L - 1).fill(ref.bonus)], `seed ${seed}`);
    seen.add(ref.bonus);
  }
  ok(seen.has(2947) && seen.has(422) && seen.has(4599), `bonus tokens seen: ${[...seen]}`);
  arena.destroy();
});
