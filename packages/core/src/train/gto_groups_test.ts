import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { CONTINUATION_END, continuationRows, sampleGroupRoots, summarizeGtoStep } from "./gto_groups.ts";

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
