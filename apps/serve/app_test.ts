/**
 * The HTTP layer against the fake engine through `app.request()` (no socket, no GPU): the OpenAI wire
 * format (JSON and SSE framing, chunk sequence, usage, the `speculative` extension), every rejection
 * status with its envelope (400/401/404/413/503), admission, and cancellation when the client leaves.
 */
import assert from "node:assert/strict";
import { createApp, type ServeOptions } from "./app.ts";
import { FakeEngine, type FakeEngineOptions } from "./fake_engine.ts";
import { parseSse, post, readSse } from "./testing/http.ts";
import type { Hono } from "hono";

function setup(opts: ServeOptions = {}, eng: FakeEngineOptions = {}): { app: Hono; engine: FakeEngine } {
  const engine = new FakeEngine(eng);
  return { app: createApp(engine, opts), engine };
}

const hi = [{ role: "user", content: "hi" }];

async function expectError(res: Response, status: number, param?: string | null, code?: string | null) {
  assert.deepStrictEqual(res.status, status, await res.clone().text());
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  const body = await res.json();
  assert.deepStrictEqual(Object.keys(body), ["error"]);
  assert.deepStrictEqual(typeof body.error.message, "string");
  assert(body.error.message.length > 0);
  assert.deepStrictEqual(typeof body.error.type, "string");
  assert("param" in body.error && "code" in body.error);
  if (param !== undefined) assert.deepStrictEqual(body.error.param, param);
  if (code !== undefined) assert.deepStrictEqual(body.error.code, code);
  return body.error;
}

async function gauges(app: Hono): Promise<{ running: number; waiting: number }> {
  const text = await (await app.request("/metrics")).text();
  const val = (name: string) => Number(new RegExp(`^gto:${name}\\{[^}]*\\} (\\S+)$`, "m").exec(text)![1]);
  return { running: val("num_requests_running"), waiting: val("num_requests_waiting") };
}

