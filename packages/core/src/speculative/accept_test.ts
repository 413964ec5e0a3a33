import { deepEqual, equal } from "node:assert/strict";
import { commitPath, kvCompact } from "./accept.ts";
import { greedyPath } from "./greedy_path.ts";
import { acceptGreedyRef } from "./accept_ref.ts";
import { STATE, STATE_WORDS } from "./state.ts";
import { rng, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";

/** A random tree: parents[i] < i; returns root→leaf paths (leaves in increasing index), −1 padded. */
function randomTree(n: number, seed: number): { parents: number[]; paths: number[][]; dp: number } {
  const r = rng(seed);
  const parents = [-1];
  for (let i = 1; i < n; i++) parents.push(Math.floor(r() * Math.min(i, 6 + i / 3)));
  const isParent = new Set(parents.slice(1));
  const paths: number[][] = [];
  for (let i = 0; i < n; i++) {
    if (isParent.has(i)) continue;
    const p: number[] = [];
    for (let c = i; c >= 0; c = parents[c]) p.unshift(c);
    paths.push(p);
  }
  const dp = Math.max(...paths.map((p) => p.length));
  return { parents, paths, dp };
}

Deno.test("greedyPath + commitPath + kvCompact match the reference on random trees", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 20, "accept");
  for (let seed = 1; seed <= 12; seed++) {
    arena.reset();
    const n = [1, 5, 20, 60][seed % 4];
    const { parents, paths, dp } = randomTree(n, seed);
    const r = rng(seed + 100);
    const V = 6; // tiny vocabulary so that paths match often
    const tokens = Array.from({ length: n }, () => Math.floor(r() * V));
    // The target argmax follows the tree along a random path now and then.
    const argmax = Array.from({ length: n }, () => Math.floor(r() * V));
    for (let i = 1; i < n; i++) if (r() < 0.6) argmax[parents[i]] = tokens[i];
    const D = dp + 1;
    const flat = new Int32Array(64 * dp).fill(-1);
    paths.forEach((p, i) => p.forEach((v, j) => (flat[i * dp + j] = v)));
    const ref = acceptGreedyRef(tokens, argmax, flat, paths.length, dp);
    const P = 7, committed = 11, maxTokens = seed % 3 === 0 ? 3 : 100;
    const eosId = seed % 5 === 0 ? ref.tokens[Math.min(1, ref.acceptLength)] : 99;
    const state = new Uint32Array(STATE_WORDS);
    state[STATE.committed] = committed;
    state[STATE.outLen] = 2;
    state[STATE.cycles] = 1;
    state[STATE.draftLen] = 9;
    state[STATE.promptLen] = P;
    state[STATE.maxTokens] = maxTokens;
    const ring0 = new Uint32Array(committed + D + 4).fill(77);
    const b = {
      argmax: arena.upload(new Uint32Array(argmax), [n], "u32", "argmax"),
      tokens: arena.upload(new Uint32Array(tokens), [n], "u32", "tokens"),
      paths: arena.upload(flat, [64, dp], "i32", "paths"),
      leafCount: arena.upload(new Uint32Array([paths.length]), [1], "u32", "leafCount"),
      state: arena.upload(state, [STATE_WORDS], "u32", "state"),
      ring: arena.upload(ring0, [ring0.length], "u32", "ring"),
      path: arena.alloc([dp], "u32", "path"),
      result: arena.alloc([1, 2], "u32", "result"),
      seq: arena.alloc([dp + 1], "u32", "seq"),
      hist: arena.upload(new Uint32Array(2 * dp + 1 + 4), [2 * dp + 1 + 4], "u32", "hist"),
      eos: arena.upload(new Uint32Array([eosId, 98]), [2], "u32", "eos"),
    };
    const rowW = 3, S = committed + n + 2;
    const kInit = new Float32Array(S * rowW).map((_, i) => i);
    const kc = arena.upload(kInit, [S, rowW], "f32", "k"),
      vc = arena.upload(kInit.map((x) => -x), [S, rowW], "f32", "v");
    // The pure path (P = 1 tree; (1, DP) output), then the loop's commit over the same path buffer.
    greedyPath(rec, { ...b, leafCount: { meta: b.leafCount, index: 0 }, path: b.path.reshape([1, dp]) });
    commitPath(rec, b, 2);
    kvCompact(rec, kc, vc, b.state, b.path);
    const name = `seed ${seed} n=${n}`;
    const st = await rec.read(b.state) as Uint32Array;
    const ring = await rec.read(b.ring) as Uint32Array;
    const path = await rec.read(b.path) as Uint32Array;
    const seq = await rec.read(b.seq) as Uint32Array;
    const hist = await rec.read(b.hist) as Uint32Array;
    const L = ref.acceptLength;
    deepEqual(Array.from(path.subarray(0, L + 1)), ref.nodes, `${name}: path`);
    deepEqual(Array.from(seq.subarray(0, L + 2)), [...ref.tokens, ref.bonus], `${name}: seq`);
    // Expected output: drafts then bonus, cut at eos (excluded) or at maxTokens.
    const emitted: number[] = [];
    let done = 0, outLen = 2;
    for (const t of [...ref.tokens.slice(1), ref.bonus]) {
      if (t === eosId || t === 98) {
        done = 1;
        break;
      }
      emitted.push(t);
      if (++outLen >= maxTokens) {
        done = 1;
        break;
      }
    }
    deepEqual(
      Array.from(ring.subarray(committed + 1, committed + 1 + emitted.length)),
      emitted,
      `${name}: ring`,
    );
    equal(ring[committed + 1 + emitted.length], 77, `${name}: ring beyond output untouched`);
    equal(st[STATE.outLen], outLen, `${name}: outLen`);
    equal(st[STATE.done], done, `${name}: done`);
    equal(st[STATE.committed], committed + L + 1, `${name}: committed`);
    equal(st[STATE.base], committed);
    equal(st[STATE.draftLen], 9 + L + 1);
    equal(st[STATE.draftBase], 9);
    equal(st[STATE.lastAccept], L);
    equal(st[STATE.root], ref.bonus, `${name}: next root`);
    equal(st[STATE.cycles], 2);
    equal(hist[L], 1, `${name}: histogram`);
    for (let j = 1; j <= L; j++) equal(hist[dp + 1 + j], 1);
    equal(hist[2 * dp + 1 + 1], L, `${name}: per-cycle log at cycle 1`);
    const k = await rec.readF32(kc), v = await rec.readF32(vc);
    const kExp = kInit.slice();
    for (let j = 1; j <= L; j++) {
      kExp.copyWithin(
        (committed + j) * rowW,
        (committed + ref.nodes[j]) * rowW,
        (committed + ref.nodes[j] + 1) * rowW,
      );
    }
    deepEqual(Array.from(k), Array.from(kExp), `${name}: K compaction`);
    deepEqual(Array.from(v), Array.from(kExp.map((x) => -x)), `${name}: V compaction`);
  }
  arena.destroy();
});
