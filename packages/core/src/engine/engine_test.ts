/**
 * `Engine` on the bundled tiny model, through its public API (docs/engine.md §4). Expected outputs come
 * from independent sources where one exists: transformers' greedy tokens and text and its rendered
 * chat prompt (`models/tiny/reference.json`), and the plain `generate` loop on a separately loaded
 * model. Covers chat and complete (text and ids), T=0 plain = speculative, stop strings (one split
 * across two tokens), abort, FIFO order under concurrent calls, every bad input → EngineInputError
 * naming the field (the next call still works), and close.
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { testGpu } from "../testing/mod.ts";
import { loadModelDir } from "../io/model_dir.ts";
import { encodeChat } from "../io/chat.ts";
import { LlamaModel } from "../model/llama.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { generate } from "../decode/generate.ts";
import { TokenRing } from "../decode/ring.ts";
import { Recorder } from "../gpu/recorder.ts";
import { KernelCache } from "../gpu/kernel.ts";
import { type CycleTrace, defaultDraftFor, Engine, type GenerateOptions } from "./engine.ts";
import { EngineInputError } from "./validate.ts";
import type { ChatMessage } from "../io/chat.ts";

const TINY = fileURLToPath(new URL("../../../../models/tiny", import.meta.url));

interface RefCase {
  kind: string;
  prompt: string;
  input_ids: number[];
  greedy_48: number[];
  greedy_48_text: string;
}
const REF: RefCase[] = JSON.parse(await Deno.readTextFile(`${TINY}/reference.json`)).cases;
/** Case 0: one user message (GSM8K); case 3: system + user. Messages recovered from the rendered prompt. */
const CHAT0: ChatMessage[] = [{
  role: "user",
  content: REF[0].prompt.match(/<\|user\|>\n([\s\S]*?)<\|end\|>/)![1],
}];
const CHAT3: ChatMessage[] = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "What is the capital of France?" },
];

let shared: Promise<Engine> | null = null;
/** One plain engine for the tests that do not need a draft (maxContext 256 keeps buffers small). */
async function plainEngine(): Promise<Engine> {
  const { gpu } = await testGpu();
  shared ??= Engine.load({ target: TINY, draft: null, maxContext: 256, gpu });
  return shared;
}

Deno.test("encodeChat renders like transformers' apply_chat_template (reference.json input_ids)", async () => {
  const dir = await loadModelDir(TINY);
  assert.equal(REF[0].kind, "chat");
  assert.deepEqual(encodeChat(dir, CHAT0), REF[0].input_ids);
  assert.deepEqual(encodeChat(dir, CHAT3), REF[3].input_ids);
});

Deno.test("Engine: info, chat and complete at T=0 reproduce transformers' greedy tokens and text", async () => {
  const engine = await plainEngine();
  assert.deepEqual(engine.info.eosIds, [4, 0]);
  assert.equal(engine.info.model, "tiny");
  assert.equal(engine.info.draft, null);
  assert.equal(engine.info.tree, null);
  assert.equal(engine.info.maxContext, 256);
  assert.ok(engine.info.adapter.length > 0);
  for (const [messages, c] of [[CHAT0, REF[0]], [CHAT3, REF[3]]] as const) {
    const deltas: string[] = [];
    const r = await engine.chat(messages, { maxTokens: 48, onText: (d) => deltas.push(d) });
    assert.deepEqual(r.tokens, c.greedy_48);
    assert.equal(r.text, c.greedy_48_text);
    assert.equal(deltas.join(""), r.text, "onText deltas add up to the text");
    assert.equal(r.finishReason, "length");
    assert.deepEqual(r.usage, { promptTokens: c.input_ids.length, completionTokens: 48 });
    assert.equal(r.speculative, undefined);
    assert.ok(r.timing.firstTokenSeconds > 0 && r.timing.firstTokenSeconds <= r.timing.totalSeconds);
    assert.equal(engine.countChatTokens(messages), c.input_ids.length);
    assert.deepEqual(engine.tokenize("", { chat: messages }), c.input_ids);
  }
  // Raw text (the literal "<|endoftext|>" is the special token 0) and the same prompt as ids.
  const text = REF.find((c) => c.kind === "text" && c.prompt.includes("Once upon a time"))!;
  assert.deepEqual(engine.tokenize(text.prompt), text.input_ids);
  const a = await engine.complete(text.prompt, { maxTokens: 48, readEvery: 5 });
  const b = await engine.complete(text.input_ids, { maxTokens: 20 });
  assert.deepEqual(a.tokens, text.greedy_48);
  assert.equal(a.text, text.greedy_48_text);
  assert.deepEqual(b.tokens, text.greedy_48.slice(0, 20));
  assert.equal(engine.detokenize(text.greedy_48), text.greedy_48_text);
  assert.equal(engine.pending, 0);
});

