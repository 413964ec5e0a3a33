/**
 * End to end: the official `openai` npm client (test-only import) against a real `deno task serve` on
 * 127.0.0.1 with the bundled tiny target and a draft (`models/tiny-draft` when it exists, else a random
 * EAGLE-3 draft saved for the test like the other CLI tests do; speculative decoding is lossless, so
 * T=0 text is the same either way). Expected texts come from `deno task generate` (a separate process
 * decoding plainly), not from the server. Covers chat and completions, stream and not, usage, the
 * `speculative` extension, errors thrown as the client's classes, breaking out of a stream cancelling
 * the generation (the next request is unaffected), 8 concurrent streams, `/health` while busy, and the
 * playground trace endpoint (trace on = trace off at T=0).
 */
import assert from "node:assert/strict";
// Test-only: pinned here and locked in deno.tests.lock, not deno.lock, so `deno task serve` never
// downloads it (docs/serve.md); run this file with --lock=deno.tests.lock, as `deno task test` does.
// deno-lint-ignore no-import-prefix
import OpenAI from "npm:openai@7.59.0";
import { runCli } from "../../packages/core/src/testing/cli.ts";
import { startServer } from "./testing/server.ts";
import { parseSse } from "./testing/http.ts";
import { saveRandomDraft } from "./testing/draft.ts";

const ROOT = new URL("../../", import.meta.url);
const path = (rel: string) => decodeURIComponent(new URL(rel, ROOT).pathname);
const TINY = path("models/tiny");
const GENERATE = path("apps/generate/main.ts");
const KEY = "sk-e2e";

async function draftDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const bundled = path("models/tiny-draft");
  if (await Deno.stat(bundled).then(() => true, () => false)) {
    return { dir: bundled, cleanup: async () => {} };
  }
  const dir = await saveRandomDraft("gto_serve_draft_");
  return { dir, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

async function generateCli(kind: "--chat" | "--prompt", text: string, maxTokens: number): Promise<string> {
  const r = await runCli(GENERATE, "--model", TINY, kind, text, "--max-tokens", String(maxTokens), "--json");
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).text;
}

interface Cycle {
  tokens: number[];
  parents: number[];
  accepted: number[];
  new_tokens: number[];
}

const QUESTIONS = ["What is 12 plus 7?", "Name a colour.", "Write a haiku about rain.", "Say hello."];

