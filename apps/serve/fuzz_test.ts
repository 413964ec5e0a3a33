/**
 * Fuzzed request bodies against the app with the fake engine: 10 000 seeded random cases (truncated
 * JSON, wrong types, huge and negative numbers, unicode and lone surrogates, unknown keys, random
 * endpoints, streams, clients that leave mid-stream), 8 in flight at a time. Every case must end as a
 * 4xx OpenAI envelope or a well-formed answer whose text is what the fake engine says for that prompt;
 * nothing may crash (5xx), hang (a per-case deadline) or leak a queue slot or an engine call.
 * `GTO_FUZZ_CASES` and `GTO_FUZZ_SEED` override the count and the seed.
 */
import assert from "node:assert/strict";
import { mulberry32 } from "@gto/core";
import { createApp } from "./app.ts";
import { FakeEngine } from "./fake_engine.ts";
import { parseSse, post } from "./testing/http.ts";

const CASES = Number(Deno.env.get("GTO_FUZZ_CASES") ?? 10_000);
const SEED = Number(Deno.env.get("GTO_FUZZ_SEED") ?? 20261130);

const rng = mulberry32;

const ENDPOINTS = [
  "/v1/chat/completions",
  "/v1/completions",
  "/tokenize",
  "/detokenize",
  "/playground/generate",
];
const KEYS = [
  "model",
  "messages",
  "prompt",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "top_k",
  "seed",
  "stop",
  "stop_token_ids",
  "n",
  "stream",
  "stream_options",
  "tools",
  "tool_choice",
  "response_format",
  "logprobs",
  "top_logprobs",
  "frequency_penalty",
  "presence_penalty",
  "logit_bias",
  "echo",
  "suffix",
  "best_of",
  "tokens",
  "content",
  "user",
  "zzz_unknown",
];
const STRINGS = [
  "",
  "fake",
  "hi",
  "héllo wörld",
  "😀🎉",
  "\u0000",
  "\ud800",
  "a\nb\r\nc",
  "x".repeat(300),
  "null",
];

function randomValue(r: () => number, depth = 0): unknown {
  const k = Math.floor(r() * 14);
  switch (k) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return Math.floor(r() * 100) - 10;
    case 3:
      return [0, -1, 1, 2, 1e308, -1e308, 2 ** 53, 2 ** 64, 0.5, 1.5, 4294967301][Math.floor(r() * 11)];
    case 4:
    case 5:
      return STRINGS[Math.floor(r() * STRINGS.length)];
    case 6:
      return depth > 2 ? [] : Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
    case 7:
      return depth > 2 ? {} : { type: r() < 0.5 ? "text" : "json_object", text: randomValue(r, depth + 1) };
    case 8:
      return [{ role: "user", content: randomValue(r, depth + 1) }];
    case 9:
      return [{
        role: ["user", "system", "developer", "assistant", "tool", "bot", 5][Math.floor(r() * 7)],
        content: "hi",
      }];
    case 10:
      return Array.from({ length: Math.floor(r() * 6) }, () => Math.floor(r() * 300));
    case 11:
      return { include_usage: r() < 0.5 };
    case 12:
      return [[97, 98]];
    default:
      return Math.floor(r() * 40) + 1;
  }
}

function validBase(r: () => number, endpoint: string): Record<string, unknown> {
  const content = STRINGS[1 + Math.floor(r() * 4)];
  if (endpoint === "/v1/completions") {
    return { model: "fake", prompt: content || "p", max_tokens: 1 + Math.floor(r() * 30) };
  }
  if (endpoint === "/tokenize") return { prompt: content };
  if (endpoint === "/detokenize") return { tokens: [104, 105] };
  return { model: "fake", messages: [{ role: "user", content }], max_tokens: 1 + Math.floor(r() * 30) };
}

interface Case {
  endpoint: string;
  body: string;
  cancelAfterFirstRead: boolean;
}

function makeCase(r: () => number): Case {
  const endpoint = ENDPOINTS[Math.floor(r() * ENDPOINTS.length)];
  const o = validBase(r, endpoint);
  if (r() < 0.5) o.stream = true;
  const mutations = Math.floor(r() * 4);
  for (let i = 0; i < mutations; i++) {
    const key = KEYS[Math.floor(r() * KEYS.length)];
    if (r() < 0.2) delete o[key];
    else o[key] = randomValue(r);
  }
  let body = JSON.stringify(o);
  const mode = r();
  if (mode < 0.05) body = body.slice(0, Math.floor(r() * body.length)); // truncated JSON
  else if (mode < 0.07) body = JSON.stringify(randomValue(r)); // not an object
  else if (mode < 0.08) {
    body = String.fromCharCode(...Array.from({ length: 20 }, () => Math.floor(r() * 256)));
  } else if (mode < 0.09) body = "[".repeat(5000) + "]".repeat(5000);
  else if (mode < 0.095) body = JSON.stringify({ ...o, pad: "x".repeat(70_000) }); // over --max-body
  return { endpoint, body, cancelAfterFirstRead: r() < 0.05 };
}

