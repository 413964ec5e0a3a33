/** The readback batch schedule: doubles while batches are fast, stops at the cap, fixed when given. */
import assert from "node:assert/strict";
import { READ_BATCH_TARGET_MS, ReadBatches } from "./read_batches.ts";

Deno.test("ReadBatches doubles while batches are faster than the target, up to the cap", () => {
  const b = new ReadBatches({ first: 8, max: 64 });
  assert.equal(b.size, 8);
  assert.deepEqual([10, 10, 10, 10, 10].map((ms) => b.next(ms)), [16, 32, 64, 64, 64]);
  assert.equal(b.max, 64);
});

Deno.test("ReadBatches stops growing once a batch takes the target time", () => {
  const b = new ReadBatches({ first: 2, max: 16 });
  assert.deepEqual([5, READ_BATCH_TARGET_MS, 500, 5].map((ms) => b.next(ms)), [4, 4, 4, 8]);
});

Deno.test("ReadBatches with a fixed size never changes", () => {
  const b = new ReadBatches({ fixed: 5, first: 8, max: 64 });
  assert.deepEqual([1, 1, 1].map((ms) => b.next(ms)), [5, 5, 5]);
  assert.equal(b.max, 5);
});
