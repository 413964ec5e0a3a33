/**
 * KV caches as values: one model, several caches. Two greedy decodes interleaved step by step in one
 * submit, and two `generate` calls running concurrently, each on its own cache and ring, must equal
 * the same decodes run one after the other (token-identical). Also: shape checks name the problem.
 * @module
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadModelDir } from "../io/model_dir.ts";
import { writeTensor } from "../gpu/arena.ts";
import { ShapeError } from "../errors.ts";
import { argmax } from "../ops/select.ts";
import { generate } from "../decode/generate.ts";
import { TokenRing } from "../decode/ring.ts";
import { rng, testGpu } from "../testing/mod.ts";
import { LlamaModel } from "./llama.ts";
import { KvCache } from "./kv_cache.ts";

const TINY = fileURLToPath(new URL("../../../../models/tiny", import.meta.url));

Deno.test("KvCache: two interleaved greedy decodes on two caches of one model equal sequential ones", async () => {
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const V = dir.config.vocabSize;
  const model = await LlamaModel.load(gpu, dir, { maxSeqLen: 48, maxBatch: 16, weightDtype: "f32" });
  const r = rng(3);
  const prompts = [
    Array.from({ length: 7 }, () => 6 + Math.floor(r() * (V - 6))),
    Array.from({ length: 19 }, () => 6 + Math.floor(r() * (V - 6))), // chunked prefill (16 + 3)
  ];
  const n = 13;
  const kvs = [model.createKvCache(), model.createKvCache(40)];
  const rings = [new TokenRing(gpu, 48), new TokenRing(gpu, 40)];
  try {
    equal(kvs[1].capacity, 40);
    equal(kvs[0].layers, dir.config.numLayers);
    // Sequential reference: one generate() after the other, each in its own cache.
    const sequential: number[][] = [];
    for (const i of [0, 1]) {
      const g = await generate(model, rec, kvs[i], rings[i].tensor, prompts[i], { maxTokens: n, eosIds: [] });
      sequential.push(g.tokens);
    }
    equal(sequential[0].length, n);
    // Interleaved by hand: prefill both, then alternate decode steps, all recorded into one submit.
    for (const kv of kvs) {
      for (const l of [0, dir.config.numLayers - 1]) { // scribble over the rows generate() left behind
        writeTensor(gpu, kv.k[l], new Float32Array(kv.k[l].size).fill(7));
        writeTensor(gpu, kv.v[l], new Float32Array(kv.v[l].size).fill(-7));
      }
    }
    for (const i of [0, 1]) {
      const P = prompts[i].length, ring = rings[i].tensor;
      writeTensor(gpu, ring, new Uint32Array(ring.size));
      writeTensor(gpu, ring, new Uint32Array(prompts[i]));
      for (let at = 0; at < P; at += model.maxBatch) {
        const T = Math.min(model.maxBatch, P - at);
        const logits = model.forward(rec, kvs[i], ring, at, T, at, {
          logits: at + T === P ? "last" : "none",
        });
        if (logits) argmax(rec, ring, logits, { outOffset: P });
      }
    }
    for (let s = 1; s < n; s++) {
      for (const i of [1, 0]) {
        const p = prompts[i].length + s - 1, ring = rings[i].tensor;
        const logits = model.forward(rec, kvs[i], ring, p, 1, p, { logits: "last" })!;
        argmax(rec, ring, logits, { outOffset: p + 1 });
      }
    }
    for (const i of [0, 1]) {
      const ring = await rec.read(rings[i].tensor) as Uint32Array;
      const P = prompts[i].length;
      deepEqual(Array.from(ring.subarray(P, P + n)), sequential[i], `interleaved decode ${i}`);
    }
    // Concurrent generate() calls (their batches interleave at every readback) on the two caches.
    const both = await Promise.all(
      [0, 1].map((i) =>
        generate(model, rec, kvs[i], rings[i].tensor, prompts[i], {
          maxTokens: n,
          eosIds: [],
          stepsPerRead: 3,
        })
      ),
    );
    deepEqual(both.map((g) => g.tokens), sequential, "concurrent generate() calls");
  } finally {
    for (const kv of kvs) kv.destroy();
    for (const ring of rings) ring.destroy();
    model.destroy();
  }
});

Deno.test("KvCache: bad shapes and capacities throw ShapeError naming the field", async () => {
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const model = await LlamaModel.load(gpu, dir, { maxSeqLen: 16, maxBatch: 8, weightDtype: "f32" });
  const ring = new TokenRing(gpu, 16);
  const small = model.createKvCache(4);
  const { numLayers, numKvHeads, headDim } = dir.config;
  const wrong = KvCache.allocate(gpu, {
    layers: numLayers + 1,
    capacity: 16,
    rowWidth: numKvHeads * headDim,
  });
  try {
    throws(
      () => KvCache.allocate(gpu, { layers: 1, capacity: 0, rowWidth: 8 }),
      /capacity must be an integer ≥ 1/,
    );
    throws(() => KvCache.allocate(gpu, { layers: 1.5, capacity: 4, rowWidth: 8 }), /layers must be/);
    throws(() => new TokenRing(gpu, 0), /capacity must be an integer ≥ 1/);
    throws(
      () => model.forward(rec, small, ring.tensor, 0, 5, 0),
      (e: Error) => e instanceof ShapeError && /exceed the KV cache \(4\)/.test(e.message),
    );
    throws(
      () => model.forward(rec, wrong, ring.tensor, 0, 2, 0),
      (e: Error) => e instanceof ShapeError && new RegExp(`${numLayers + 1} layers`).test(e.message),
    );
    model.forward(rec, small, ring.tensor, 0, 4, 0); // exactly full is fine
    await rec.finish();
  } finally {
    small.destroy();
    wrong.destroy();
    ring.destroy();
    model.destroy();
  }
});
