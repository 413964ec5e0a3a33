/**
 * `deno task generate` as a user runs it: a subprocess per case. Checks the help text, the `--json`
 * output contract, `--chat` on the bundled tiny model, and that every kind of bad input ends with a
 * non-zero exit and exactly one `error:` line on stderr that names the culprit (no stack trace).
 *
 * stderr is compared whole, unfiltered: the subprocess is `Deno.execPath()` itself (not `npx`), so the
 * "npm warn" lines that npx prints never reach it, and no other noise has been observed. If a
 * platform ever adds lines of its own, filter them here, by exact pattern, and say why.
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type CliResult, runCli } from "@gto/core/testing";

const CLI = fileURLToPath(new URL("./main.ts", import.meta.url));
const TINY = fileURLToPath(new URL("../../models/tiny", import.meta.url));

function cli(...args: string[]): Promise<CliResult> {
  return runCli(CLI, ...args);
}

/** Non-zero exit, nothing on stdout, exactly one stderr line `error: …` matching `culprit`. */
async function expectError(args: string[], culprit: RegExp): Promise<void> {
  const r = await cli(...args);
  const what = `generate ${args.join(" ")}\nstderr: ${r.stderr}`;
  assert.notEqual(r.code, 0, `${what}: exit code`);
  assert.equal(r.stdout, "", `${what}: stdout`);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `${what}: expected exactly one stderr line`);
  assert.match(lines[0], /^error: /, what);
  assert.match(lines[0], culprit, what);
  assert.doesNotMatch(r.stderr, /\n\s+at |Stack|Uncaught/, `${what}: stack trace`);
}

/** A fresh copy of tiny in a temp dir, handed to `fn`, removed afterwards. */
async function withTinyCopy(fn: (dir: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "gto_generate_test_" });
  try {
    for await (const e of Deno.readDir(TINY)) {
      if (e.isFile) await Deno.copyFile(`${TINY}/${e.name}`, `${tmp}/${e.name}`);
    }
    await fn(tmp);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

const FLAGS = [
  "--model",
  "--prompt",
  "--chat",
  "--max-tokens",
  "--temperature",
  "--top-p",
  "--top-k",
  "--seed",
  "--weight-dtype",
  "--steps-per-read",
  "--draft",
  "--no-draft",
  "--tree",
  "--json",
  "--verbose",
  "--help",
  "-h",
];

Deno.test("generate CLI: --help exits 0 and documents every flag", async () => {
  const r = await cli("--help");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.match(r.stdout, /^Usage: /);
  // Every option the parser accepts (the flag table drives the parser, so a new flag without help fails here).
  const { FLAGS: table } = await import("./main.ts");
  const parsed = table.map((f) => `--${f.flag}`);
  assert.ok(parsed.length >= 13, `flags in the table: ${parsed}`);
  for (const f of new Set([...FLAGS, ...parsed])) {
    assert.match(r.stdout, new RegExp(`(^|[\\s,])${f}\\b`), `help does not document ${f}`);
  }
  const short = await cli("-h");
  assert.equal(short.code, 0);
  assert.equal(short.stdout, r.stdout);
});

Deno.test("generate CLI: --prompt --json prints one JSON object with the documented fields", async () => {
  // --no-draft: the plain-decoding contract, also once the bundled default draft exists.
  const r = await cli("--prompt", "Hello", "--max-tokens", "8", "--json", "--no-draft");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  const lines = r.stdout.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `one JSON line expected, got:\n${r.stdout}`);
  const o = JSON.parse(lines[0]);
  assert.deepEqual(
    Object.keys(o).sort(),
    ["completion_tokens", "finish_reason", "prompt_tokens", "text", "tokens", "tokens_per_second"],
  );
  assert.equal(typeof o.text, "string");
  assert.ok(Array.isArray(o.tokens));
  for (const t of o.tokens) assert.ok(Number.isInteger(t) && t >= 0 && t < 8192, `token ${t}`);
  assert.ok(Number.isInteger(o.prompt_tokens) && o.prompt_tokens >= 1);
  assert.ok(Number.isInteger(o.completion_tokens));
  assert.equal(o.tokens.length, o.completion_tokens);
  assert.ok(o.completion_tokens <= 8);
  assert.ok(typeof o.tokens_per_second === "number" && o.tokens_per_second >= 0);
  assert.ok(o.finish_reason === "stop" || o.finish_reason === "length", o.finish_reason);
  if (o.finish_reason === "length") assert.equal(o.completion_tokens, 8);
});

