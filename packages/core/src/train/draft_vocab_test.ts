/**
 * Draft vocabulary: top-N assistant-token frequencies, ties by lower id, fill from overall counts
 * then lower ids, ascending draft order with consistent d2t / t2d, and input validation.
 * @module
 */
import assert from "node:assert/strict";
import { buildDraftVocab, countTokens, draftVocabFromCounts } from "./draft_vocab.ts";

Deno.test("draft vocab: top-N assistant tokens, ties by lower id, ascending draft ids", () => {
  const samples = [
    { ids: [9, 7, 7, 3, 3, 5], lossMask: [0, 1, 1, 1, 1, 1] }, // assistant: 7×2, 3×2, 5×1
    { ids: [1, 5, 8], lossMask: [0, 1, 1] }, // 5×1, 8×1 → 5×2
  ];
  const v = buildDraftVocab(samples, 3, 10);
  // counts: 3→2, 5→2, 7→2, 8→1: the top 3 are the ties 3, 5, 7 (8 loses on count).
  assert.deepEqual(Array.from(v.tokens), [3, 5, 7]);
  assert.deepEqual(Array.from(v.d2t), [3, 4, 5]);
  assert.deepEqual(Array.from(v.t2d), [0, 0, 0, 1, 0, 1, 0, 1, 0, 0]);
  assert.equal(v.coverage, 6 / 7);
  // Tie at the boundary: N = 2 keeps the lower ids 3 and 5.
  assert.deepEqual(Array.from(buildDraftVocab(samples, 2, 10).tokens), [3, 5]);
});

Deno.test("draft vocab: fewer distinct assistant tokens than N fills by overall count, then lower id", () => {
  const samples = [{ ids: [9, 9, 9, 1, 6, 6], lossMask: [0, 0, 0, 0, 1, 1] }];
  const v = buildDraftVocab(samples, 4, 10);
  // assistant: 6; then overall: 9 (3×), 1 (1×); then the lowest remaining id 0.
  assert.deepEqual(Array.from(v.tokens), [0, 1, 6, 9]);
  for (let i = 0; i < 4; i++) assert.equal(i + v.d2t[i], v.tokens[i]);
  assert.equal(v.t2d.reduce((a, b) => a + b, 0), 4);
  const c = countTokens(samples, 10);
  assert.equal(c.all[9], 3);
  assert.equal(c.assistant[6], 2);
  assert.deepEqual(draftVocabFromCounts(c, 4).tokens, v.tokens);
});

Deno.test("draft vocab: bad inputs throw with the sample and token named", () => {
  assert.throws(() => buildDraftVocab([{ ids: [1, 12], lossMask: [1, 1] }], 2, 10), /sample 0 token 1 = 12/);
  assert.throws(() => buildDraftVocab([{ ids: [1], lossMask: [1, 1] }], 1, 10), /1 ids but 2 mask/);
  assert.throws(() => buildDraftVocab([], 11, 10), /must be in \[1, 10\]/);
});
