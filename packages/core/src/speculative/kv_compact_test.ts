import { deepEqual, equal, ok } from "node:assert/strict";
import { kvCacheLayout, kvCompactAll } from "./kv_compact.ts";
import { kvCompact } from "./accept.ts";
import { STATE, STATE_WORDS } from "./state.ts";
import { KvCache } from "../model/kv_cache.ts";
import { BufferArena, writeTensor } from "../gpu/arena.ts";
import { randn, testGpu } from "../testing/mod.ts";

Deno.test("kvCompactAll: one dispatch for every layer, equal to the sequential row moves and to per-layer kvCompact", async () => {
  const { gpu, rec } = await testGpu();
  const arena = new BufferArena(gpu, 1 << 16, "state");
  // layers, capacity, rowWidth (odd), base, accepted path (path[j] ≥ j; j = 2's source row 3 is
  // j = 3's destination and j = 1's destination row 1... every overlap pattern of a real path)
  const cases: [number, number, number, number, number[]][] = [
    [3, 40, 12, 5, [0, 2, 3, 7, 8]],
    [1, 20, 7, 0, [0, 1, 5]],
    [6, 33, 64, 10, [0, 4, 9, 10, 11, 19, 22]],
    [2, 16, 3, 2, [0]], // nothing accepted
  ];
  for (const [layers, S, W, base, path] of cases) {
    arena.reset();
    const L = path.length - 1;
    const state = new Uint32Array(STATE_WORDS);
    state[STATE.base] = base;
    state[STATE.lastAccept] = L;
    const tState = arena.upload(state, [STATE_WORDS], "u32", "state");
    const tPath = arena.upload(new Uint32Array([...path, 0, 0]), [path.length + 2], "u32", "path");
    const init = Array.from({ length: 2 * layers }, (_, i) => randn(S * W, 31 * i + S));
    const fill = (kv: KvCache) => {
      for (let l = 0; l < layers; l++) {
        writeTensor(gpu, kv.k[l], init[2 * l]);
        writeTensor(gpu, kv.v[l], init[2 * l + 1]);
      }
    };
    const a = KvCache.allocate(gpu, { layers, capacity: S, rowWidth: W }, "a");
    const b = KvCache.allocate(gpu, { layers, capacity: S, rowWidth: W }, "b");
    ok(kvCacheLayout(a), "KvCache.allocate's layout is one buffer at a fixed stride");
    fill(a);
    fill(b);
    const d0 = rec.stats.dispatches;
    kvCompactAll(rec, a, tState, tPath);
    equal(rec.stats.dispatches - d0, 1, "one dispatch");
    for (let l = 0; l < layers; l++) kvCompact(rec, b.k[l], b.v[l], tState, tPath);
    for (let l = 0; l < layers; l++) {
      for (const [t, ti, u] of [[a.k[l], 2 * l, b.k[l]], [a.v[l], 2 * l + 1, b.v[l]]] as const) {
        const want = init[ti].slice(); // CPU: the documented sequential moves
        for (let j = 1; j <= L; j++) {
          want.copyWithin((base + j) * W, (base + path[j]) * W, (base + path[j] + 1) * W);
        }
        const got = await rec.readF32(t);
        deepEqual(Array.from(got), Array.from(want), `layers ${layers} layer ${l} ${ti % 2 ? "v" : "k"}`);
        deepEqual(Array.from(await rec.readF32(u)), Array.from(want), `per-layer kvCompact layer ${l}`);
      }
    }
    a.destroy();
    b.destroy();
  }
  arena.destroy();
});