Deno.test("generate CLI: --chat on tiny (JSON and streamed text agree; greedy is deterministic)", async () => {
  const args = ["--chat", "What is 2 plus 3?", "--max-tokens", "12"];
  const j = await cli(...args, "--json");
  assert.equal(j.code, 0, j.stderr);
  const o = JSON.parse(j.stdout);
  // The chat template wraps the message: more prompt tokens than the bare text.
  assert.ok(o.prompt_tokens > 6, `prompt_tokens ${o.prompt_tokens}`);
  assert.ok(o.completion_tokens >= 1 && o.completion_tokens <= 12);
  assert.equal(o.tokens.length, o.completion_tokens);
  const s = await cli(...args, "--steps-per-read", "5");
  assert.equal(s.code, 0, s.stderr);
  assert.equal(s.stderr, "");
  assert.equal(s.stdout, `${o.text}\n`, "streamed text equals the JSON text");
});

Deno.test("generate CLI: bad model directories → one error line naming the file", async () => {
  await expectError(["--model", "/nonexistent/gto-model", "--prompt", "hi"], /\/nonexistent\/gto-model/);
  const empty = await Deno.makeTempDir({ prefix: "gto_generate_test_" });
  try {
    await expectError(["--model", empty, "--prompt", "hi"], /config\.json/);
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
  await withTinyCopy(async (dir) => {
    const f = await Deno.open(`${dir}/model.safetensors`, { write: true });
    await f.truncate(1_000_000);
    f.close();
    await expectError(["--model", dir, "--prompt", "hi"], /model\.safetensors.*(past the end|truncated)/);
  });
  await withTinyCopy(async (dir) => {
    const cfg = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    cfg.model_type = "mamba";
    cfg.architectures = ["MambaForCausalLM"];
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg));
    await expectError(["--model", dir, "--prompt", "hi"], /config\.json.*architecture.*mamba/i);
  });
  await withTinyCopy(async (dir) => {
    await Deno.writeTextFile(`${dir}/tokenizer.json`, '{"model": {"type": "BPE", "vocab": ');
    await expectError(["--model", dir, "--prompt", "hi"], /tokenizer\.json/);
  });
});

Deno.test("generate CLI: bad flags → one error line naming the flag", async () => {
  await expectError(["--prompt", "hi", "--max-tokens", "0"], /--max-tokens "0"/);
  await expectError(["--prompt", "hi", "--temperature", "-1"], /--temperature "-1".*≥ 0/);
  await expectError(["--prompt", "hi", "--temperature=-1"], /--temperature "-1"/);
  await expectError(["--prompt", "hi", "--top-p", "1.5"], /--top-p "1\.5"/);
  await expectError(["--prompt", "hi", "--chat", "hi"], /--prompt or --chat/);
  await expectError(["--max-tokens", "4"], /--prompt or --chat/);
  await expectError(["--prompt", "hi", "--bogus"], /--bogus/);
  await expectError(["--prompt", "hi", "stray"], /stray/);
  await expectError(["--prompt"], /--prompt/);
  await expectError(["--prompt", "hi", "--weight-dtype", "bf8"], /--weight-dtype "bf8"/);
  await expectError(["--prompt", "hi", "--draft", "x", "--no-draft"], /--draft and --no-draft/);
  await expectError(
    ["--prompt", "hi", "--max-tokens", "5000", "--no-draft"],
    /--max-tokens 5000 exceeds the model's context/,
  );
});

Deno.test("generate CLI: --draft decodes speculatively, losslessly, and reports acceptance", async () => {
  const { Eagle3Draft, KernelCache, loadModelDir, Recorder } = await import("@gto/core");
  const { testGpu } = await import("@gto/core/testing");
  const { gpu } = await testGpu();
  const tmp = await Deno.makeTempDir({ prefix: "gto_generate_draft_" });
  try {
    const draft = Eagle3Draft.create(gpu, await loadModelDir(TINY), {
      seed: 3,
      draftVocabSize: 256,
      maxSeqLen: 64,
    });
    await draft.save(new Recorder(gpu, new KernelCache(gpu)), tmp);
    draft.destroy();
    const plain = await cli("--prompt", "def add(a, b):", "--max-tokens", "12", "--json");
    const spec = await cli(
      "--prompt",
      "def add(a, b):",
      "--max-tokens",
      "12",
      "--json",
      "--draft",
      tmp,
      "--tree",
      "8,2,3",
    );
    assert.equal(spec.code, 0, spec.stderr);
    const p = JSON.parse(plain.stdout), s = JSON.parse(spec.stdout);
    assert.deepEqual(s.tokens, p.tokens, "T=0 speculative output equals plain greedy");
    assert.equal(s.text, p.text);
    assert.ok(Number.isInteger(s.cycles) && s.cycles >= 1, `cycles ${s.cycles}`);
    assert.ok(s.acceptance_length >= 1, `acceptance_length ${s.acceptance_length}`);
    assert.equal(s.accepted_per_position.length, 3, "tree 8,2,3 has paths of up to 3 drafts");
    await expectError(["--prompt", "x", "--no-draft", "--tree", "8,2,3"], /--tree needs --draft/);
    await expectError(["--prompt", "x", "--draft", tmp, "--tree", "8,2"], /--tree "8,2"/);
    await expectError(["--prompt", "x", "--draft", `${tmp}/missing`], /missing/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