Deno.test({
  name: "e2e: openai client against deno task serve (tiny + draft)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const draft = await draftDir();
    const server = await startServer([
      "--model",
      TINY,
      "--draft",
      draft.dir,
      "--tree",
      "8,2,3",
      "--max-context",
      "512",
      "--api-key",
      KEY,
      "--served-model-name",
      "tiny",
    ]);
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const N = 12;
    try {
      const expected = await Promise.all(QUESTIONS.map((q) => generateCli("--chat", q, N)));
      assert.ok(expected.every((x) => x.length > 0));

      await t.step("models", async () => {
        const list = await client.models.list();
        assert.deepEqual(list.data.map((m) => m.id), ["tiny"]);
        assert.match(server.readyLine, /ready on http:\/\/127\.0\.0\.1:\d+ .*draft /);
      });

      await t.step(
        "chat, non-stream: T=0 text = deno task generate; usage; speculative extension",
        async () => {
          const r = await client.chat.completions.create({
            model: "tiny",
            messages: [{ role: "user", content: QUESTIONS[0] }],
            max_tokens: N,
            temperature: 0,
          });
          assert.equal(r.choices[0].message.content, expected[0]);
          assert.equal(r.choices[0].message.role, "assistant");
          assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
          assert.ok(r.usage!.prompt_tokens > 5);
          assert.ok(r.usage!.completion_tokens >= 1 && r.usage!.completion_tokens <= N);
          assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
          const spec =
            (r as unknown as { speculative: { cycles: number; acceptance_length: number } }).speculative;
          assert.ok(spec.cycles >= 1 && spec.acceptance_length >= 1, JSON.stringify(spec));
          assert.ok(!("cycles" in (r.usage as object)), "nothing of ours inside usage");
        },
      );

      await t.step("chat, stream with include_usage; the stream() helper", async () => {
        const stream = await client.chat.completions.create({
          model: "tiny",
          messages: [{ role: "user", content: QUESTIONS[1] }],
          max_completion_tokens: N,
          temperature: 0,
          stream: true,
          stream_options: { include_usage: true },
        });
        let text = "", usage = null, finish = null, first = true;
        for await (const ch of stream) {
          if (first) assert.equal(ch.choices[0].delta.role, "assistant");
          first = false;
          text += ch.choices[0]?.delta.content ?? "";
          finish ??= ch.choices[0]?.finish_reason ?? null;
          if (ch.usage) usage = ch.usage;
        }
        assert.equal(text, expected[1]);
        assert.ok(finish === "stop" || finish === "length");
        assert.ok(usage && usage.completion_tokens >= 1);
        const helper = client.chat.completions.stream({
          model: "tiny",
          messages: [{ role: "user", content: QUESTIONS[1] }],
          max_tokens: N,
          temperature: 0,
        });
        const final = await helper.finalChatCompletion();
        assert.equal(final.choices[0].message.content, expected[1]);
      });

      await t.step("completions, stream and not: T=0 text = deno task generate --prompt", async () => {
        const prompt = "def add(a, b):";
        const want = await generateCli("--prompt", prompt, N);
        const r = await client.completions.create({ model: "tiny", prompt, max_tokens: N, temperature: 0 });
        assert.equal(r.object, "text_completion");
        assert.equal(r.choices[0].text, want);
        let text = "";
        for await (
          const ch of await client.completions.create({
            model: "tiny",
            prompt,
            max_tokens: N,
            temperature: 0,
            stream: true,
          })
        ) text += ch.choices[0]?.text ?? "";
        assert.equal(text, want);
      });

      await t.step("errors arrive as the client's classes with param and code", async () => {
        const msgs = [{ role: "user" as const, content: "hi" }];
        await assert.rejects(
          client.chat.completions.create({ model: "tiny", messages: msgs, n: 2 }),
          (e: unknown) =>
            e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "n" &&
            e.code === "unsupported_value",
        );
        await assert.rejects(
          client.chat.completions.create({
            model: "tiny",
            messages: msgs,
            max_tokens: 100_000,
            stream: true,
          }),
          (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === "context_length_exceeded",
        );
        await assert.rejects(
          client.chat.completions.create({ model: "gpt-x", messages: msgs }),
          (e: unknown) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found",
        );
        const wrong = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "sk-wrong", maxRetries: 0 });
        await assert.rejects(
          wrong.chat.completions.create({ model: "tiny", messages: msgs }),
          (e: unknown) => e instanceof OpenAI.AuthenticationError && typeof e.requestID === "string",
        );
      });

      await t.step("breaking out of a stream cancels it; the next request is unaffected", async () => {
        const stream = await client.chat.completions.create({
          model: "tiny",
          messages: [{ role: "user", content: QUESTIONS[2] }],
          max_tokens: 400,
          temperature: 0,
          stream: true,
        });
        let n = 0;
        for await (const _ of stream) if (++n >= 2) break;
        const metric = async () => {
          const m = await (await fetch(`${server.url}/metrics`)).text();
          return Number(/gto:request_success_total\{[^}]*finished_reason="abort"\} (\d+)/.exec(m)?.[1] ?? 0);
        };
        const t0 = Date.now();
        while ((await metric()) < 1) {
          assert.ok(Date.now() - t0 < 30_000, "the generation was not aborted");
          await new Promise((r) => setTimeout(r, 50));
        }
        const r = await client.chat.completions.create({
          model: "tiny",
          messages: [{ role: "user", content: QUESTIONS[2] }],
          max_tokens: N,
          temperature: 0,
        });
        assert.equal(r.choices[0].message.content, expected[2]);
      });

      await t.step("8 concurrent streams are all correct; /health answers while busy", async () => {
        const runs = Array.from({ length: 8 }, async (_, i) => {
          const q = i % QUESTIONS.length;
          let text = "";
          for await (
            const ch of await client.chat.completions.create({
              model: "tiny",
              messages: [{ role: "user", content: QUESTIONS[q] }],
              max_tokens: N,
              temperature: 0,
              stream: true,
            })
          ) text += ch.choices[0]?.delta.content ?? "";
          return [text, expected[q]];
        });
        const h0 = performance.now();
        const h = await fetch(`${server.url}/health`);
        const healthMs = performance.now() - h0;
        assert.equal(h.status, 200);
        await h.body?.cancel();
        for (const [got, want] of await Promise.all(runs)) assert.equal(got, want);
        console.log(`  /health while 8 streams ran: ${healthMs.toFixed(1)} ms`);
      });

      let traced: {
        done: { text: string; tokens: number[]; speculative: { cycles: number } };
        cycles: Cycle[];
      } | null = null;
      await t.step("playground trace endpoint: T=0 text with tracing on = without", async () => {
        const res = await fetch(`${server.url}/playground/generate`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
          body: JSON.stringify({
            messages: [{ role: "user", content: QUESTIONS[0] }],
            max_tokens: N,
            temperature: 0,
          }),
        });
        assert.equal(res.status, 200);
        const ev = parseSse(await res.text());
        assert.equal(ev.at(-1)!.event, "done");
        const done = JSON.parse(ev.at(-1)!.data);
        assert.equal(done.text, expected[0]);
        traced = { done, cycles: ev.filter((e) => e.event === "cycle").map((e) => JSON.parse(e.data)) };
      });

      await t.step("playground trace endpoint: one cycle event per cycle, each a well-formed tree", () => {
        const { done, cycles } = traced!;
        assert.equal(cycles.length, done.speculative.cycles);
        cycles.forEach((c, i) => {
          assert.equal(c.tokens.length, c.parents.length);
          assert.equal(c.parents[0], -1);
          assert.equal(c.accepted[0], 0);
          // Accepted drafts + bonus; only the last cycle may be cut (eos, max tokens).
          if (i < cycles.length - 1) assert.equal(c.new_tokens.length, c.accepted.length);
          else assert.ok(c.new_tokens.length <= c.accepted.length);
          for (let k = 1; k < c.accepted.length; k++) {
            assert.equal(c.parents[c.accepted[k]], c.accepted[k - 1]);
          }
        });
        // The output = the first root (from the prefill) + every cycle's committed tokens.
        assert.deepEqual([cycles[0].tokens[0], ...cycles.flatMap((c) => c.new_tokens)], done.tokens);
      });
    } finally {
      const code = await server.stop();
      await draft.cleanup();
      assert.equal(code, 0, server.stderr());
    }
  },
});
