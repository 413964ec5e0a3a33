import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { evaluateTree } from "../train/gto_ref.ts";
import { renderTreeReport, treeReportEntry } from "./report.ts";

// root(7) ─ 1 ─ 2,  root ─ 3   (V = 4; logits rows chosen by hand)
const tree = {
  tokens: [0, 1, 2, 3],
  parents: [-1, 0, 1, 0],
  depth: [0, 1, 2, 1],
  nodeScores: [0, -0.5, -1.5, -2],
};
const row = (p: number, tok: number) => {
  const r = new Array(4).fill(Math.log((1 - p) / 3));
  r[tok] = Math.log(p);
  return r;
};
const logits = [...row(0.6, 1), ...row(0.5, 2), ...row(0.9, 0), ...row(0.25, 0)];

Deno.test("treeReportEntry: the documented schema from an evaluated tree", () => {
  const ev = evaluateTree(tree, logits, 4);
  const e = treeReportEntry(5, { ...tree, ...ev });
  equal(e.root_index, 5);
  equal(e.root_token, 0);
  deepEqual(e.nodes[0], {
    token: 0,
    parent: -1,
    depth: 0,
    draft_score: 0,
    target_prob: null,
    greedy_ok: null,
  });
  ok(Math.abs(e.nodes[1].target_prob! - 0.6) < 1e-12 && e.nodes[1].greedy_ok === true);
  ok(Math.abs(e.nodes[2].target_prob! - 0.5) < 1e-12 && e.nodes[2].greedy_ok === true);
  ok(Math.abs(e.nodes[3].target_prob! - 0.4 / 3) < 1e-12 && e.nodes[3].greedy_ok === false);
  deepEqual(e.branches.map((b) => b.nodes), [[0, 1, 2], [0, 3]]);
  ok(Math.abs(e.branches[0].L - (0.6 + 0.3)) < 1e-12);
  equal(e.accepted_length, 2);
  equal(e.reward.max, e.branches[0].L);
  JSON.parse(JSON.stringify({ tokens: [1, 2], trees: [e] })); // JSON-ready
  throws(() => treeReportEntry(0, { ...tree, ...ev, depth: [0] }), /depth has 1/);
  const text = renderTreeReport({ tokens: [], trees: [e] }, (id) => "abcd"[id]);
  ok(text.startsWith('root 5 "a": reward lse'), text);
  ok(text.includes('    "c"  p_T 0.500  draft -1.500 ✓'), text);
  ok(
    text.includes('  "d"  p_T 0.133  draft -2.000\n') || text.endsWith('  "d"  p_T 0.133  draft -2.000'),
    text,
  );
});
