/**
 * The shared flags table: every kind converts from argv and from a config file, bounds and choices
 * give one-line messages naming the flag (or file and key), negative numbers reach the range check,
 * flags override the config file, and --help lists every row.
 * @module
 */
import assert from "node:assert/strict";
import { FlagError, type FlagSpec, helpText, parseConfigText, parseFlags } from "./flags.ts";

interface S {
  n: number;
  t: number;
  p: number;
  name: string;
  model: string[];
  on: boolean;
  dtype: string;
  bench: string[];
  temps: number[];
  tree: { totalTokens: number; depth: number; topK: number };
}

const FLAGS: readonly FlagSpec<keyof S>[] = [
  { flag: "n", key: "n", kind: "int", min: 1, arg: "N", help: "count" },
  { flag: "temperature", key: "t", kind: "num", min: 0, arg: "T", help: "temperature" },
  { flag: "top-p", key: "p", kind: "num", gt: 0, max: 1, arg: "P", help: "mass" },
  { flag: "name", key: "name", kind: "string", arg: "S", help: "a name" },
  {
    flag: "model",
    key: "model",
    kind: "string",
    multiple: true,
    arg: "DIR",
    help: "repeatable",
    cliOnly: true,
  },
  { flag: "on", key: "on", kind: "bool", help: "switch" },
  { flag: "dtype", key: "dtype", kind: "enum", choices: ["f32", "f16"], arg: "D", help: "dtype" },
  { flag: "bench", key: "bench", kind: "list", choices: ["a", "b", "c"], arg: "LIST", help: "benches" },
  { flag: "temps", key: "temps", kind: "numList", min: 0, arg: "LIST", help: "temps" },
  { flag: "tree", key: "tree", kind: "tree", arg: "T,D,K", help: "tree" },
];

const parse = (...argv: string[]) => parseFlags<S>(FLAGS, argv, { config: true });
async function fails(argv: string[], re: RegExp): Promise<void> {
  await assert.rejects(parse(...argv), (e: unknown) => {
    assert.ok(e instanceof FlagError, String(e));
    assert.match(e.message, re);
    assert.ok(!e.message.includes("\n"));
    return true;
  });
}

Deno.test("parseFlags: every kind from argv, with one-line errors naming the flag", async () => {
  const r = await parse(
    "--n=3",
    "--temperature",
    "0.5",
    "--top-p",
    "1",
    "--name",
    "x",
    "--model",
    "a",
    "--model",
    "b",
    "--on",
    "--dtype",
    "f16",
    "--bench",
    "c,a",
    "--temps",
    "0,1.5",
    "--tree",
    "8,2,3",
  );
  assert.deepEqual(r.given, {
    n: 3,
    t: 0.5,
    p: 1,
    name: "x",
    model: ["a", "b"],
    on: true,
    dtype: "f16",
    bench: ["c", "a"],
    temps: [0, 1.5],
    tree: { totalTokens: 8, depth: 2, topK: 3 },
  });
  assert.equal(r.help, false);
  assert.deepEqual((await parse("-h")).help, true);
  await fails(["--n", "0"], /^--n "0": expected an integer ≥ 1$/);
  await fails(["--n", "1.5"], /--n "1\.5"/);
  await fails(["--temperature", "-1"], /^--temperature "-1": expected a number ≥ 0$/);
  await fails(["--top-p", "0"], /--top-p "0": expected a number in \(0, 1\]/);
  await fails(["--dtype", "bf8"], /--dtype "bf8": expected one of f32, f16/);
  await fails(["--bench", "a,a"], /--bench "a,a"/);
  await fails(["--bench", "d"], /list \(or array\) of a, b, c/);
  await fails(["--temps", "0,-1"], /--temps "0,-1"/);
  await fails(["--tree", "8,2"], /--tree "8,2": expected TOTAL,DEPTH,TOPK/);
  await fails(["--bogus"], /bogus.*see --help/);
  await fails(["stray"], /stray/);
  await fails(["--name"], /--name/);
});

Deno.test("parseFlags: config file keys are flag names; flags override it; bad files name file and key", async () => {
  const tmp = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(
      tmp,
      '{"n": 4, "temperature": 0.7, "bench": ["b"], "tree": [4, 1, 3], "on": false}',
    );
    const r = await parse("--config", tmp, "--n", "9");
    assert.deepEqual(r.given, {
      n: 9,
      t: 0.7,
      bench: ["b"],
      tree: { totalTokens: 4, depth: 1, topK: 3 },
      on: false,
    });
    assert.deepEqual([...r.explicit].sort(), ["bench", "n", "on", "t", "tree"]);
  } finally {
    await Deno.remove(tmp);
  }
  assert.throws(() => parseConfigText(FLAGS, "c.json", '{"t": 1}'), /unknown key "t".*"temperature"/);
  assert.throws(() => parseConfigText(FLAGS, "c.json", '{"model": ["a"]}'), /unknown key "model"/);
  assert.throws(
    () => parseConfigText(FLAGS, "c.json", '{"n": "3"}'),
    /key "n" must be an integer ≥ 1, got string "3"/,
  );
  assert.throws(() => parseConfigText(FLAGS, "c.json", "[1]"), /c\.json: expected a JSON object/);
  assert.throws(() => parseConfigText(FLAGS, "c.json", "{"), /c\.json: not valid JSON/);
  await fails(["--config", "/nonexistent/c.json"], /--config \/nonexistent\/c\.json: cannot read/);
});

Deno.test("helpText lists every flag with its placeholder, --help and the footer", () => {
  const h = helpText(FLAGS, { usage: "x [options]", description: "Does x.", footer: "Example: x --n 2" });
  assert.match(h, /^Usage: x \[options\]\n\nDoes x\.\n\nOptions:\n/);
  for (const f of FLAGS) assert.match(h, new RegExp(`--${f.flag}${f.arg ? ` ${f.arg}` : ""}\\s`));
  assert.match(h, /-h, --help/);
  assert.match(h, /Example: x --n 2\n$/);
  for (const line of h.split("\n")) assert.ok(line.length <= 110, line);
});
