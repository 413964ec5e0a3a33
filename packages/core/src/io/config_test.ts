import assert from "node:assert/strict";
import { loadLlamaConfig, parseLlamaConfig } from "./config.ts";
import { assertLoadError, copyTiny, TINY_DIR } from "./_testing.ts";

/** An older-spelling config (rope_theta / torch_dtype), like stories260K's. */
const OLD = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 5,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  vocab_size: 512,
  max_position_embeddings: 512,
  rms_norm_eps: 1e-5,
  rope_theta: 500000.0,
  rope_scaling: null,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
  torch_dtype: "bfloat16",
};

Deno.test("tiny config.json (transformers-5 spelling) + generation_config eos list", async () => {
  const cfg = await loadLlamaConfig(TINY_DIR);
  assert.deepEqual(cfg, {
    modelType: "llama",
    hiddenSize: 128,
    intermediateSize: 384,
    numLayers: 6,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 32,
    vocabSize: 8192,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    maxPositionEmbeddings: 2048,
    dtype: "float32",
    bosTokenId: 0,
    eosTokenIds: [4, 0],
  });
});

Deno.test("older spelling, defaults for head_dim / kv heads, eos from config", () => {
  const cfg = parseLlamaConfig("c.json", OLD);
  assert.equal(cfg.ropeTheta, 500000);
  assert.equal(cfg.dtype, "bfloat16");
  assert.equal(cfg.headDim, 8);
  assert.deepEqual(cfg.eosTokenIds, [2]);
  const noKv: Record<string, unknown> = { ...OLD };
  delete noKv.num_key_value_heads;
  assert.equal(parseLlamaConfig("c.json", noKv).numKvHeads, 8);
  assert.deepEqual(
    parseLlamaConfig("c.json", OLD, { file: "g.json", json: { eos_token_id: [7, 2] } }).eosTokenIds,
    [7, 2],
  );
  assert.equal(
    parseLlamaConfig("c.json", { ...OLD, rope_scaling: { rope_type: "default" } }).ropeTheta,
    500000,
  );
  const draft = { ...OLD, architectures: ["LlamaForCausalLMEagle3"] };
  assert.equal(
    parseLlamaConfig("c.json", draft, undefined, { architectures: ["LlamaForCausalLMEagle3"] }).numLayers,
    5,
  );
});

Deno.test("bad configs name the file and field", async () => {
  const bad = (patch: Record<string, unknown>, ...mentions: string[]) =>
    assertLoadError(
      () => parseLlamaConfig("/m/config.json", { ...OLD, ...patch }),
      "config.json",
      ...mentions,
    );
  await bad({ model_type: "mistral" }, "unknown architecture", "mistral");
  await bad({ architectures: ["GPT2LMHeadModel"] }, "unknown architecture", "GPT2LMHeadModel");
  await bad({ architectures: undefined, model_type: undefined }, "unknown architecture");
  await bad({ hidden_size: undefined }, `"hidden_size"`, "missing");
  await bad({ intermediate_size: "384" }, `"intermediate_size"`, "positive integer");
  await bad({ num_hidden_layers: 0 }, `"num_hidden_layers"`);
  await bad({ vocab_size: -3 }, `"vocab_size"`);
  await bad({ num_key_value_heads: 3 }, `"num_attention_heads"`, `"num_key_value_heads"`, "divisible");
  await bad({ hidden_size: 60 }, `"hidden_size"`, "divisible");
  await bad({ rms_norm_eps: "x" }, `"rms_norm_eps"`);
  await bad({ rope_theta: 0 }, `"rope_theta"`);
  await bad({ rope_scaling: { type: "linear", factor: 2 } }, `"rope_scaling"`, "linear", "not supported");
  await bad(
    { rope_parameters: { rope_type: "llama3", rope_theta: 1 } },
    "rope_type",
    "llama3",
    "not supported",
  );
  await bad({ torch_dtype: "int8" }, `"torch_dtype"`, "int8");
  await bad({ tie_word_embeddings: "yes" }, `"tie_word_embeddings"`);
  await bad({ attention_bias: true }, `"attention_bias"`, "not supported");
  await bad({ hidden_act: "gelu" }, `"hidden_act"`, "gelu");
  await bad({ eos_token_id: "x" }, `"eos_token_id"`);
  await assertLoadError(
    () =>
      parseLlamaConfig("/m/config.json", OLD, {
        file: "/m/generation_config.json",
        json: { eos_token_id: [1, "2"] },
      }),
    "generation_config.json",
    `"eos_token_id"`,
  );
});

Deno.test("config files: missing, not JSON, bad generation_config", async () => {
  const dir = await copyTiny(["config.json", "generation_config.json"]);
  await Deno.writeTextFile(`${dir}/generation_config.json`, "{,}");
  await assertLoadError(loadLlamaConfig(dir), "generation_config.json", "not valid JSON");
  await Deno.writeTextFile(`${dir}/config.json`, '{"hidden_size": 12');
  await assertLoadError(loadLlamaConfig(dir), "config.json", "not valid JSON");
  await Deno.remove(`${dir}/config.json`);
  await assertLoadError(loadLlamaConfig(dir), "config.json", "not found");
});