function checkEnvelope(status: number, text: string, what: string): void {
  assert.ok(status >= 400 && status < 500, `${what}: status ${status}: ${text.slice(0, 300)}`);
  const b = JSON.parse(text);
  assert.deepEqual(Object.keys(b), ["error"], what);
  assert.equal(typeof b.error.message, "string", what);
  assert.equal(typeof b.error.type, "string", what);
  assert.ok("param" in b.error && "code" in b.error, what);
}

/** The text the fake engine produces must be a prefix of its reply to the request's last user message. */
function checkText(endpoint: string, text: string, what: string): void {
  const head = endpoint === "/v1/completions" ? " and then " : "You said: ";
  assert.ok(head.startsWith(text) || text.startsWith(head), `${what}: ${JSON.stringify(text)}`);
}

async function runCase(app: ReturnType<typeof createApp>, c: Case, what: string): Promise<number> {
  const res = await post(app, c.endpoint, c.body);
  await check(res, c, what);
  return res.status;
}

async function check(res: Response, c: Case, what: string): Promise<void> {
  const ct = res.headers.get("content-type") ?? "";
  if (res.status !== 200) {
    checkEnvelope(res.status, await res.text(), what);
    return;
  }
  if (ct.startsWith("text/event-stream")) {
    if (c.cancelAfterFirstRead) {
      const reader = res.body!.getReader();
      await reader.read();
      await reader.cancel();
      return;
    }
    const events = parseSse(await res.text());
    if (c.endpoint === "/playground/generate") {
      const last = events.at(-1)!;
      assert.equal(last.event, "done", what);
      const done = JSON.parse(last.data);
      checkText(c.endpoint, done.text, what);
      const streamed = events.filter((e) => e.event === "text").map((e) => JSON.parse(e.data).delta).join("");
      assert.equal(streamed, done.text, what);
      return;
    }
    assert.equal(events.at(-1)!.data, "[DONE]", what);
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    assert.ok(chunks.every((ch) => !("error" in ch)), what);
    const text = chunks.map((ch) => ch.choices[0]?.delta?.content ?? ch.choices[0]?.text ?? "").join("");
    checkText(c.endpoint, text, what);
    assert.equal(chunks.filter((ch) => ch.choices[0]?.finish_reason).length, 1, what);
    return;
  }
  const b = await res.json();
  if (c.endpoint === "/tokenize") assert.equal(b.count, b.tokens.length, what);
  else if (c.endpoint === "/detokenize") assert.equal(typeof b.prompt, "string", what);
  else {
    const ch = b.choices[0];
    const text = ch.message?.content ?? ch.text;
    checkText(c.endpoint, text, what);
    assert.ok(["stop", "length"].includes(ch.finish_reason), what);
    assert.equal(b.usage.total_tokens, b.usage.prompt_tokens + b.usage.completion_tokens, what);
    const req = JSON.parse(c.body);
    const limit = c.endpoint === "/v1/completions"
      ? req.max_tokens ?? 16
      : req.max_completion_tokens ?? req.max_tokens;
    assert.ok(b.usage.completion_tokens <= (limit ?? 1e9), what);
  }
}

Deno.test(`fuzz: ${CASES} random request bodies → 4xx envelope or a correct answer; no crash, hang or leak`, async () => {
  const engine = new FakeEngine();
  const app = createApp(engine, { maxQueue: 16, queueTimeoutMs: 30_000, maxBody: 64 * 1024 });
  const r = rng(SEED);
  const cases = Array.from({ length: CASES }, () => makeCase(r));
  const counts = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const i = next++;
      const c = cases[i];
      const what = `case ${i} (seed ${SEED}) ${c.endpoint} ${c.body.slice(0, 200)}`;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`${what}: no answer within 10 s`)), 10_000);
      });
      let status: number;
      try {
        status = await Promise.race([runCase(app, c, what), deadline]);
      } finally {
        clearTimeout(timer);
      }
      counts.set(status, (counts.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  // Everything that started has ended and released its slot.
  for (let t = 0; t < 200 && engine.active > 0; t++) await new Promise((res) => setTimeout(res, 10));
  assert.equal(engine.active, 0, "engine calls still in flight");
  const m = await (await app.request("/metrics")).text();
  assert.match(m, /^gto:num_requests_running\{model_name="fake"\} 0$/m);
  assert.match(m, /^gto:num_requests_waiting\{model_name="fake"\} 0$/m);
  assert.ok(engine.calls > CASES / 20, `only ${engine.calls} generations ran: the fuzz is too hostile`);
  console.log(
    `fuzz: ${CASES} cases by status ${
      JSON.stringify(Object.fromEntries(counts))
    }, ${engine.calls} generations`,
  );
  const health = await app.request("/health");
  assert.equal(health.status, 200);
});