async function until(cond: () => boolean | Promise<boolean>, ms = 2000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("models: list, card, unknown id 404", async () => {
  const { app } = setup({ servedModelNames: ["tiny", "alias"] });
  const list = await (await app.request("/v1/models")).json();
  assert.deepStrictEqual(list.object, "list");
  assert.deepStrictEqual(list.data.map((m: { id: string }) => m.id), ["tiny", "alias"]);
  assert.deepStrictEqual(list.data[0].max_model_len, 256);
  assert.deepStrictEqual(list.data[0].meta.tree, { totalTokens: 8, depth: 3, topK: 2 });
  assert.deepStrictEqual((await (await app.request("/v1/models/alias")).json()).id, "alias");
  await expectError(await app.request("/v1/models/nope"), 404, "model", "model_not_found");
});

Deno.test("chat: non-stream response shape, usage and speculative extension", async () => {
  const { app, engine } = setup();
  const res = await post(app, "/v1/chat/completions", { model: "fake", messages: hi, temperature: 0 });
  assert.deepStrictEqual(res.status, 200);
  assert(res.headers.get("x-request-id"));
  const body = await res.json();
  assert.match(body.id, /^chatcmpl-/);
  assert.deepStrictEqual(body.object, "chat.completion");
  assert.deepStrictEqual(body.model, "fake");
  assert.match(body.system_fingerprint, /^fp_/);
  assert.deepStrictEqual(body.choices, [{
    index: 0,
    message: { role: "assistant", content: "You said: hi. Bye.", refusal: null },
    logprobs: null,
    finish_reason: "stop",
  }]);
  const prompt = engine.countChatTokens([{ role: "user", content: "hi" }]);
  assert.deepStrictEqual(body.usage, {
    prompt_tokens: prompt,
    completion_tokens: 18,
    total_tokens: prompt + 18,
  });
  assert.deepStrictEqual(body.speculative.cycles > 0, true);
  assert(body.speculative.acceptance_length > 1);
  assert.deepStrictEqual(engine.lastOptions!.temperature, 0);
  // Without max tokens: the remaining context.
  assert.deepStrictEqual(engine.lastOptions!.maxTokens, 256 - prompt);
});

Deno.test("chat: options reach the engine (developer→system, parts joined, seed mod 2^32, stop ids)", async () => {
  const { app, engine } = setup();
  const res = await post(app, "/v1/chat/completions", {
    model: "fake",
    messages: [{ role: "developer", content: "be brief" }, {
      role: "user",
      content: [{ type: "text", text: "a" }, { type: "text", text: "b" }],
    }],
    max_completion_tokens: 50,
    max_tokens: 7,
    top_p: 0.5,
    top_k: -1,
    seed: 2 ** 32 + 5,
    stop: "Bye",
    stop_token_ids: [1234],
    user: "x",
    some_unknown_key: 1,
    frequency_penalty: 0,
    logit_bias: {},
    tools: [],
    tool_choice: "none",
    response_format: { type: "text" },
  });
  const body = await res.json();
  assert.deepStrictEqual(res.status, 200, JSON.stringify(body));
  const o = engine.lastOptions!;
  assert.deepStrictEqual([o.maxTokens, o.topP, o.topK, o.seed, o.stop, o.stopTokenIds], [50, 0.5, 0, 5, [
    "Bye",
  ], [1234]]);
  assert.deepStrictEqual(o.temperature, 1); // OpenAI's default
  assert.deepStrictEqual(body.choices[0].message.content, "You said: ab. ");
  assert.deepStrictEqual(body.choices[0].finish_reason, "stop");
});

Deno.test("return_token_ids (vLLM extension) adds the output ids to the choice", async () => {
  const { app } = setup();
  const body = await (await post(app, "/v1/chat/completions", {
    model: "fake",
    messages: hi,
    max_tokens: 3,
    return_token_ids: true,
  })).json();
  assert.deepEqual(body.choices[0].token_ids, [..."You"].map((c) => c.codePointAt(0)));
  const plain =
    await (await post(app, "/v1/chat/completions", { model: "fake", messages: hi, max_tokens: 3 })).json();
  assert.ok(!("token_ids" in plain.choices[0]));
});

Deno.test("chat: max_tokens stops with length", async () => {
  const { app } = setup();
  const body = await (await post(app, "/v1/chat/completions", { model: "fake", messages: hi, max_tokens: 4 }))
    .json();
  assert.deepStrictEqual(body.choices[0].message.content, "You ");
  assert.deepStrictEqual(body.choices[0].finish_reason, "length");
  assert.deepStrictEqual(body.usage.completion_tokens, 4);
});

Deno.test("chat: SSE framing and the exact chunk sequence (with include_usage)", async () => {
  const { app } = setup();
  const res = await post(app, "/v1/chat/completions", {
    model: "fake",
    messages: hi,
    stream: true,
    stream_options: { include_usage: true },
  });
  assert.deepStrictEqual(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
  assert.deepStrictEqual(res.headers.get("cache-control"), "no-cache");
  const raw = await res.text();
  const ev = parseSse(raw);
  assert.deepStrictEqual(ev.at(-1)!.data, "[DONE]");
  assert(ev.every((e) => e.event === undefined));
  const chunks = ev.slice(0, -1).map((e) => JSON.parse(e.data));
  const id = chunks[0].id;
  for (const c of chunks) {
    assert.deepStrictEqual([c.id, c.object, c.model, c.created], [
      id,
      "chat.completion.chunk",
      "fake",
      chunks[0].created,
    ]);
  }
  assert.deepStrictEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
  const usageChunk = chunks.at(-1);
  assert.deepStrictEqual(usageChunk.choices, []);
  assert.deepStrictEqual(usageChunk.usage.completion_tokens, 18);
  const finals = chunks.filter((c) => c.choices[0]?.finish_reason);
  assert.deepStrictEqual(finals.length, 1);
  assert.deepStrictEqual(finals[0], chunks.at(-2));
  assert.deepStrictEqual(finals[0].choices[0].delta, {});
  assert.deepStrictEqual(finals[0].choices[0].finish_reason, "stop");
  assert(finals[0].speculative.cycles > 0);
  for (const c of chunks.slice(0, -1)) assert.deepStrictEqual(c.usage, null);
  const text = chunks.slice(1, -2).map((c) => c.choices[0].delta.content).join("");
  assert.deepStrictEqual(text, "You said: hi. Bye.");
  assert(chunks.length > 4, "text arrives in several deltas");
});

Deno.test("chat: stream without include_usage has no usage chunk or usage keys; stop string held back", async () => {
  const { app } = setup();
  const ev = await readSse(
    await post(app, "/v1/chat/completions", { model: "fake", messages: hi, stream: true, stop: ["Bye"] }),
  );
  const chunks = ev.slice(0, -1).map((e) => JSON.parse(e.data));
  assert(chunks.every((c) => !("usage" in c) && c.choices.length === 1));
  const text = chunks.map((c) => c.choices[0].delta.content ?? "").join("");
  assert.deepStrictEqual(text, "You said: hi. ");
  assert.deepStrictEqual(chunks.at(-1).choices[0].finish_reason, "stop");
});

Deno.test("completions: JSON and stream, default max_tokens 16, token-id prompt", async () => {
  const { app, engine } = setup();
  const body = await (await post(app, "/v1/completions", { model: "fake", prompt: "abc" })).json();
  assert.deepStrictEqual(body.object, "text_completion");
  assert.match(body.id, /^cmpl-/);
  assert.deepStrictEqual(body.choices, [{
    text: " and then cba.",
    index: 0,
    logprobs: null,
    finish_reason: "stop",
  }]);
  assert.deepStrictEqual(body.usage.prompt_tokens, 3);
  assert.deepStrictEqual(engine.lastOptions!.maxTokens, 16);
  const long = await (await post(app, "/v1/completions", { model: "fake", prompt: "abcdefghij" })).json();
  assert.deepStrictEqual(long.choices[0].finish_reason, "length");
  assert.deepStrictEqual(long.usage.completion_tokens, 16);
  const ids =
    await (await post(app, "/v1/completions", { model: "fake", prompt: [[97, 98]], max_tokens: 40 }))
      .json();
  assert.deepStrictEqual(ids.choices[0].text, " and then ba.");
  const ev = await readSse(
    await post(app, "/v1/completions", { model: "fake", prompt: ["xy"], stream: true, max_tokens: 40 }),
  );
  const chunks = ev.slice(0, -1).map((e) => JSON.parse(e.data));
  assert(chunks.every((c) => c.object === "text_completion"));
  assert.deepStrictEqual(chunks.map((c) => c.choices[0].text).join(""), " and then yx.");
  assert.deepStrictEqual(chunks.at(-1).choices[0].finish_reason, "stop");
});

const CHAT_400: [string, unknown, string | null, string | null][] = [
  ["not json", "{bad", null, "invalid_json"],
  ["truncated json", '{"model":"fake","messages":[', null, "invalid_json"],
  ["array body", "[1,2]", null, null],
  ["missing model", { messages: hi }, "model", "missing_required_parameter"],
  ["model number", { model: 3, messages: hi }, "model", "invalid_type"],
  ["missing messages", { model: "fake" }, "messages", "missing_required_parameter"],
  ["empty messages", { model: "fake", messages: [] }, "messages", "invalid_value"],
  ["message not object", { model: "fake", messages: ["hi"] }, "messages[0]", "invalid_type"],
  [
    "bad role",
    { model: "fake", messages: [{ role: "bot", content: "x" }] },
    "messages[0].role",
    "invalid_value",
  ],
  [
    "tool role",
    { model: "fake", messages: [{ role: "tool", content: "x" }] },
    "messages[0].role",
    "unsupported_value",
  ],
  [
    "user without content",
    { model: "fake", messages: [{ role: "user" }] },
    "messages[0].content",
    "invalid_value",
  ],
  [
    "image part",
    {
      model: "fake",
      messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }],
    },
    "messages[0].content[0].type",
    "unsupported_value",
  ],
  ["n string", { model: "fake", messages: hi, n: "2" }, "n", "invalid_type"],
  ["n 2", { model: "fake", messages: hi, n: 2 }, "n", "unsupported_value"],
  ["tools", { model: "fake", messages: hi, tools: [{ type: "function" }] }, "tools", "unsupported_value"],
  ["tool_choice", { model: "fake", messages: hi, tool_choice: "auto" }, "tool_choice", "unsupported_value"],
  [
    "json mode",
    { model: "fake", messages: hi, response_format: { type: "json_object" } },
    "response_format",
    "unsupported_value",
  ],
  [
    "penalty",
    { model: "fake", messages: hi, presence_penalty: 0.5 },
    "presence_penalty",
    "unsupported_value",
  ],
  ["logit_bias", { model: "fake", messages: hi, logit_bias: { "1": 2 } }, "logit_bias", "unsupported_value"],
  ["logprobs", { model: "fake", messages: hi, logprobs: true }, "logprobs", "unsupported_value"],
  ["top_logprobs alone", { model: "fake", messages: hi, top_logprobs: 2 }, "top_logprobs", "invalid_value"],
  ["temperature 2.5", { model: "fake", messages: hi, temperature: 2.5 }, "temperature", "invalid_value"],
  ["temperature string", { model: "fake", messages: hi, temperature: "0" }, "temperature", "invalid_type"],
  ["top_p 0", { model: "fake", messages: hi, top_p: 0 }, "top_p", "invalid_value"],
  ["top_k 1.5", { model: "fake", messages: hi, top_k: 1.5 }, "top_k", "invalid_type"],
  ["seed float", { model: "fake", messages: hi, seed: 0.5 }, "seed", "invalid_type"],
  ["stop 5", { model: "fake", messages: hi, stop: ["a", "b", "c", "d", "e"] }, "stop", "invalid_value"],
  ["stop empty", { model: "fake", messages: hi, stop: [""] }, "stop", "invalid_value"],
  ["stop number", { model: "fake", messages: hi, stop: 5 }, "stop", "invalid_type"],
  ["max_tokens 0", { model: "fake", messages: hi, max_tokens: 0 }, "max_tokens", "invalid_value"],
  ["max_tokens string", { model: "fake", messages: hi, max_tokens: "5" }, "max_tokens", "invalid_type"],
  ["stream string", { model: "fake", messages: hi, stream: "yes" }, "stream", "invalid_type"],
  [
    "stream_options without stream",
    { model: "fake", messages: hi, stream_options: { include_usage: true } },
    "stream_options",
    "invalid_value",
  ],
];

