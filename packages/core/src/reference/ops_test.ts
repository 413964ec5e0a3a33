/**
 * Hand-checkable cases for the CPU reference ops: each expected value here is worked out on paper,
 * so the oracle itself is checked before any kernel is checked against it.
 * @module
 */

import assert from "node:assert/strict";
import { ShapeError } from "../errors.ts";
import {
  addRef,
  argmaxRef,
  attentionRef,
  causalMask,
  embeddingRef,
  linearRef,
  logSoftmaxRef,
  matmulRef,
  matvecRef,
  rmsNormRef,
  ropeRef,
  softmaxRef,
  swigluRef,
  topkRef,
} from "./ops.ts";

const f32 = (xs: number[]): Float32Array => new Float32Array(xs);

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-6): void {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    assert.ok(d <= atol + 1e-6 * Math.abs(expected[i]), `index ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

Deno.test("matmulRef: 2x3 · 3x2 and the transposed layout agree", () => {
  const a = f32([1, 2, 3, 4, 5, 6]); // (2, 3)
  const b = f32([7, 8, 9, 10, 11, 12]); // (3, 2)
  assertClose(matmulRef(a, b, 2, 3, 2), [58, 64, 139, 154]);
  const bt = f32([7, 9, 11, 8, 10, 12]); // (2, 3) = bᵀ
  assertClose(matmulRef(a, bt, 2, 3, 2, { transB: true }), [58, 64, 139, 154]);
  assertClose(linearRef(a, bt, 2, 3, 2), [58, 64, 139, 154]);
  assertClose(matvecRef(bt, f32([1, 2, 3]), 2, 3), [58, 64]);
  assert.throws(() => matmulRef(a, b, 2, 2, 2), ShapeError);
});

Deno.test("rmsNormRef: known vector", () => {
  // x = (3, 4): mean(x²) = 12.5, rsqrt = 0.28284271; w = (1, 2)
  // second row (1, -1): mean(x²) = 1 → (1, -2)
  const y = rmsNormRef(f32([3, 4, 1, -1]), f32([1, 2]), 0);
  assertClose(y, [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5), 1, -2]);
  const e = rmsNormRef(f32([1, 1]), f32([1, 1]), 1); // rsqrt(1 + 1)
  assertClose(e, [Math.SQRT1_2, Math.SQRT1_2]);
});

Deno.test("ropeRef: position 0 is the identity, rotate-half pairing at position 1", () => {
  const x = f32([1, 2, 3, 4, 5, 6, 7, 8]); // (1, 2 heads, hd=4)
  assertClose(ropeRef(x, [0], 10000, 4), x);
  // hd = 4: pairs (0,2) with freq 1 and (1,3) with freq 10000^(-1/2) = 0.01
  const y = ropeRef(f32([1, 0, 0, 1]), [1], 10000, 4);
  const c1 = Math.cos(1), s1 = Math.sin(1), c2 = Math.cos(0.01), s2 = Math.sin(0.01);
  assertClose(y, [c1, -s2, s1, c2]);
  // norm of each pair is preserved at any position
  const z = ropeRef(f32([0.3, -1.2, 2.0, 0.7]), Int32Array.of(123), 500000, 4);
  assertClose([Math.hypot(z[0], z[2]), Math.hypot(z[1], z[3])], [Math.hypot(0.3, 2), Math.hypot(1.2, 0.7)]);
});

Deno.test("attentionRef: one key returns v; equal scores average; GQA mapping", () => {
  const dims = { tq: 1, tk: 1, nHeads: 1, nKvHeads: 1, headDim: 2 };
  assertClose(attentionRef(f32([5, -3]), f32([1, 2]), f32([7, 9]), null, 0.5, dims), [7, 9]);
  // two keys with identical score → mean of values
  const d2 = { tq: 1, tk: 2, nHeads: 1, nKvHeads: 1, headDim: 2 };
  assertClose(attentionRef(f32([1, 1]), f32([1, 0, 0, 1]), f32([2, 0, 0, 4]), null, 1, d2), [1, 2]);
  // scores 0 and ln 3 → weights 1/4, 3/4
  const w = attentionRef(f32([Math.log(3), 0]), f32([0, 0, 1, 0]), f32([4, 0, 0, 4]), null, 1, d2);
  assertClose(w, [1, 3], 1e-5);
  // mask hides the second key
  assertClose(attentionRef(f32([1, 1]), f32([1, 0, 0, 1]), f32([2, 0, 0, 4]), [true, false], 1, d2), [2, 0]);
  // GQA: 4 heads, 2 kv heads, one key each → heads 0,1 read kv head 0; heads 2,3 read kv head 1
  const g = { tq: 1, tk: 1, nHeads: 4, nKvHeads: 2, headDim: 1 };
  assertClose(attentionRef(f32([1, 2, 3, 4]), f32([1, 1]), f32([10, 20]), null, 1, g), [10, 10, 20, 20]);
  // fully masked row → zeros
  assertClose(attentionRef(f32([1, 1]), f32([1, 0, 0, 1]), f32([2, 0, 0, 4]), Uint8Array.of(0, 0), 1, d2), [
    0,
    0,
  ]);
});

Deno.test("causalMask: past tokens visible, future hidden", () => {
  assert.deepEqual(Array.from(causalMask(2, 4, 2)), [1, 1, 1, 0, 1, 1, 1, 1]);
  assert.deepEqual(Array.from(causalMask(3, 3, 0)), [1, 0, 0, 1, 1, 0, 1, 1, 1]);
});

Deno.test("swigluRef, addRef, embeddingRef", () => {
  assertClose(swigluRef(f32([0, 1, -2]), f32([5, 2, 1])), [
    0,
    2 / (1 + Math.exp(-1)),
    -2 / (1 + Math.exp(2)),
  ]);
  assertClose(addRef(f32([1, 2]), f32([3, -5])), [4, -3]);
  const table = f32([0, 1, 10, 11, 20, 21]); // (3, 2)
  assertClose(embeddingRef(table, [2, 0, 2], 2), [20, 21, 0, 1, 20, 21]);
  assert.throws(() => embeddingRef(table, [3], 2), ShapeError);
});

Deno.test("softmaxRef / logSoftmaxRef: rows sum to 1, temperature, log consistency", () => {
  const x = f32([1, 2, 3, 1000, 1000, 1000]); // (2, 3)
  const p = softmaxRef(x, 3);
  assertClose([p[0] + p[1] + p[2], p[3] + p[4] + p[5]], [1, 1]);
  assertClose(p.subarray(3), [1 / 3, 1 / 3, 1 / 3]);
  const e = Math.exp(1) + Math.exp(2) + Math.exp(3);
  assertClose(p.subarray(0, 3), [Math.exp(1) / e, Math.exp(2) / e, Math.exp(3) / e]);
  const lp = logSoftmaxRef(x, 3);
  assertClose(lp.subarray(0, 3), [1 - Math.log(e), 2 - Math.log(e), 3 - Math.log(e)]);
  // temperature 2 on (0, 2 ln 3) → (1/4, 3/4)
  assertClose(softmaxRef(f32([0, 2 * Math.log(3)]), 2, 2), [0.25, 0.75]);
  assertClose(logSoftmaxRef(f32([0, 2 * Math.log(3)]), 2, 2), [Math.log(0.25), Math.log(0.75)]);
});

Deno.test("argmaxRef / topkRef: ties by lower index", () => {
  assert.deepEqual(Array.from(argmaxRef(f32([1, 3, 3, 0, 5, 5, 5, 4]), 4)), [1, 0]);
  const t = topkRef(f32([2, 7, 7, -1, 9, 2]), 4);
  assert.deepEqual(Array.from(t.ids), [4, 1, 2, 0]);
  assertClose(t.values, [9, 7, 7, 2]);
  assert.equal(topkRef(f32([1, 2]), 5).ids.length, 2);
});
