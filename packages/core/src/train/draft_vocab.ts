/**
 * The EAGLE-3 draft vocabulary: the N target tokens that occur most often in the assistant part of
 * the training data (EAGLE `traineagle3/cnets.py` `scandata`: `Counter.most_common(N)` over the
 * loss-masked tokens, then sorted). Draft ids are assigned in ascending target-id order, so
 * d2t[i] = tokens[i] − i (target id = draft id + d2t[draft id]) and the draft→target map is
 * monotonic — which makes "the target logits restricted to t2d" (EAGLE's `target[..., t2d]`, target
 * order) line up with the lm_head's draft order.
 *
 * Ranking (deterministic): assistant-token count, descending; ties by lower target id. If fewer than N
 * distinct assistant tokens exist, the remaining slots are filled with the most frequent remaining
 * ids by their count over *all* tokens (prompts included) when given, then by lower id.
 * @module
 */
import { ShapeError } from "../errors.ts";

/** Token counts over a data set. */
export interface TokenCounts {
  /** (V) occurrences of each target id where the loss mask is 1 (assistant tokens). */
  assistant: Float64Array;
  /** (V) occurrences of each target id anywhere (prompt + response). */
  all: Float64Array;
}

/** A draft vocabulary. */
export interface DraftVocab {
  /** (N) i32 offsets: target id = draft id + d2t[draft id]. */
  d2t: Int32Array;
  /** (V) 1 where the target id is in the draft vocabulary. */
  t2d: Uint8Array;
  /** (N) target id of each draft id (ascending). */
  tokens: Int32Array;
  /** Fraction of assistant tokens covered by the vocabulary (EAGLE prints it as "top N ratio"). */
  coverage: number;
}

/** Count token ids (each in [0, V)) over sequences with their loss masks. */
export function countTokens(
  samples: Iterable<{ ids: ArrayLike<number>; lossMask: ArrayLike<number> }>,
  V: number,
): TokenCounts {
  if (!Number.isInteger(V) || V < 1) throw new ShapeError(`countTokens: vocabulary size ${V} must be ≥ 1`);
  const assistant = new Float64Array(V), all = new Float64Array(V);
  let n = 0;
  for (const s of samples) {
    if (s.ids.length !== s.lossMask.length) {
      throw new ShapeError(
        `countTokens: sample ${n} has ${s.ids.length} ids but ${s.lossMask.length} mask entries`,
      );
    }
    for (let i = 0; i < s.ids.length; i++) {
      const id = s.ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new ShapeError(`countTokens: sample ${n} token ${i} = ${id} is outside the vocabulary (${V})`);
      }
      all[id]++;
      if (s.lossMask[i]) assistant[id]++;
    }
    n++;
  }
  return { assistant, all };
}

/** The top-`N` draft vocabulary from token counts (see the module doc for the ranking). */
export function draftVocabFromCounts(counts: TokenCounts, N: number): DraftVocab {
  const V = counts.assistant.length;
  if (counts.all.length !== V) throw new ShapeError(`draftVocabFromCounts: count vectors differ in length`);
  if (!Number.isInteger(N) || N < 1 || N > V) {
    throw new ShapeError(`draftVocabFromCounts: draft vocabulary size ${N} must be in [1, ${V}]`);
  }
  const order = Array.from({ length: V }, (_, i) => i);
  const a = counts.assistant, all = counts.all;
  order.sort((x, y) => (a[y] - a[x]) || (all[y] - all[x]) || (x - y));
  const tokens = Int32Array.from(order.slice(0, N)).sort();
  const d2t = Int32Array.from(tokens, (t, i) => t - i);
  const t2d = new Uint8Array(V);
  let covered = 0, total = 0;
  for (const t of tokens) {
    t2d[t] = 1;
    covered += a[t];
  }
  for (const c of a) total += c;
  return { d2t, t2d, tokens, coverage: total > 0 ? covered / total : 0 };
}

/** Count the samples' tokens and build the top-`N` draft vocabulary over a target vocabulary of V. */
export function buildDraftVocab(
  samples: Iterable<{ ids: ArrayLike<number>; lossMask: ArrayLike<number> }>,
  N: number,
  V: number,
): DraftVocab {
  return draftVocabFromCounts(countTokens(samples, V), N);
}