Deno.test("chat: every invalid request is a 400 envelope naming the field (stream or not)", async () => {
  const { app, engine } = setup();
  for (const [name, body, param, code] of CHAT_400) {
    for (const stream of [false, true]) {
      const b = typeof body === "object" && !Array.isArray(body) && stream && !name.startsWith("stream")
        ? { ...body, stream: true }
        : body;
      const res = await post(app, "/v1/chat/completions", b);
      try {
        await expectError(res, 400, param, code);
      } catch (e) {
        throw new Error(`${name} (stream ${stream}): ${(e as Error).message}`);
      }
    }
  }
  const msg = await expectError(
    await post(app, "/v1/chat/completions", { model: "fake", messages: hi, n: "2" }),
    400,
  );
  assert.deepStrictEqual(msg.message, "Invalid type for 'n': expected an integer, but got a string instead.");
  const t = await expectError(
    await post(app, "/v1/chat/completions", { model: "fake", messages: hi, temperature: 2.5 }),
    400,
  );
  assert.deepStrictEqual(t.message, "2.5 is greater than the maximum of 2 - 'temperature'");
  assert.deepStrictEqual(engine.calls, 0);
});

Deno.test("completions: unsupported fields are 400", async () => {
  const { app } = setup();
  const cases: [unknown, string][] = [
    [{ model: "fake" }, "prompt"],
    [{ model: "fake", prompt: ["a", "b"] }, "prompt"],
    [{ model: "fake", prompt: [] }, "prompt"],
    [{ model: "fake", prompt: [1, "a"] }, "prompt"],
    [{ model: "fake", prompt: 5 }, "prompt"],
    [{ model: "fake", prompt: "a", echo: true }, "echo"],
    [{ model: "fake", prompt: "a", suffix: "z" }, "suffix"],
    [{ model: "fake", prompt: "a", best_of: 2 }, "best_of"],
    [{ model: "fake", prompt: "a", logprobs: 2 }, "logprobs"],
    [{ model: "fake", prompt: "" }, "prompt"],
  ];
  for (const [body, param] of cases) await expectError(await post(app, "/v1/completions", body), 400, param);
});

