import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  CONTINUATION_END,
  CONTINUATION_STOP,
  continuationRows,
  gtoRowLayout,
  rootSpanLength,
  sampleGroupRoots,
  summarizeGtoStep,
} from "./gto_groups.ts";

const base = { promptLen: 10, length: 60, groups: 4, groupSize: 8, seed: 1, step: 0, sequence: 0 };

Deno.test("sampleGroupRoots: K_eff windows of m consecutive response roots, deterministic per (seed, step, sequence)", () => {
  for (let step = 0; step < 50; step++) {
    const roots = sampleGroupRoots({ ...base, step });
    equal(roots.length, 32);
    for (let g = 0; g < 4; g++) {
      for (let j = 1; j < 8; j++) equal(roots[g * 8 + j], roots[g * 8] + j, "consecutive within a group");
      if (g > 0) ok(roots[g * 8] > roots[g * 8 - 1], "non-overlapping, ascending");
    }
    ok(roots[0] >= 10 && roots[31] <= 58, "roots in [promptLen, n − 2]");
    deepEqual(sampleGroupRoots({ ...base, step }), roots, "deterministic");
  }
  const distinct = new Set(
    Array.from({ length: 20 }, (_, step) => sampleGroupRoots({ ...base, step }).join()),
  );
  ok(distinct.size > 5, `placements vary with the step (${distinct.size} of 20 distinct)`);
  // Too short for K groups: as many as fit; none when not even one fits.
  equal(sampleGroupRoots({ ...base, length: 10 + 1 + 17 }).length, 16);
  deepEqual(sampleGroupRoots({ ...base, length: 10 + 1 + 7 }), []);
  deepEqual(sampleGroupRoots({ ...base, length: 5 }), []);
  // Exactly fitting: no slack.
  deepEqual(sampleGroupRoots({ ...base, groups: 1, groupSize: 3, length: 14 }), [10, 11, 12]);
  throws(() => sampleGroupRoots({ ...base, groupSize: 0 }), /groupSize/);
});

