/**
 * Tests of the acceptance benchmark: the eval loaders on small synthetic files (plain and gzip), bad
 * files → one-line EvalDataErrors naming file and line, and one end-to-end run of the harness on the
 * bundled tiny target with a freshly created random draft saved to disk (so the draft is loaded the
 * way the CLI loads it): T=0 speculative output must equal plain greedy on every prompt, and the
 * markdown table must carry every column.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { Eagle3Draft, KernelCache, loadModelDir, Recorder } from "@gto/core";
import { testGpu } from "@gto/core/testing";
import { EvalDataError, loadGsm8k, loadHumanEval, loadMtBench } from "./eval_data.ts";
import { formatMarkdown, runAcceptBench, TABLE_COLUMNS } from "./accept.ts";

const TINY = decodeURIComponent(new URL("../models/tiny", import.meta.url).pathname);

async function gzip(text: string): Promise<Uint8Array> {
  const s = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

const MT = [
  { question_id: 81, category: "writing", turns: ["Write a haiku about rain.", "Now make it rhyme."] },
  { question_id: 82, category: "math", turns: ["What is 7 times 8?", "And 8 times 9?"] },
  {
    question_id: 83,
    category: "coding",
    turns: ["Write a Python function that adds two numbers.", "Add types."],
  },
];
const HE = [
  { task_id: "HumanEval/0", prompt: 'def add(a, b):\n    """Return a + b."""\n', entry_point: "add" },
  { task_id: "HumanEval/1", prompt: "def double(x: int) -> int:\n", entry_point: "double" },
  { task_id: "HumanEval/2", prompt: "def neg(x):\n", entry_point: "neg" },
];
const GSM = [
  { question: "Tom has 3 apples and buys 4 more. How many apples does he have?", answer: "3+4=7\n#### 7" },
  { question: "A box holds 6 eggs. How many eggs are in 5 boxes?", answer: "6*5=30\n#### 30" },
  { question: "Sam reads 10 pages a day. How many pages in a week?", answer: "#### 70" },
];

/** Write a synthetic eval directory (blank lines included, which the loaders skip). */
async function writeEvalDir(root: string): Promise<void> {
  await Deno.mkdir(`${root}/mt_bench`, { recursive: true });
  await Deno.mkdir(`${root}/humaneval`, { recursive: true });
  await Deno.mkdir(`${root}/gsm8k`, { recursive: true });
  const jsonl = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).join("\n") + "\n";
  await Deno.writeTextFile(`${root}/mt_bench/question.jsonl`, jsonl(MT).replace("\n", "\n\n"));
  await Deno.writeFile(`${root}/humaneval/HumanEval.jsonl.gz`, await gzip(jsonl(HE)));
  await Deno.writeTextFile(`${root}/gsm8k/test.jsonl`, jsonl(GSM));
}