Deno.test("404: unknown model (JSON and stream) and unknown route", async () => {
  const { app, engine } = setup();
  const e = await expectError(
    await post(app, "/v1/chat/completions", { model: "gpt-4o", messages: hi, stream: true }),
    404,
    "model",
    "model_not_found",
  );
  assert.deepStrictEqual(e.message, "The model `gpt-4o` does not exist.");
  await expectError(await post(app, "/v1/completions", { model: "x", prompt: "a" }), 404, "model");
  await expectError(await app.request("/v1/nothing"), 404);
  await expectError(await app.request("/v1/chat/completions"), 404); // GET
  assert.deepStrictEqual(engine.calls, 0);
});

Deno.test("context: prompt + max_tokens over the context is a 400 with both numbers", async () => {
  const { app, engine } = setup({}, { maxContext: 64 });
  const prompt = engine.countChatTokens([{ role: "user", content: "hi" }]);
  const e = await expectError(
    await post(app, "/v1/chat/completions", { model: "fake", messages: hi, max_tokens: 100, stream: true }),
    400,
    "max_tokens",
    "context_length_exceeded",
  );
  assert.deepStrictEqual([e.n_prompt_tokens, e.n_ctx], [prompt, 64]);
  assert(e.message.includes(`${prompt} input tokens`) && e.message.includes("64 tokens"), e.message);
  const long = [{ role: "user", content: "x".repeat(100) }];
  const e2 = await expectError(
    await post(app, "/v1/chat/completions", { model: "fake", messages: long }),
    400,
    "messages",
    "context_length_exceeded",
  );
  assert.deepStrictEqual(e2.n_ctx, 64);
  // Exactly at the limit is fine.
  const ok = await post(app, "/v1/chat/completions", {
    model: "fake",
    messages: hi,
    max_tokens: 64 - prompt,
  });
  assert.deepStrictEqual(ok.status, 200);
  assert.deepStrictEqual(engine.calls, 1);
});

