/**
 * `Engine` with the auto tree on the bundled tiny model and a saved random draft: calibration runs
 * once and is cached (the second load reads the file), the decision is logged in one line, and T = 0
 * output equals transformers' greedy tokens (`models/tiny/reference.json`) whatever the choice — also
 * when a cache entry with GPU-like costs and a strong acceptance profile makes it pick a deep tree.
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { testGpu } from "../testing/mod.ts";
import { loadModelDir } from "../io/model_dir.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { Recorder } from "../gpu/recorder.ts";
import { KernelCache } from "../gpu/kernel.ts";
import type { ChatMessage } from "../io/chat.ts";
import { Engine } from "./engine.ts";
import { readTreeCache, writeTreeCache } from "./tree_cache.ts";

const TINY = fileURLToPath(new URL("../../../../models/tiny", import.meta.url));
const REF = JSON.parse(await Deno.readTextFile(`${TINY}/reference.json`)).cases[0];
const CHAT0: ChatMessage[] = [{
  role: "user",
  content: REF.prompt.match(/<\|user\|>\n([\s\S]*?)<\|end\|>/)![1],
}];

Deno.test("Engine tree auto: calibrates once, caches, logs; T=0 equals transformers for any choice", async () => {
  const { gpu } = await testGpu();
  const tmp = await Deno.makeTempDir({ prefix: "gto_engine_auto_" });
  try {
    const dir = await loadModelDir(TINY);
    const d = Eagle3Draft.create(gpu, dir, { seed: 11, draftVocabSize: 256, maxSeqLen: 64 });
    const rec = new Recorder(gpu, new KernelCache(gpu));
    await d.save(rec, `${tmp}/draft`);
    d.destroy();
    rec.destroy();
    const lines: string[] = [];
    const load = (tree?: "auto") =>
      Engine.load({
        target: TINY,
        draft: `${tmp}/draft`,
        ...(tree ? { tree } : {}),
        cacheDir: `${tmp}/cache`,
        maxContext: 256,
        gpu,
        log: (l) => lines.push(l),
      });

    // 1. The default with a draft is the auto tree: calibration, then a cache file.
    let engine = await load();
    const a = engine.info.autoTree!;
    try {
      assert.ok(a, "info.autoTree is set");
      assert.equal(a.cached, false);
      assert.equal(lines.length, 1);
      assert.match(lines[0], /^auto tree: (plain|\d+\/\d+\/\d+) .*predicted .* tok\/s.*calibrated in/);
      assert.deepEqual(engine.info.tree, a.tree ?? a.bestTree.tree);
      assert.equal(engine.info.draft, "draft", "the draft stays loaded when plain decoding wins");
      assert.ok(a.plainTokPerSec > 0 && a.predictedTokPerSec >= a.plainTokPerSec);
      assert.ok(a.cacheFile && (await Deno.stat(a.cacheFile)).isFile);
      const r = await engine.chat(CHAT0, { maxTokens: 48 });
      assert.deepEqual(r.tokens, REF.greedy_48);
      assert.equal(r.speculative !== undefined, a.tree !== null);
      // Speculative on request works whatever the default (the playground relies on it).
      const s = await engine.chat(CHAT0, { maxTokens: 48, speculative: true });
      assert.deepEqual(s.tokens, REF.greedy_48);
      assert.ok(s.speculative && s.speculative.cycles > 0);
    } finally {
      await engine.close();
    }

    // 2. Second load: the cached measurements, the same decision.
    engine = await load("auto");
    try {
      const b = engine.info.autoTree!;
      assert.equal(b.cached, true);
      assert.deepEqual(b.tree, a.tree);
      assert.match(lines[1], /cached \(/);
    } finally {
      await engine.close();
    }

    // 3. A cache entry where speculation pays (flat verification, a strong draft): a deep tree is
    // chosen and the speculative path still reproduces transformers' greedy tokens.
    const file = a.cacheFile!;
    const raw = JSON.parse(await Deno.readTextFile(file));
    const entry =
      (await readTreeCache(file, { adapter: raw.adapter, target: raw.target, draft: raw.draft }))!;
    await writeTreeCache(file, {
      ...entry,
      costs: {
        plainStepMs: 1,
        verify: [{ n: 4, ms: 1.05 }, { n: 64, ms: 1.3 }],
        drafting: [{ k: 2, baseMs: 0.15, perLevelMs: 0.08 }, { k: 8, baseMs: 0.2, perLevelMs: 0.1 }],
        bookkeepingMs: 0.05,
      },
      acceptance: { p: [[0.85, 0.2, 0.05]] },
    });
    engine = await load("auto");
    try {
      const c = engine.info.autoTree!;
      assert.ok(c.tree && c.tree.depth >= 4, JSON.stringify(c));
      assert.deepEqual(engine.info.tree, c.tree);
      const r = await engine.chat(CHAT0, { maxTokens: 48 });
      assert.deepEqual(r.tokens, REF.greedy_48);
      assert.ok(r.speculative && r.speculative.cycles >= 1);
    } finally {
      await engine.close();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