Deno.test("Engine: T=0 equals plain generate(), and the speculative path (random draft) equals both", async () => {
  const { gpu } = await testGpu();
  const tmp = await Deno.makeTempDir({ prefix: "gto_engine_test_" });
  try {
    const dir = await loadModelDir(TINY);
    const d = Eagle3Draft.create(gpu, dir, { seed: 5, draftVocabSize: 256, maxSeqLen: 64 });
    const rec = new Recorder(gpu, new KernelCache(gpu));
    await d.save(rec, tmp);
    d.destroy();
    const messages: ChatMessage[] = [{ role: "user", content: "Count from one to five." }];
    const prompt = encodeChat(dir, messages);
    const model = await LlamaModel.load(gpu, dir, { maxSeqLen: 128 });
    const kv = model.createKvCache(), ring = new TokenRing(gpu, model.maxSeqLen);
    const want = await generate(model, rec, kv, ring.tensor, prompt, {
      maxTokens: 40,
      eosIds: dir.config.eosTokenIds,
    });
    kv.destroy();
    ring.destroy();
    model.destroy();
    rec.destroy();

    const engine = await Engine.load({
      target: TINY,
      draft: tmp,
      tree: { totalTokens: 8, depth: 2, topK: 3 },
      maxContext: 128,
      gpu,
    });
    try {
      assert.deepEqual(engine.info.tree, { totalTokens: 8, depth: 2, topK: 3 });
      assert.equal(engine.info.draft, tmp.split("/").pop());
      const spec = await engine.chat(messages, { maxTokens: 40 });
      const plain = await engine.chat(messages, { maxTokens: 40, speculative: false });
      assert.deepEqual(plain.tokens, want.tokens, "engine plain = generate()");
      assert.deepEqual(spec.tokens, want.tokens, "engine speculative = generate()");
      assert.equal(spec.finishReason, want.finishReason);
      assert.equal(spec.text, plain.text);
      assert.equal(plain.speculative, undefined);
      const s = spec.speculative!;
      assert.ok(s.cycles >= 1 && s.acceptanceLength >= 1, JSON.stringify(s));
      assert.equal(s.acceptedPerPosition.length, 3, "tree 8,2,3: paths of up to 3 drafts");
      // The per-cycle trace: opt-in, output unchanged, one trace per cycle, and the cycles' committed
      // tokens are the output after the prefill's first token.
      const traces: CycleTrace[] = [];
      const traced = await engine.chat(messages, { maxTokens: 40, onCycle: (c) => traces.push(c) });
      assert.deepEqual(traced.tokens, want.tokens);
      assert.equal(traces.length, traced.speculative!.cycles);
      traces.forEach((t, i) => {
        assert.equal(t.tokens.length, 8);
        assert.deepEqual([t.parents[0], t.depths[0], t.accepted[0]], [-1, 0, 0]);
        if (i < traces.length - 1) {
          // Accepted drafts + the bonus (only the last cycle may be cut at eos / max tokens).
          assert.equal(t.newTokens.length, t.accepted.length);
          assert.equal(t.newTokens.at(-1), t.bonus);
          assert.equal(traces[i + 1].tokens[0], t.bonus, "the bonus is the next cycle's root");
        }
      });
      const committed = traces.flatMap((t) => t.newTokens);
      assert.deepEqual(committed.slice(0, traced.tokens.length - 1), traced.tokens.slice(1));
      // Stop strings and abort on the speculative path too.
      const full = spec.text;
      const cut = full.indexOf(" ", 3);
      if (cut > 0) {
        const stopped = await engine.chat(messages, { maxTokens: 40, stop: [full.slice(cut, cut + 2)] });
        assert.equal(stopped.text, full.slice(0, cut));
        assert.equal(stopped.finishReason, "stop");
        assert.ok(stopped.speculative!.cycles >= 1, "statistics of the cycles run before the stop");
      }
      // A tree larger than a fixed cache would hold (the old `--tree 60,20,10` failure): the KV
      // caches are sized at load from the tree and maxContext; a request filling maxContext runs.
      const big = await Engine.load({
        target: TINY,
        draft: tmp,
        tree: { totalTokens: 60, depth: 20, topK: 10 },
        maxContext: prompt.length + 6,
        gpu,
      });
      const r = await big.chat(messages, { maxTokens: 6 });
      assert.deepEqual(r.tokens, want.tokens.slice(0, 6));
      await big.close();
    } finally {
      await engine.close();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("Engine: stop strings (one split across two tokens) cut the text before the match", async () => {
  const engine = await plainEngine();
  const dir = await loadModelDir(TINY);
  const c = REF[0], text = c.greedy_48_text;
  // A stop string made of the last 2 characters of token i and the first 2 of token i + 1, at the
  // first boundary where that is also the string's first occurrence in the reference text.
  let stop = "", at = -1, lastToken = -1, end = 0;
  for (let i = 0; i + 1 < c.greedy_48.length && at < 0; i++) {
    end += dir.tokenizer.decode([c.greedy_48[i]]).length;
    const next = dir.tokenizer.decode([c.greedy_48[i + 1]]);
    if (end < 2 || next.length < 2) continue;
    const s = text.slice(end - 2, end + 2);
    if (text.indexOf(s) === end - 2) [stop, at, lastToken] = [s, end - 2, i + 1];
  }
  assert.ok(at > 0, "found a stop string across a token boundary");
  const deltas: string[] = [];
  const r = await engine.chat(CHAT0, {
    maxTokens: 48,
    stop: ["never appears ~~~", stop],
    onText: (d) => deltas.push(d),
    readEvery: 4,
  });
  assert.equal(r.text, text.slice(0, at));
  assert.equal(r.finishReason, "stop");
  assert.deepEqual(
    r.tokens,
    c.greedy_48.slice(0, lastToken + 1),
    "tokens end with the one completing the stop",
  );
  assert.equal(deltas.join(""), r.text);
  assert.ok(!deltas.join("").includes(stop));
  // A stop string at the very start of the output gives empty text.
  const first = await engine.chat(CHAT0, { maxTokens: 8, stop: [text.slice(0, 3)] });
  assert.equal(first.text, "");
  assert.equal(first.finishReason, "stop");
  // Stop ids: the token at position 5 of the reference output ends generation before it.
  const ids = await engine.chat(CHAT0, { maxTokens: 48, stopTokenIds: [c.greedy_48[5]] });
  assert.deepEqual(ids.tokens, c.greedy_48.slice(0, c.greedy_48.indexOf(c.greedy_48[5])));
  assert.equal(ids.finishReason, "stop");
});

Deno.test("Engine: an AbortSignal ends the call within one readback batch", async () => {
  const engine = await plainEngine();
  const c = REF[0];
  const ac = new AbortController();
  const r = await engine.chat(CHAT0, {
    maxTokens: 48,
    readEvery: 4,
    signal: ac.signal,
    onText: () => ac.abort(),
  });
  assert.equal(r.finishReason, "abort");
  assert.ok(r.tokens.length >= 1 && r.tokens.length <= 5, `${r.tokens.length} tokens after the abort`);
  assert.deepEqual(r.tokens, c.greedy_48.slice(0, r.tokens.length));
  assert.ok(c.greedy_48_text.startsWith(r.text));
  // Aborted before it starts: no tokens.
  const pre = await engine.chat(CHAT0, { maxTokens: 8, signal: AbortSignal.abort() });
  assert.equal(pre.finishReason, "abort");
  assert.deepEqual(pre.tokens, []);
  // The engine is fine afterwards.
  const next = await engine.chat(CHAT0, { maxTokens: 10 });
  assert.deepEqual(next.tokens, c.greedy_48.slice(0, 10));
});

Deno.test("Engine: concurrent calls run one at a time in FIFO order with unchanged outputs", async () => {
  const engine = await plainEngine();
  const events: string[] = [];
  const call = (name: string, messages: ChatMessage[], n: number) => {
    let started = false;
    return engine.chat(messages, {
      maxTokens: n,
      readEvery: 2,
      onText: () => {
        if (!started) events.push(`start ${name}`);
        started = true;
      },
    }).then((r) => {
      events.push(`end ${name}`);
      return r;
    });
  };
  const ps = [call("a", CHAT0, 24), call("b", CHAT3, 24), call("c", CHAT0, 8)];
  assert.equal(engine.pending, 3);
  const [a, b, c] = await Promise.all(ps);
  assert.deepEqual(events, ["start a", "end a", "start b", "end b", "start c", "end c"]);
  assert.deepEqual(a.tokens, REF[0].greedy_48.slice(0, 24));
  assert.deepEqual(b.tokens, REF[3].greedy_48.slice(0, 24));
  assert.deepEqual(c.tokens, REF[0].greedy_48.slice(0, 8));
  assert.equal(engine.pending, 0);
});

Deno.test("Engine: every bad input throws EngineInputError naming the field; the next call works", async () => {
  const engine = await plainEngine();
  const ok: GenerateOptions = { maxTokens: 4 };
  const cases: [string, () => Promise<unknown>][] = [
    ["messages", () => engine.chat([], ok)],
    ["messages", () => engine.chat("hi" as unknown as ChatMessage[], ok)],
    ["messages[0].role", () => engine.chat([{ role: "robot", content: "x" } as unknown as ChatMessage], ok)],
    ["messages[1].content", () => engine.chat([CHAT0[0], { role: "user" } as unknown as ChatMessage], ok)],
    ["maxTokens", () => engine.chat(CHAT0, { maxTokens: 0 })],
    ["maxTokens", () => engine.chat(CHAT0, { maxTokens: 2.5 })],
    ["maxTokens", () => engine.chat(CHAT0, {} as GenerateOptions)],
    ["maxTokens", () => engine.chat(CHAT0, { maxTokens: 250 })], // 56 prompt + 250 > 256
    ["messages", () => engine.chat([{ role: "user", content: "word ".repeat(400) }], ok)],
    ["prompt", () => engine.complete("", ok)],
    ["prompt", () => engine.complete("x ".repeat(300), ok)],
    ["prompt[1]", () => engine.complete([1, 99999], ok)],
    ["prompt[0]", () => engine.complete([-1], ok)],
    ["prompt", () => engine.complete(7 as unknown as string, ok)],
    ["temperature", () => engine.chat(CHAT0, { ...ok, temperature: -1 })],
    ["temperature", () => engine.chat(CHAT0, { ...ok, temperature: NaN })],
    ["topP", () => engine.chat(CHAT0, { ...ok, topP: 0 })],
    ["topK", () => engine.chat(CHAT0, { ...ok, topK: -2 })],
    ["seed", () => engine.chat(CHAT0, { ...ok, seed: 2 ** 32 })],
    ["stop", () => engine.chat(CHAT0, { ...ok, stop: "x" as unknown as string[] })],
    ["stop[1]", () => engine.chat(CHAT0, { ...ok, stop: ["a", ""] })],
    ["stopTokenIds[0]", () => engine.chat(CHAT0, { ...ok, stopTokenIds: [8192] })],
    ["signal", () => engine.chat(CHAT0, { ...ok, signal: {} as AbortSignal })],
    ["onText", () => engine.chat(CHAT0, { ...ok, onText: "x" as unknown as () => void })],
    ["speculative", () => engine.chat(CHAT0, { ...ok, speculative: true })], // no draft loaded
    ["readEvery", () => engine.chat(CHAT0, { ...ok, readEvery: 0 })],
    ["temprature", () => engine.chat(CHAT0, { ...ok, temprature: 1 } as GenerateOptions)],
    ["options", () => engine.chat(CHAT0, null as unknown as GenerateOptions)],
  ];
  for (const [field, f] of cases) {
    await assert.rejects(f, (e: unknown) => {
      assert.ok(e instanceof EngineInputError, `${field}: ${e}`);
      assert.equal(e.field, field, e.message);
      assert.ok(e.message.startsWith(`${field}: `) && !e.message.includes("\n"), e.message);
      return true;
    });
  }
  assert.equal(engine.pending, 0, "nothing was queued");
  const r = await engine.chat(CHAT0, { maxTokens: 6 });
  assert.deepEqual(r.tokens, REF[0].greedy_48.slice(0, 6));
  // Load options.
  const { gpu } = await testGpu();
  const badLoads: [string, () => Promise<unknown>][] = [
    ["maxContext", () => Engine.load({ target: TINY, draft: null, maxContext: 1, gpu })],
    ["maxContext", () => Engine.load({ target: TINY, draft: null, maxContext: 4096, gpu })],
    ["weightDtype", () => Engine.load({ target: TINY, weightDtype: "bf8" as "f32", gpu })],
    [
      "tree",
      () => Engine.load({ target: TINY, draft: null, tree: { totalTokens: 8, depth: 2, topK: 3 }, gpu }),
    ],
    ["cache", () => Engine.load({ target: TINY, cache: 1 } as unknown as { target: string })],
  ];
  for (const [field, f] of badLoads) {
    await assert.rejects(f, (e: unknown) => e instanceof EngineInputError && e.field === field);
  }
});

Deno.test("Engine: close waits for queued calls, then refuses new ones", async () => {
  const { gpu } = await testGpu();
  const engine = await Engine.load({ target: TINY, draft: null, maxContext: 128, gpu });
  const p = engine.chat(CHAT0, { maxTokens: 5 });
  const closing = engine.close();
  assert.deepEqual((await p).tokens, REF[0].greedy_48.slice(0, 5));
  await closing;
  await assert.rejects(() => engine.chat(CHAT0, { maxTokens: 5 }), /closed/);
  if (shared) await (await shared).close();
});

Deno.test("defaultDraftFor: the bundled tiny gets models/tiny-draft when it exists; other targets none", async () => {
  const bundledDraft = fileURLToPath(new URL("../../../../models/tiny-draft", import.meta.url));
  const exists = await Deno.stat(`${bundledDraft}/config.json`).then(() => true, () => false);
  assert.equal(await defaultDraftFor(TINY), exists ? bundledDraft : null);
  assert.equal(
    await defaultDraftFor(`${TINY}/../tiny`),
    exists ? bundledDraft : null,
    "same directory, other spelling",
  );
  const copy = await Deno.makeTempDir({ prefix: "gto_engine_default_" });
  try {
    assert.equal(await defaultDraftFor(copy), null, "a copy elsewhere is not the bundled model");
    assert.equal(await defaultDraftFor("/nonexistent/gto"), null);
  } finally {
    await Deno.remove(copy, { recursive: true });
  }
});
