/**
 * The `treeAuto` flag kind (`--tree T,D,K|auto` of generate, serve and bench:accept): `auto`, fixed
 * shapes including depth 0 (an auto-grid shape), and the shapes the construction cannot fill.
 * @module
 */
import assert from "node:assert/strict";
import { convertFlag, type FlagSpec } from "./flags.ts";

const F: FlagSpec = { flag: "tree", key: "tree", kind: "treeAuto", arg: "T,D,K|auto", help: "tree" };
const TREE: FlagSpec = { ...F, kind: "tree" };

Deno.test("treeAuto flags: auto, T,D,K with depth ≥ 0, unfillable shapes rejected", () => {
  assert.equal(convertFlag(F, "auto", true), "auto");
  assert.equal(convertFlag(F, " auto ", true), "auto");
  assert.deepEqual(convertFlag(F, "8,3,3", true), { totalTokens: 8, depth: 3, topK: 3 });
  assert.deepEqual(convertFlag(F, "2,0,6", true), { totalTokens: 2, depth: 0, topK: 6 });
  assert.deepEqual(convertFlag(F, [7, 0, 6], false), { totalTokens: 7, depth: 0, topK: 6 });
  assert.equal(convertFlag(F, "8,0,3", true), undefined, "7 nodes from 3 candidates");
  assert.equal(convertFlag(F, "0,1,1", true), undefined);
  assert.equal(convertFlag(F, "8,-1,3", true), undefined);
  assert.equal(convertFlag(F, "autox", true), undefined);
  // The plain `tree` kind (the trainer's) is unchanged: no auto, depth ≥ 1.
  assert.equal(convertFlag(TREE, "auto", true), undefined);
  assert.equal(convertFlag(TREE, "2,0,6", true), undefined);
});
