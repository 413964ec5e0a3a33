import assert from "node:assert/strict";
import { llamaTensorShapes, loadModelDir } from "./model_dir.ts";
import { loadSafetensors, type TensorToWrite, writeSafetensors } from "./safetensors.ts";
import { assertLoadError, copyTiny, tempDir, TINY_DIR } from "./_testing.ts";

/** Rewrite `dir/model.safetensors` through `edit`, which gets and returns the tensor list. */
async function rewriteWeights(dir: string, edit: (ts: TensorToWrite[]) => TensorToWrite[]): Promise<void> {
  const store = await loadSafetensors(dir);
  const ts = store.names().map((name) => {
    const e = store.get(name);
    return { name, dtype: e.dtype, shape: e.shape, data: e.bytes };
  });
  await writeSafetensors(`${dir}/model.safetensors`, edit(ts));
}

Deno.test("loads the bundled tiny model directory", async () => {
  const m = await loadModelDir(TINY_DIR);
  assert.equal(m.config.numLayers, 6);
  assert.equal(m.tokenizer.vocabSize, 8192);
  assert.ok(m.chatTemplate);
  const shapes = llamaTensorShapes(m.config);
  assert.equal(shapes.size, 1 + 6 * 9 + 1); // tied: no lm_head
  assert.deepEqual(shapes.get("model.layers.5.self_attn.k_proj.weight"), [64, 128]);
  assert.deepEqual(shapes.get("model.layers.0.self_attn.o_proj.weight"), [128, 128]);
  assert.deepEqual(shapes.get("model.layers.0.mlp.down_proj.weight"), [128, 384]);
  assert.deepEqual([...shapes.keys()].sort(), m.weights.names().sort());
  assert.ok(llamaTensorShapes({ ...m.config, tieWordEmbeddings: false }).has("lm_head.weight"));
});

Deno.test("missing / non-directory / incomplete model dirs fail naming the dir or file", async () => {
  const tmp = await tempDir();
  await assertLoadError(loadModelDir(`${tmp}/nope`), "nope", "does not exist");
  await Deno.writeTextFile(`${tmp}/file`, "x");
  await assertLoadError(loadModelDir(`${tmp}/file`), "file", "not a directory");
  await assertLoadError(loadModelDir(tmp), "config.json", "not found");
});

Deno.test("missing and mis-shaped tensors are named", async () => {
  const dir = await copyTiny();
  await rewriteWeights(dir, (ts) => ts.filter((t) => t.name !== "model.layers.3.mlp.up_proj.weight"));
  await assertLoadError(
    loadModelDir(dir),
    "model.safetensors",
    `"model.layers.3.mlp.up_proj.weight"`,
    "missing",
    "[384, 128]",
  );

  const dir2 = await copyTiny();
  await rewriteWeights(
    dir2,
    (ts) =>
      ts.map((t) => t.name === "model.layers.1.self_attn.v_proj.weight" ? { ...t, shape: [128, 64] } : t),
  );
  await assertLoadError(
    loadModelDir(dir2),
    "model.safetensors",
    `"model.layers.1.self_attn.v_proj.weight"`,
    "[128, 64]",
    "[64, 128]",
  );

  const dir3 = await copyTiny();
  const cfg = JSON.parse(await Deno.readTextFile(`${dir3}/config.json`));
  cfg.tie_word_embeddings = false;
  await Deno.writeTextFile(`${dir3}/config.json`, JSON.stringify(cfg));
  await assertLoadError(loadModelDir(dir3), "model.safetensors", `"lm_head.weight"`, "tie_word_embeddings");

  cfg.tie_word_embeddings = true;
  cfg.vocab_size = 4096;
  await Deno.writeTextFile(`${dir3}/config.json`, JSON.stringify(cfg));
  await assertLoadError(
    loadModelDir(dir3),
    "model.safetensors",
    `"model.embed_tokens.weight"`,
    "[8192, 128]",
    "[4096, 128]",
  );

  cfg.architectures = ["MistralForCausalLM"];
  await Deno.writeTextFile(`${dir3}/config.json`, JSON.stringify(cfg));
  await assertLoadError(loadModelDir(dir3), "config.json", "unknown architecture", "MistralForCausalLM");
});
