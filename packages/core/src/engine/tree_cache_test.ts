/**
 * The auto tree's calibration cache: a written entry reads back equal; another version, adapter or
 * fingerprint, a corrupt file or a missing one read as null; a changed model file changes the
 * directory's fingerprint (and so the file name).
 * @module
 */
import assert from "node:assert/strict";
import {
  fingerprintDir,
  readTreeCache,
  TREE_CACHE_VERSION,
  type TreeCacheEntry,
  treeCachePath,
  writeTreeCache,
} from "./tree_cache.ts";

Deno.test("tree cache: round trip, invalidation by version / adapter / fingerprint, corrupt files", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "gto_tree_cache_" });
  try {
    await Deno.mkdir(`${tmp}/model`);
    await Deno.writeTextFile(`${tmp}/model/config.json`, '{"a": 1}');
    await Deno.writeFile(`${tmp}/model/model.safetensors`, new Uint8Array([1, 2, 3]));
    await Deno.writeTextFile(`${tmp}/model/README.md`, "not part of the fingerprint");
    const fp = await fingerprintDir(`${tmp}/model`);
    assert.match(fp, /^[0-9a-f]{64}$/);
    await Deno.writeTextFile(`${tmp}/model/README.md`, "changed");
    assert.equal(await fingerprintDir(`${tmp}/model`), fp, "only config.json and *.safetensors count");
    const expect = { adapter: "test adapter", target: fp, draft: "d".repeat(64) };
    const path = await treeCachePath(`${tmp}/cache`, expect.adapter, expect.target, expect.draft);
    assert.ok(path.startsWith(`${tmp}/cache/auto-tree/`) && path.endsWith(".json"));
    assert.equal(await readTreeCache(path, expect), null, "missing file");
    const entry: TreeCacheEntry = {
      version: TREE_CACHE_VERSION,
      ...expect,
      costs: {
        plainStepMs: 5,
        verify: [{ n: 4, ms: 30 }, { n: 32, ms: 150 }],
        drafting: [{ k: 2, baseMs: 20, perLevelMs: 2 }],
        bookkeepingMs: 10,
      },
      acceptance: { p: [[0.5, 0.1], [0.4, 0.05]] },
      calibrationSeconds: 12.5,
      date: "2026-11-30T12:00:00.000Z",
    };
    await writeTreeCache(path, entry);
    assert.deepEqual(await readTreeCache(path, expect), entry);
    assert.equal(await readTreeCache(path, { ...expect, adapter: "other" }), null);
    assert.equal(await readTreeCache(path, { ...expect, draft: "e".repeat(64) }), null);
    await writeTreeCache(path, { ...entry, acceptance: null });
    assert.equal((await readTreeCache(path, expect))?.acceptance, null, "acceptance may be null");
    await writeTreeCache(path, { ...entry, version: TREE_CACHE_VERSION + 1 });
    assert.equal(await readTreeCache(path, expect), null, "another version");
    await Deno.writeTextFile(path, "{ not json");
    assert.equal(await readTreeCache(path, expect), null, "corrupt file");
    // A changed weight file (same size) changes the fingerprint and so the cache file.
    await Deno.writeFile(`${tmp}/model/model.safetensors`, new Uint8Array([1, 2, 4]));
    const fp2 = await fingerprintDir(`${tmp}/model`);
    assert.notEqual(fp2, fp);
    assert.notEqual(await treeCachePath(`${tmp}/cache`, expect.adapter, fp2, expect.draft), path);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