Deno.test("413: body over --max-body, with and without content-length", async () => {
  const { app, engine } = setup({ maxBody: 1000 });
  const big = JSON.stringify({ model: "fake", messages: [{ role: "user", content: "x".repeat(2000) }] });
  await expectError(await post(app, "/v1/chat/completions", big), 413, null, "request_too_large");
  const stream = new ReadableStream({
    start(c) {
      c.enqueue(new TextEncoder().encode(big));
      c.close();
    },
  });
  const res = await app.request("/v1/chat/completions", {
    method: "POST",
    body: stream,
    headers: { "content-type": "application/json" },
  });
  await expectError(res, 413, null, "request_too_large");
  assert.deepStrictEqual(engine.calls, 0);
});

Deno.test("401: missing, malformed and wrong keys; health, metrics and page stay public; CORS preflight", async () => {
  const { app } = setup({ apiKey: "sk-right" });
  const body = { model: "fake", messages: hi };
  const headers: Record<string, string>[] = [{}, { authorization: "Basic abc" }, {
    authorization: "Bearer sk-wrong",
  }, { authorization: "Bearer" }];
  for (const h of headers) {
    const e = await expectError(
      await post(app, "/v1/chat/completions", body, h),
      401,
      null,
      "invalid_api_key",
    );
    assert(e.message.length > 0);
  }
  await expectError(await app.request("/v1/models"), 401);
  await expectError(await post(app, "/tokenize", { prompt: "a" }), 401);
  await expectError(await post(app, "/playground/generate", { messages: hi }), 401);
  assert.deepStrictEqual(
    (await post(app, "/v1/chat/completions", body, { authorization: "Bearer sk-right" })).status,
    200,
  );
  for (const p of ["/health", "/metrics", "/", "/playground/app.js"]) {
    assert.deepStrictEqual((await app.request(p)).status, 200, p);
  }
  const pre = await app.request("/v1/chat/completions", {
    method: "OPTIONS",
    headers: {
      origin: "http://x",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type,x-stainless-os",
    },
  });
  assert.deepStrictEqual(pre.status, 204);
  assert.match(pre.headers.get("access-control-allow-headers")!, /x-stainless-os/);
});

