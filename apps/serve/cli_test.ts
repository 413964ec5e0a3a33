/**
 * `deno task serve` flags: defaults (the bundled draft only with the bundled target), every flag, one-line
 * errors naming the flag, loopback detection, and the CLI itself (--help, a bad flag, a model that cannot
 * load, the non-loopback warning) as a subprocess — none of it needs a GPU.
 */
import assert from "node:assert/strict";
import { DEFAULT_DRAFT, DEFAULT_MODEL, FlagError, isLoopback, parseServeArgs } from "./cli.ts";

const noEnv = () => undefined;

Deno.test("serve flags: defaults (bundled tiny; draft only when models/tiny-draft exists)", async () => {
  const withDraft = await parseServeArgs([], noEnv, () => true);
  assert.ok(withDraft !== "help");
  assert.equal(withDraft.model, DEFAULT_MODEL);
  assert.equal(withDraft.draft, DEFAULT_DRAFT);
  assert.deepEqual(
    [withDraft.host, withDraft.port, withDraft.maxQueue, withDraft.queueTimeout, withDraft.maxBody],
    ["127.0.0.1", 8000, 8, 60, 1 << 20],
  );
  assert.equal(withDraft.apiKey, undefined);
  const plain = await parseServeArgs([], noEnv, () => false);
  assert.ok(plain !== "help");
  assert.equal(plain.draft, null);
  assert.equal(await parseServeArgs(["--help"], noEnv), "help");
});

Deno.test("serve flags: every flag parses", async () => {
  const c = await parseServeArgs(
    [
      "--model=m",
      "--draft",
      "d",
      "--tree",
      "8,3,3",
      "--host",
      "0.0.0.0",
      "--port",
      "0",
      "--api-key",
      "k",
      "--served-model-name",
      "a, b",
      "--max-context",
      "512",
      "--max-queue",
      "0",
      "--queue-timeout",
      "0.5",
      "--max-body",
      "4k",
      "--max-tokens-default",
      "32",
      "--weight-dtype",
      "f16",
    ],
    noEnv,
  );
  assert.deepEqual(c, {
    model: "m",
    draft: "d",
    tree: { totalTokens: 8, depth: 3, topK: 3 },
    host: "0.0.0.0",
    port: 0,
    apiKey: "k",
    servedModelNames: ["a", "b"],
    maxContext: 512,
    maxQueue: 0,
    queueTimeout: 0.5,
    maxBody: 4096,
    maxTokensDefault: 32,
    weightDtype: "f16",
  });
  const env = await parseServeArgs(["--no-draft"], (n) => (n === "GTO_API_KEY" ? "from-env" : undefined));
  assert.ok(env !== "help");
  assert.equal(env.apiKey, "from-env");
  assert.equal(env.draft, null);
  const other = await parseServeArgs(["--model", "elsewhere"], noEnv, () => true);
  assert.ok(other !== "help");
  assert.equal(other.draft, undefined, "another target: the engine decides (no bundled draft)");
});

Deno.test("serve flags: bad values are one-line errors naming the flag", async () => {
  const bad: [string[], RegExp][] = [
    [["--port", "70000"], /--port "70000"/],
    [["--port", "x"], /--port/],
    [["--tree", "1,2"], /--tree/],
    [["--no-draft", "--tree", "8,3,3"], /--tree needs a draft/],
    [["--draft", "d", "--no-draft"], /not both/],
    [["--max-body", "lots"], /--max-body/],
    [["--queue-timeout", "-1"], /--queue-timeout/],
    [["--weight-dtype", "f8"], /--weight-dtype/],
    [["--max-queue", "-1"], /--max-queue/],
    [["--api-key", ""], /--api-key/],
    [["--bogus"], /bogus.*see --help/],
    [["--max-body", "10"], /--max-body "10".*64/],
    [["--served-model-name", " , "], /--served-model-name/],
    [["--tree", "8,0,3"], /--tree "8,0,3"/],
  ];
  for (const [argv, re] of bad) {
    await assert.rejects(parseServeArgs(argv, noEnv, () => true), (e: Error) => {
      assert.ok(e instanceof FlagError, argv.join(" "));
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("serve flags: a blank GTO_API_KEY is an error naming it; --api-key wins over the env", async () => {
  const blank = (n: string) => (n === "GTO_API_KEY" ? " " : undefined);
  await assert.rejects(parseServeArgs([], blank, () => true), /GTO_API_KEY/);
  const c = await parseServeArgs(["--api-key", "k"], blank, () => true);
  assert.ok(c !== "help");
  assert.equal(c.apiKey, "k");
});

Deno.test("loopback detection", () => {
  for (const h of ["127.0.0.1", "localhost", "::1", "127.1.2.3"]) assert.ok(isLoopback(h), h);
  for (const h of ["0.0.0.0", "192.168.1.2", "::"]) assert.ok(!isLoopback(h), h);
});

Deno.test("deno task serve: --help, a bad flag and a missing model are one error line and exit 1", async () => {
  const { runCli } = await import("../../packages/core/src/testing/cli.ts");
  const main = decodeURIComponent(new URL("./main.ts", import.meta.url).pathname);
  const help = await runCli(main, "--help");
  assert.equal(help.code, 0);
  for (const flag of ["--model", "--draft", "--no-draft", "--tree", "--host", "--port", "--api-key"]) {
    assert.ok(help.stdout.includes(flag), flag);
  }
  const bad = await runCli(main, "--port", "x");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: --port "x": expected an integer/);
  const missing = await runCli(main, "--model", "/nonexistent/model", "--port", "0");
  assert.equal(missing.code, 1);
  assert.match(missing.stderr.trim(), /^error: .*\/nonexistent\/model/);
  assert.equal(missing.stderr.trim().split("\n").length, 1, missing.stderr);
  // A non-loopback address without a key warns (before the model error here).
  const open = await runCli(main, "--model", "/nonexistent/model", "--host", "0.0.0.0", "--port", "0");
  assert.match(open.stderr, /^warning: binding 0\.0\.0\.0 \(not loopback\) without --api-key/);
  const keyed = await runCli(main, "--model", "/nonexistent/model", "--host", "0.0.0.0", "--api-key", "k");
  assert.ok(!keyed.stderr.includes("warning"), keyed.stderr);
});
