/**
 * Model-loading checks against the reference models in `/work/shared/models` (outside the repo, too
 * large or third-party to bundle): stories260K (a model nobody here trained: older config spelling,
 * SentencePiece-style tokenizer), small (f16 weights) and the EAGLE-3 reference draft (I64 / BOOL
 * tensors). These tests fail, never skip, when the shared directory is missing.
 * @module
 */

import assert from "node:assert/strict";
import { f16ArrayToF32, loadModelDir, loadSafetensors, loadTokenizer } from "../packages/core/src/io/mod.ts";

const MODELS = decodeURIComponent(new URL("../../shared/models/", import.meta.url).pathname);

async function requireDir(name: string): Promise<string> {
  const dir = MODELS + name;
  const st = await Deno.stat(dir).catch(() => undefined);
  assert.ok(st?.isDirectory, `shared model directory ${dir} is missing (these tests need ../shared/models)`);
  return dir;
}

Deno.test("stories260K loads: older config spelling, tied embeddings, f32", async () => {
  const m = await loadModelDir(await requireDir("stories260K"));
  assert.equal(m.config.hiddenSize, 64);
  assert.equal(m.config.numLayers, 5);
  assert.equal(m.config.numHeads, 8);
  assert.equal(m.config.numKvHeads, 4);
  assert.equal(m.config.headDim, 8);
  assert.equal(m.config.vocabSize, 512);
  assert.equal(m.config.ropeTheta, 10000);
  assert.equal(m.config.dtype, "float32");
  assert.equal(m.config.tieWordEmbeddings, true);
  assert.deepEqual(m.config.eosTokenIds, [2]);
  assert.equal(m.chatTemplate, undefined);
  assert.deepEqual(m.weights.get("model.embed_tokens.weight").shape, [512, 64]);
});

Deno.test("stories260K tokenizer: <s> first, byte fallback round trip", async () => {
  const tok = await loadTokenizer(await requireDir("stories260K"));
  assert.equal(tok.bosToken, "<s>");
  assert.equal(tok.eosToken, "</s>");
  assert.equal(tok.tokenId("<s>"), 1);
  const ids = tok.encode("Once upon a time");
  assert.equal(ids[0], 1);
  assert.ok(ids.length > 1);
  assert.deepEqual(tok.encode("Once upon a time", { addSpecialTokens: false }), ids.slice(1));
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "Once upon a time");
  const text = "Lily saw 😀 and 日本.";
  assert.equal(tok.decode(tok.encode(text), { skipSpecialTokens: true }), text);
});

Deno.test("small loads with F16 weights; f32 view matches the raw f16 bits", async () => {
  const m = await loadModelDir(await requireDir("small"));
  assert.equal(m.config.dtype, "float16");
  assert.equal(m.config.hiddenSize, 384);
  assert.equal(m.config.numLayers, 8);
  const emb = m.weights.get("model.embed_tokens.weight");
  assert.equal(emb.dtype, "F16");
  const bits = m.weights.f16Bits("model.embed_tokens.weight", [8192, 384]);
  assert.deepEqual(new Uint8Array(bits.buffer), emb.bytes);
  const f = m.weights.f32("model.embed_tokens.weight", [8192, 384]);
  assert.deepEqual(f, f16ArrayToF32(bits));
  assert.ok(f.every(Number.isFinite));
  const { cases } = JSON.parse(await Deno.readTextFile(`${m.dir}/reference.json`)) as {
    cases: { prompt: string; input_ids: number[] }[];
  };
  for (const c of cases) assert.deepEqual(m.tokenizer.encode(c.prompt), c.input_ids);
});

Deno.test("EAGLE-3 reference draft checkpoint loads (I64 d2t, BOOL t2d)", async () => {
  const store = await loadSafetensors(await requireDir("small-eagle3-reference"));
  const d2t = store.get("d2t");
  assert.equal(d2t.dtype, "I64");
  assert.deepEqual(d2t.shape, [2048]);
  const t2d = store.get("t2d");
  assert.equal(t2d.dtype, "BOOL");
  assert.deepEqual(t2d.shape, [8192]);
  const mapped = t2d.bytes.reduce((a, b) => a + b, 0);
  assert.equal(mapped, 2048); // t2d marks exactly the draft vocabulary
  assert.deepEqual(store.get("fc.weight").shape, [384, 1152]);
});