Deno.test("503: queue full and queue timeout, with Retry-After; health and metrics answer while busy", async () => {
  const { app, engine } = setup({ maxQueue: 1, queueTimeoutMs: 100 });
  const slow = [{ role: "user", content: "[[slow]] please" }];
  const first = post(app, "/v1/chat/completions", { model: "fake", messages: slow });
  await until(() => engine.active === 1);
  const second = post(app, "/v1/chat/completions", { model: "fake", messages: hi, stream: true });
  await until(async () => (await gauges(app)).waiting === 1);
  const third = await post(app, "/v1/chat/completions", { model: "fake", messages: hi, stream: true });
  const e3 = await expectError(third, 503, null, "server_overloaded");
  assert.match(e3.message, /queue is full/);
  assert(Number(third.headers.get("retry-after")) >= 1);
  const h = await app.request("/health");
  assert.deepStrictEqual([h.status, await h.json()], [200, { status: "ok" }]);
  const second_ = await second;
  const e2 = await expectError(second_, 503, null, "server_overloaded");
  assert.match(e2.message, /waited/);
  assert(Number(second_.headers.get("retry-after")) >= 1);
  assert.deepStrictEqual((await first).status, 200);
  const m = await (await app.request("/metrics")).text();
  assert.match(m, /gto:requests_rejected_total\{model_name="fake",reason="queue_full"\} 1/);
  assert.match(m, /gto:requests_rejected_total\{model_name="fake",reason="queue_timeout"\} 1/);
  assert.deepStrictEqual(await gauges(app), { running: 0, waiting: 0 });
});

Deno.test("503 while the model loads, then ready", async () => {
  let resolve!: (e: FakeEngine) => void;
  const app = createApp(new Promise<FakeEngine>((r) => (resolve = r)), { servedModelNames: ["fake"] });
  const h = await app.request("/health");
  assert.deepStrictEqual(h.status, 503);
  assert.deepStrictEqual(await h.json(), {
    error: { code: 503, message: "Loading model", type: "unavailable_error" },
  });
  await expectError(await post(app, "/v1/chat/completions", { model: "fake", messages: hi }), 503);
  await expectError(await app.request("/v1/models"), 503);
  resolve(new FakeEngine());
  await new Promise((r) => setTimeout(r, 0));
  assert.deepStrictEqual((await app.request("/health")).status, 200);
  assert.deepStrictEqual(
    (await post(app, "/v1/chat/completions", { model: "fake", messages: hi })).status,
    200,
  );
});

Deno.test("disconnect mid-stream aborts the generation, frees the slot; the next request is unaffected", async () => {
  const { app, engine } = setup({}, { cycleDelayMs: 20 });
  const fresh =
    await (await post(app, "/v1/chat/completions", { model: "fake", messages: hi, max_tokens: 10 })).json();
  const res = await post(app, "/v1/chat/completions", { model: "fake", messages: hi, stream: true });
  const reader = res.body!.getReader();
  await reader.read(); // the role chunk and the first delta
  await reader.cancel();
  await until(() => engine.aborted === 1 && engine.active === 0);
  assert.deepStrictEqual(await gauges(app), { running: 0, waiting: 0 });
  const m = await (await app.request("/metrics")).text();
  assert.match(m, /gto:http_requests_client_disconnected_total\{model_name="fake"\} 1/);
  assert.match(m, /gto:request_success_total\{model_name="fake",finished_reason="abort"\} 1/);
  const again =
    await (await post(app, "/v1/chat/completions", { model: "fake", messages: hi, max_tokens: 10 })).json();
  assert.deepStrictEqual(again.choices, fresh.choices);
});

Deno.test("disconnect during a non-stream request aborts it; a queued client that leaves frees its place", async () => {
  const { app, engine } = setup({}, { cycleDelayMs: 20 });
  const ac = new AbortController();
  const p = post(app, "/v1/chat/completions", { model: "fake", messages: hi }, {}, ac.signal);
  await until(() => engine.active === 1);
  const ac2 = new AbortController();
  const queued = post(app, "/v1/chat/completions", { model: "fake", messages: hi }, {}, ac2.signal);
  await until(async () => (await gauges(app)).waiting === 1);
  ac2.abort();
  await until(async () => (await gauges(app)).waiting === 0);
  ac.abort();
  await p.catch(() => {});
  await queued.catch(() => {});
  await until(() => engine.aborted === 1 && engine.active === 0);
  assert.deepStrictEqual(engine.calls, 1);
  assert.deepStrictEqual(await gauges(app), { running: 0, waiting: 0 });
});