Deno.test("eval loaders: first n items of synthetic MT-Bench, gzipped HumanEval and GSM8K files", async () => {
  const root = await Deno.makeTempDir({ prefix: "accept_eval_" });
  try {
    await writeEvalDir(root);
    const mt = await loadMtBench(`${root}/mt_bench/question.jsonl`, 2);
    deepEqual(mt, MT.slice(0, 2).map((q) => ({ id: q.question_id, category: q.category, turns: q.turns })));
    const he = await loadHumanEval(`${root}/humaneval/HumanEval.jsonl.gz`, 2);
    deepEqual(he, HE.slice(0, 2).map((t) => ({ id: t.task_id, prompt: t.prompt })));
    const gsm = await loadGsm8k(`${root}/gsm8k/test.jsonl`, 1);
    deepEqual(gsm, [{ id: 0, question: GSM[0].question }]);
    equal((await loadGsm8k(`${root}/gsm8k/test.jsonl`, 100)).length, 3, "n beyond the file: all items");
    equal((await loadMtBench(`${root}/mt_bench/question.jsonl`, 100)).length, 3, "blank lines skipped");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("eval loaders: missing and malformed files fail with one-line errors naming file and line", async () => {
  const root = await Deno.makeTempDir({ prefix: "accept_bad_" });
  const bad = async (
    name: string,
    content: string | Uint8Array,
    load: (f: string) => Promise<unknown>,
    re: RegExp,
  ) => {
    const f = `${root}/${name}`;
    if (typeof content === "string") await Deno.writeTextFile(f, content);
    else await Deno.writeFile(f, content);
    await rejects(load(f), (e: Error) => {
      ok(e instanceof EvalDataError, `${name}: ${e}`);
      ok(!e.message.includes("\n"), `${name}: one line: ${e.message}`);
      ok(e.message.startsWith(f), `${name}: names the file: ${e.message}`);
      match(e.message, re);
      return true;
    });
  };
  try {
    await rejects(loadGsm8k(`${root}/nope.jsonl`, 3), /nope\.jsonl: file not found/);
    await rejects(loadHumanEval(`${root}/nope.jsonl.gz`, 3), /nope\.jsonl\.gz: file not found/);
    const q = JSON.stringify({ question: "x", answer: "y" });
    await bad(
      "gsm_json.jsonl",
      `${q}\n{"question": "unterminated\n`,
      (f) => loadGsm8k(f, 5),
      /:2: not valid JSON/,
    );
    await bad(
      "gsm_field.jsonl",
      `${q}\n${q}\n{"answer": "3"}\n`,
      (f) => loadGsm8k(f, 5),
      /:3: field "question" is missing/,
    );
    await bad("gsm_type.jsonl", `{"question": 7}\n`, (f) => loadGsm8k(f, 5), /:1: field "question" is 7/);
    await bad("gsm_array.jsonl", `[1, 2]\n`, (f) => loadGsm8k(f, 5), /:1: expected one JSON object per line/);
    await bad("gsm_empty.jsonl", "\n\n", (f) => loadGsm8k(f, 5), /contains no items/);
    await bad(
      "mt_turns.jsonl",
      `{"question_id": 81, "turns": "hi"}\n`,
      (f) => loadMtBench(f, 5),
      /:1: field "turns"/,
    );
    await bad(
      "mt_id.jsonl",
      `{"question_id": "a", "turns": ["hi"]}\n`,
      (f) => loadMtBench(f, 5),
      /:1: field "question_id"/,
    );
    await bad(
      "he_plain.jsonl.gz",
      `{"task_id": "a", "prompt": "b"}\n`,
      (f) => loadHumanEval(f, 5),
      /not a gzip file/,
    );
    const gz = await gzip(`{"task_id": "a", "prompt": "b"}\n`.repeat(50));
    await bad("he_trunc.jsonl.gz", gz.slice(0, gz.length - 12), (f) => loadHumanEval(f, 5), /corrupt gzip/);
    await bad(
      "he_field.jsonl.gz",
      await gzip(`{"task_id": "a"}\n`),
      (f) => loadHumanEval(f, 5),
      /:1: field "prompt"/,
    );
    // Only the first n items are parsed: a bad line after them does not matter.
    await Deno.writeTextFile(`${root}/gsm_tail.jsonl`, `${q}\nnot json\n`);
    equal((await loadGsm8k(`${root}/gsm_tail.jsonl`, 1)).length, 1);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("harness on tiny with a random saved draft: T=0 lossless, every column in the table", async () => {
  const root = await Deno.makeTempDir({ prefix: "accept_run_" });
  const { gpu } = await testGpu(); // the process-wide device: one Vulkan device per test process
  const rec = new Recorder(gpu, new KernelCache(gpu));
  try {
    await writeEvalDir(`${root}/eval`);
    const dir = await loadModelDir(TINY);
    const draft = Eagle3Draft.create(gpu, dir, { seed: 3, maxSeqLen: 64, maxBatch: 16 });
    await draft.save(rec, `${root}/draft`);
    draft.destroy();
    const report = await runAcceptBench({
      target: TINY,
      draft: `${root}/draft`,
      evalDir: `${root}/eval`,
      n: 2,
      maxTokens: 8,
      temperatures: [0, 1],
      tree: { totalTokens: 8, depth: 2, topK: 3 },
      gpu,
      log: () => {},
    });
    // 2 MT-Bench questions × 2 turns + 2 + 2 prompts, at two temperatures.
    equal(report.prompts.length, 2 * (4 + 2 + 2));
    equal(report.mismatches, 0, "T=0 speculative output differs from plain greedy");
    for (const p of report.prompts) {
      ok(!p.skipped, `${p.bench} ${p.id} skipped`);
      ok(p.plain && p.spec, `${p.bench} ${p.id}: both decoders ran`);
      if (p.temperature === 0) equal(p.match, true, `${p.bench} ${p.id} turn ${p.turn}`);
      ok(p.spec!.tokens <= 8 && p.plain!.tokens <= 8);
      ok(p.spec!.cycles >= 1 || p.spec!.tokens <= 1, `${p.bench} ${p.id}: cycles ${p.spec!.cycles}`);
      for (const d of [p.plain!, p.spec!]) {
        ok(
          d.decodeSeconds >= 0 && d.decodeSeconds < d.seconds,
          `decode ${d.decodeSeconds} s of ${d.seconds} s`,
        );
      }
    }
    const mt2 = report.prompts.find((p) => p.bench === "mt_bench" && p.turn === 2)!;
    const mt1 = report.prompts.find((p) => p.bench === "mt_bench" && p.turn === 1)!;
    ok(mt2.promptTokens > mt1.promptTokens, "turn 2 carries turn 1 and its answer");
    equal(report.rows.length, 2 * 4, "3 benchmarks + all, per temperature");
    for (const r of report.rows) {
      ok(r.tau >= 1 && r.tau <= 5, `${r.bench} T=${r.temperature}: τ ${r.tau}`);
      ok(r.speedup !== null && r.speedup > 0);
      equal(r.acceptedPerPosition.length, 3, "Dp − 1 = depth + 1 positions");
      // τ = 1 + Σ_d accepted@d.
      const s = r.acceptedPerPosition.reduce((a, b) => a + b, 0);
      ok(Math.abs(r.tau - 1 - s) < 1e-9, `τ ${r.tau} vs 1 + Σ accepted ${1 + s}`);
      equal(r.mismatches, r.temperature === 0 ? 0 : null);
    }
    const all = report.rows.find((r) => r.bench === "all" && r.temperature === 0)!;
    equal(all.prompts, 8);
    const md = formatMarkdown(report);
    const header = md.split("\n").find((l) => l.startsWith("| bench"))!;
    for (const c of TABLE_COLUMNS) ok(header.includes(` ${c} `), `column ${c} missing from ${header}`);
    equal(md.split("\n").filter((l) => l.startsWith("| ")).length, 1 + report.rows.length);
    ok(md.includes("losslessness: speculative output identical"));
    JSON.parse(JSON.stringify(report)); // the JSON written by --json round-trips
  } finally {
    rec.destroy();
    await Deno.remove(root, { recursive: true });
  }
});
