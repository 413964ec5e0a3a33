/**
 * The pure T=0 path kernel against `acceptGreedyRef` on P = 3 random trees per dispatch (odd node and
 * path counts, strided leaf counts), and its input checks.
 * @module
 */
import { deepEqual, throws } from "node:assert/strict";
import { greedyPath } from "./greedy_path.ts";
import { acceptGreedyRef } from "./accept_ref.ts";
import { rng, testGpu } from "../testing/mod.ts";
import { BufferArena } from "../gpu/arena.ts";

/** A random tree of n nodes: root→leaf paths (leaves in increasing index), its depth bound. */
function randomTree(n: number, r: () => number): { parents: number[]; paths: number[][] } {
  const parents = [-1];
  for (let i = 1; i < n; i++) parents.push(Math.floor(r() * Math.min(i, 3 + i / 4)));
  const isParent = new Set(parents.slice(1));
  const paths: number[][] = [];
  for (let i = 0; i < n; i++) {
    if (isParent.has(i)) continue;
    const p: number[] = [];
    for (let c = i; c >= 0; c = parents[c]) p.unshift(c);
    paths.push(p);
  }
  return { parents, paths };
}

Deno.test("greedyPath: P = 3 trees per dispatch match acceptGreedyRef", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 20, "greedy-path");
  try {
    for (let seed = 1; seed <= 6; seed++) {
      arena.reset();
      const r = rng(seed);
      const P = 3, N = [5, 23, 41, 64][seed % 4];
      const trees = Array.from({ length: P }, () => randomTree(N, r));
      const dp = Math.max(...trees.flatMap((t) => t.paths.map((p) => p.length)));
      const leavesMax = N - 1, stride = 5, V = 5;
      const tokens: number[] = [], am: number[] = [];
      const flat = new Int32Array(P * leavesMax * dp).fill(-1);
      const counts = new Uint32Array(2 + P * stride).fill(999);
      trees.forEach((t, p) => {
        const tok = Array.from({ length: N }, () => Math.floor(r() * V));
        const a = Array.from({ length: N }, () => Math.floor(r() * V));
        for (let i = 1; i < N; i++) if (r() < 0.6) a[t.parents[i]] = tok[i];
        tokens.push(...tok);
        am.push(...a);
        t.paths.forEach((path, i) => path.forEach((v, j) => (flat[(p * leavesMax + i) * dp + j] = v)));
        counts[2 + p * stride] = t.paths.length;
      });
      const path = arena.alloc([P, dp], "u32", "path");
      const result = arena.alloc([P, 2], "u32", "result");
      greedyPath(rec, {
        argmax: arena.upload(new Uint32Array(am), [P * N], "u32", "argmax"),
        tokens: arena.upload(new Uint32Array(tokens), [P, N], "u32", "tokens"),
        paths: arena.upload(flat, [P * leavesMax, dp], "i32", "paths"),
        leafCount: { meta: arena.upload(counts, [counts.length], "u32", "counts"), index: 2, stride },
        path,
        result,
      });
      const got = await rec.read(path) as Uint32Array, res = await rec.read(result) as Uint32Array;
      for (let p = 0; p < P; p++) {
        const name = `seed ${seed} N ${N} tree ${p}`;
        const ref = acceptGreedyRef(
          tokens.slice(p * N, (p + 1) * N),
          am.slice(p * N, (p + 1) * N),
          flat.subarray(p * leavesMax * dp, (p + 1) * leavesMax * dp),
          trees[p].paths.length,
          dp,
        );
        const L = ref.acceptLength;
        const padded = Array.from({ length: dp }, (_, j) => ref.nodes[Math.min(j, L)]);
        deepEqual(Array.from(got.subarray(p * dp, (p + 1) * dp)), padded, `${name}: path`);
        deepEqual([res[2 * p], res[2 * p + 1]], [L, ref.bonus], `${name}: [L, bonus]`);
      }
    }
    // Input checks.
    const t = arena.alloc([8], "u32", "t"), paths = arena.alloc([7, 3], "i32", "paths");
    const lc = { meta: arena.alloc([1], "u32", "lc"), index: 0 };
    const base = { argmax: t, tokens: t, paths, leafCount: lc, path: arena.alloc([1, 3], "u32", "p") };
    throws(
      () => greedyPath(rec, { ...base, result: arena.alloc([1, 3], "u32", "r") }),
      /r: expected shape \[1,2\]/,
    );
    throws(
      () =>
        greedyPath(rec, {
          ...base,
          result: arena.alloc([1, 2], "u32", "r"),
          argmax: arena.alloc([7], "u32"),
        }),
      /expected P·N = 8/,
    );
    const big = arena.alloc([65], "u32", "big");
    throws(
      () =>
        greedyPath(rec, {
          ...base,
          argmax: big,
          tokens: big,
          paths: arena.alloc([64, 3], "i32"),
          result: arena.alloc([1, 2], "u32"),
        }),
      /at most 64/,
    );
  } finally {
    arena.destroy();
  }
});