Deno.test("engine errors: input error before output → real 400 even for streams; crash mid-stream → SSE error + [DONE]", async () => {
  const { app } = setup();
  const bad = [{ role: "user", content: "[[input-error]]" }];
  await expectError(
    await post(app, "/v1/chat/completions", { model: "fake", messages: bad, stream: true }),
    400,
    "messages",
  );
  await expectError(
    await post(app, "/v1/chat/completions", { model: "fake", messages: bad }),
    400,
    "messages",
  );
  const crash = [{ role: "user", content: "[[crash]]" }];
  const ev = await readSse(
    await post(app, "/v1/chat/completions", { model: "fake", messages: crash, stream: true }),
  );
  assert.deepStrictEqual(ev.at(-1)!.data, "[DONE]");
  const err = JSON.parse(ev.at(-2)!.data);
  assert.deepStrictEqual(err.error.type, "server_error");
  const nonStream = await post(app, "/v1/chat/completions", { model: "fake", messages: crash });
  assert.deepStrictEqual(nonStream.status, 500);
  assert.deepStrictEqual(nonStream.headers.get("x-should-retry"), "false");
  assert.deepStrictEqual(await gauges(app), { running: 0, waiting: 0 });
});

Deno.test("metrics: Prometheus text with vLLM's spec-decode counters under gto:", async () => {
  const { app } = setup();
  await post(app, "/v1/chat/completions", { model: "fake", messages: hi });
  const res = await app.request("/metrics");
  assert.deepStrictEqual(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const m = await res.text();
  for (
    const name of [
      "spec_decode_num_drafts_total",
      "spec_decode_num_draft_tokens_total",
      "spec_decode_num_accepted_tokens_total",
      "prompt_tokens_total",
      "generation_tokens_total",
    ]
  ) {
    assert.match(m, new RegExp(`^# TYPE gto:${name} counter$`, "m"));
    const v = Number(new RegExp(`^gto:${name}\\{model_name="fake"\\} (\\S+)$`, "m").exec(m)?.[1]);
    assert(v > 0, name);
  }
  // Fake reply: 18 chars + eos; the first char from the prefill, the other 17 + eos in cycles of
  // 1,2,3,1,2,3,1,2,3 tokens → 9 cycles of an 8-node tree (63 draft tokens), 0+1+2 per three cycles = 9
  // accepted drafts; 6 cycles accepted ≥ 1 draft, 3 accepted 2.
  assert.match(m, /^gto:spec_decode_num_drafts_total\{model_name="fake"\} 9$/m);
  assert.match(m, /^gto:spec_decode_num_draft_tokens_total\{model_name="fake"\} 63$/m);
  assert.match(m, /^gto:spec_decode_num_accepted_tokens_total\{model_name="fake"\} 9$/m);
  assert.match(m, /^gto:spec_decode_num_accepted_tokens_per_pos_total\{model_name="fake",position="0"\} 6$/m);
  assert.match(m, /^gto:spec_decode_num_accepted_tokens_per_pos_total\{model_name="fake",position="1"\} 3$/m);
  assert.match(m, /^gto:time_to_first_token_seconds_bucket\{model_name="fake",le="\+Inf"\} 1$/m);
  assert.match(m, /^gto:inter_token_latency_seconds_count\{model_name="fake"\} 17$/m);
  assert.match(m, /^gto:e2e_request_latency_seconds_count\{model_name="fake"\} 1$/m);
  assert.match(m, /^gto:request_success_total\{model_name="fake",finished_reason="stop"\} 1$/m);
  assert.match(m, /^gto:num_requests_running\{model_name="fake"\} 0$/m);
});

Deno.test("tokenize / detokenize in vLLM's shapes", async () => {
  const { app, engine } = setup();
  const t = await (await post(app, "/tokenize", { prompt: "héllo", return_token_strs: true })).json();
  assert.deepStrictEqual(t, {
    count: 5,
    max_model_len: 256,
    tokens: [104, 233, 108, 108, 111],
    token_strs: ["h", "é", "l", "l", "o"],
  });
  const c = await (await post(app, "/tokenize", { messages: hi })).json();
  assert.deepStrictEqual(c.count, engine.countChatTokens([{ role: "user", content: "hi" }]));
  assert.deepStrictEqual((await (await post(app, "/tokenize", { content: "ab" })).json()).tokens, [97, 98]);
  assert.deepStrictEqual(await (await post(app, "/detokenize", { tokens: [104, 105] })).json(), {
    prompt: "hi",
  });
  await expectError(await post(app, "/detokenize", { tokens: ["a"] }), 400, "tokens");
  await expectError(await post(app, "/detokenize", { tokens: [0xd800] }), 400, "tokens");
  await expectError(await post(app, "/tokenize", { model: "nope", prompt: "a" }), 404);
  await expectError(await post(app, "/tokenize", {}), 400);
});

Deno.test("playground: page, script, and the trace stream (meta, cycle, text, done)", async () => {
  const { app } = setup();
  const page = await app.request("/");
  assert.match(page.headers.get("content-type")!, /text\/html/);
  const html = await page.text();
  assert.match(html, /<script type="module" src="\/playground\/app\.js">/);
  assert(!/https?:\/\//.test(html), "no external resources");
  const js = await app.request("/playground/app.js");
  assert.match(js.headers.get("content-type")!, /javascript/);
  const src = (await js.text()).replaceAll("http://www.w3.org/2000/svg", "");
  assert(!/https?:\/\//.test(src), "no CDN");
  const ev = await readSse(await post(app, "/playground/generate", { messages: hi, temperature: 0 }));
  assert.deepStrictEqual(ev[0].event, "meta");
  assert.deepStrictEqual(ev.at(-1)!.event, "done");
  const cycles = ev.filter((e) => e.event === "cycle").map((e) => JSON.parse(e.data));
  assert.deepStrictEqual(cycles.length, 9);
  const c1 = cycles[1];
  assert.deepStrictEqual(c1.accepted.length, 2);
  assert.deepStrictEqual(c1.parents[0], -1);
  assert.deepStrictEqual(c1.pieces.length, c1.tokens.length);
  // Output = the first cycle's root (the prefill's token) + every cycle's committed tokens.
  const pieces = [cycles[0].pieces[0], ...cycles.flatMap((c) => c.new_pieces)];
  assert.deepStrictEqual(pieces.join(""), "You said: hi. Bye.");
  const last = cycles.at(-1);
  assert.deepStrictEqual(last.new_tokens.length, last.accepted.length - 1, "the eos is not committed");
  const done = JSON.parse(ev.at(-1)!.data);
  assert.deepStrictEqual(done.text, "You said: hi. Bye.");
  assert.deepStrictEqual(done.finish_reason, "stop");
  const text = ev.filter((e) => e.event === "text").map((e) => JSON.parse(e.data).delta).join("");
  assert.deepStrictEqual(text, done.text);
  // speculative: false runs the plain baseline: same text, no cycles.
  const plain = await readSse(
    await post(app, "/playground/generate", { messages: hi, temperature: 0, speculative: false }),
  );
  assert.deepStrictEqual(JSON.parse(plain[0].data).speculative, false);
  assert.deepStrictEqual(plain.filter((e) => e.event === "cycle").length, 0);
  const plainDone = JSON.parse(plain.at(-1)!.data);
  assert.deepStrictEqual([plainDone.text, plainDone.speculative], [done.text, null]);
  await expectError(
    await post(app, "/playground/generate", { messages: hi, speculative: "no" }),
    400,
    "speculative",
  );
  // Same validation as the API.
  await expectError(await post(app, "/playground/generate", { messages: [] }), 400, "messages");
});

Deno.test("runtime files import neither test-only packages nor jsr; deno.lock lists none", async () => {
  const dir = new URL("./", import.meta.url);
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile && e.name.endsWith(".ts")) files.push(e.name);
  for await (const e of Deno.readDir(new URL("routes/", dir))) files.push(`routes/${e.name}`);
  for (const f of files.filter((f) => !f.endsWith("_test.ts"))) {
    const src = await Deno.readTextFile(new URL(f, dir));
    assert(!/from "(npm:openai|openai|playwright-core|npm:playwright|jsr:)/.test(src), f);
  }
  // `deno run` caches every npm package in the lockfile it uses, so test-only packages live in
  // deno.tests.lock (`deno task test` / `check` pass --lock=deno.tests.lock): a fresh `deno task serve`
  // then fetches ~5 MB instead of ~54 MB (docs/serve.md).
  const lock = JSON.parse(await Deno.readTextFile(new URL("../../deno.lock", import.meta.url)));
  const leaked = Object.keys(lock.npm ?? {}).filter((k) => /^(openai|playwright-core)@/.test(k));
  assert.deepStrictEqual(
    leaked,
    [],
    "deno.lock lists test-only packages (a test ran without --lock=deno.tests.lock): " +
      "`git checkout deno.lock` and run tests through `deno task test`",
  );
});
