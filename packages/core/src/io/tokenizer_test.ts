import assert from "node:assert/strict";
import { loadTokenizer } from "./tokenizer.ts";
import { assertLoadError, copyTiny, TINY_DIR } from "./_testing.ts";

interface RefCase {
  kind: string;
  prompt: string;
  input_ids: number[];
  greedy_48: number[];
  greedy_48_text?: string;
}

const reference = JSON.parse(await Deno.readTextFile(`${TINY_DIR}/reference.json`)) as { cases: RefCase[] };

Deno.test("tiny tokenizer reproduces reference.json input_ids and greedy text", async () => {
  const tok = await loadTokenizer(TINY_DIR);
  assert.equal(tok.vocabSize, 8192);
  assert.equal(tok.bosToken, "<|endoftext|>");
  assert.equal(tok.eosToken, "<|end|>");
  assert.equal(tok.tokenId("<|end|>"), 4);
  assert.equal(tok.tokenId("<|pad|>"), 5);
  assert.equal(tok.tokenId("no such token"), undefined);
  assert.ok(reference.cases.length > 0);
  for (const c of reference.cases) {
    assert.deepEqual(tok.encode(c.prompt), c.input_ids, c.prompt);
    assert.equal(tok.decode(c.input_ids), c.prompt);
    if (c.greedy_48_text !== undefined) assert.equal(tok.decode(c.greedy_48), c.greedy_48_text);
  }
  // No specials added by the tokenizer itself; skipSpecialTokens drops the literal ones.
  assert.deepEqual(
    tok.encode("hi", { addSpecialTokens: true }),
    tok.encode("hi", { addSpecialTokens: false }),
  );
  assert.equal(
    tok.decode(tok.encode("<|endoftext|>héllo 😀 日本\n  x<|end|>"), { skipSpecialTokens: true }),
    "héllo 😀 日本\n  x",
  );
  assert.deepEqual(tok.encode("2024").length, 4); // digits split
});

Deno.test("special tokens written as {content} objects are accepted", async () => {
  const dir = await copyTiny(["tokenizer.json", "tokenizer_config.json"]);
  const cfg = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
  cfg.bos_token = { content: "<|endoftext|>", lstrip: false, special: true };
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify(cfg));
  const tok = await loadTokenizer(dir);
  assert.equal(tok.bosToken, "<|endoftext|>");
});

Deno.test("bad tokenizer files name the file and field", async () => {
  const dir = await copyTiny(["tokenizer.json", "tokenizer_config.json"]);
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ eos_token: 4 }));
  await assertLoadError(loadTokenizer(dir), "tokenizer_config.json", `"eos_token"`);
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, "{oops");
  await assertLoadError(loadTokenizer(dir), "tokenizer_config.json", "not valid JSON");
  await Deno.copyFile(`${TINY_DIR}/tokenizer_config.json`, `${dir}/tokenizer_config.json`);
  await Deno.writeTextFile(`${dir}/tokenizer.json`, '{"version": "1.0", "model": ');
  await assertLoadError(loadTokenizer(dir), "tokenizer.json", "not valid JSON");
  await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify({ version: "1.0" }));
  await assertLoadError(loadTokenizer(dir), "tokenizer.json", `"model"`);
  await Deno.writeTextFile(
    `${dir}/tokenizer.json`,
    JSON.stringify({ version: "1.0", model: { type: "Nope" } }),
  );
  await assertLoadError(loadTokenizer(dir), "tokenizer.json", "cannot build tokenizer");
  await Deno.remove(`${dir}/tokenizer.json`);
  await assertLoadError(loadTokenizer(dir), "tokenizer.json", "not found");
});