Deno.test("sampleGroupRoots: placements are uniform (stars and bars)", () => {
  // span 5, m 2, K 2: slack 1 → 3 placements: starts (0,2), (0,3), (1,3).
  const counts = new Map<string, number>();
  const n = 3000;
  for (let s = 0; s < n; s++) {
    const r = sampleGroupRoots({
      promptLen: 0,
      length: 6,
      groups: 2,
      groupSize: 2,
      seed: 7,
      step: s,
      sequence: 3,
    });
    const key = `${r[0]},${r[2]}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  deepEqual([...counts.keys()].sort(), ["0,2", "0,3", "1,3"]);
  for (const [k, c] of counts) ok(Math.abs(c / n - 1 / 3) < 0.04, `placement ${k}: ${c / n}`);
});

Deno.test("continuationRows: the next width tokens, ended past the sequence", () => {
  const E = CONTINUATION_END;
  deepEqual(Array.from(continuationRows([5, 6, 7, 8, 9], [1, 3, 4], 3)), [7, 8, 9, 9, E, E, E, E, E]);
  throws(() => continuationRows([1, 2], [2], 3), /root 2/);
  // The text ended with the last token (9, the eos): STOP right after it, END beyond.
  const T = CONTINUATION_STOP;
  deepEqual(Array.from(continuationRows([5, 6, 7, 8, 9], [1, 2, 3, 4], 3, true)), [
    7,
    8,
    9,
    8,
    9,
    T,
    9,
    T,
    E,
    T,
    E,
    E,
  ]);
});

Deno.test("rootSpanLength: a cut sequence keeps whole continuations before the cut", () => {
  // Tree depth 7 → pathWidth 9: roots r ≤ n − 9 have x_{r+1..r+8} inside n tokens.
  equal(rootSpanLength(100, true, 9), 100);
  equal(rootSpanLength(100, false, 9), 93);
  const roots = sampleGroupRoots({
    promptLen: 40,
    length: rootSpanLength(100, false, 9),
    groups: 16,
    groupSize: 8,
    seed: 1,
    step: 0,
    sequence: 0,
  });
  equal(roots.length, 48, "⌊(93 − 1 − 40)/8⌋ = 6 windows");
  ok(Math.max(...roots) + 8 <= 99, "every continuation is inside the data");
  equal(rootSpanLength(5, false, 9), 0);
  throws(() => rootSpanLength(5, false, 1), /pathWidth/);
});

Deno.test("summarizeGtoStep: hand-built rows", () => {
  // Two prefixes, one group of 2: tree rows [lse, max, mean, l, logM, lGreedy, branches, last].
  const tm = new Float32Array([2, 1.5, 1, 2, -1, 2, 5, 7, 1, 1, 0.5, 0, 0, 1, 4, 0]);
  const t0 = new Float32Array([1.5, 1, 1, 2, -1, 2, 5, 7, 1, 1, 0.5, 0, 0, 0, 4, 0]);
  // coef rows [R, A, s, coeff, term, clipped, l, logRatio]
  const coef = new Float32Array([0.5, 0.7, 1.3, 0, 0.84, 1, 2, 0.5, 0, -0.7, 1, 0.1, -0.7, 0, 0, 0]);
  const m = summarizeGtoStep(tm, t0, coef, { column: 0, groupSize: 2, stdFloor: 1e-4 });
  equal(m.prefixes, 2);
  equal(m.rewardM, 1.5);
  equal(m.rewardM0, 1.25);
  equal(m.meanR, 0.25);
  ok(Math.abs(m.meanAbsA - 0.7) < 1e-6);
  equal(m.flatGroups, 0);
  equal(m.clipFraction, 0.5);
  ok(Math.abs(m.ratioMin - 1.3) < 1e-6 && Math.abs(m.ratioMax - 1.3) < 1e-6, "ratios over l > 0 only");
  ok(Math.abs(m.lossGto - -(0.84 - 0.7) / 2) < 1e-6);
  equal(m.meanLength, 1);
  equal(m.simulatedTau, 2.5);
  equal(m.agreement, 0.5);
});

Deno.test("gtoRowLayout: TTT rows, row map and Ŝ labels x[r + k + 1] as draft ids", () => {
  // B = 2, S = 6; draft vocabulary = even target ids (draft id = id / 2).
  const ids = [10, 12, 14, 15, 16, 18, 20, 22, 24, 26, 28, 30];
  const E = CONTINUATION_END;
  const lay = gtoRowLayout(ids, [[2], [1, 4]], {
    seqLen: 6,
    steps: 3,
    stride: 16,
    toDraft: (t) => (t % 2 ? -1 : t / 2),
  });
  deepEqual(Array.from(lay.rows), [1, 6, 9]);
  equal(lay.rowMap[1], 0);
  equal(lay.rowMap[6], 1);
  equal(lay.rowMap[9], 2);
  equal(lay.rowMap.filter((x) => x >= 0).length, 3);
  // Prefix 0 (b 0, r 2): x[3] = 15 (odd: none), x[4] = 16 → 8, x[5] = 18 → 9.
  deepEqual([lay.labels[1], lay.labels[16 + 1], lay.labels[32 + 1]], [E, 8, 9]);
  // Prefix 1 (b 1, r 1): x[2..4] of sequence 1 = 24, 26, 28.
  deepEqual([lay.labels[6], lay.labels[16 + 6], lay.labels[32 + 6]], [12, 13, 14]);
  // Prefix 2 (b 1, r 4): x[5] = 30, then past the end.
  deepEqual([lay.labels[9], lay.labels[16 + 9], lay.labels[32 + 9]], [15, E, E]);
  throws(() => gtoRowLayout(ids, [[0], []], { seqLen: 6, steps: 3, stride: 16, toDraft: () => 0 }), /root 0/);
});
