/**
 * `POST /v1/chat/completions`: validate (400/404), count the chat prompt and check the context (400),
 * admit (503), then answer with one `chat.completion` or a stream of `chat.completion.chunk`s (first
 * delta carries `role: "assistant"`, the last choice chunk carries `finish_reason`). Speculative
 * statistics ride in a top-level `speculative` object, never inside `usage`.
 * @module
 */
import { Hono } from "hono";
import { readJson } from "../body.ts";
import type { ServerContext } from "../context.ts";
import { checkModel, newId, prepareJob, speculativeJson, usageJson } from "../generation.ts";
import { respond } from "../respond.ts";
import { parseChatRequest } from "../validate.ts";

/** The chat-completions route. */
export function chatCompletionsRoute(ctx: ServerContext): Hono {
  const app = new Hono();
  app.post("/v1/chat/completions", async (c) => {
    const arrival = performance.now();
    const req = parseChatRequest(await readJson(c), (k) => ctx.unknownKey(k));
    const model = checkModel(ctx, req.model);
    const job = prepareJob(ctx, { messages: req.messages }, req.maxTokens, "remaining", req.sampling);
    const id = newId("chatcmpl");
    const created = Math.floor(Date.now() / 1000);
    const head = {
      id,
      object: "chat.completion.chunk",
      created,
      model,
      system_fingerprint: ctx.fingerprint(),
    };
    const usageNull = req.includeUsage ? { usage: null } : {};
    const choice = (delta: Record<string, unknown>, finish: string | null) => ({
      ...head,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...usageNull,
    });
    return await respond(c, ctx, job, req.stream, arrival, {
      first: () => choice({ role: "assistant", content: "" }, null),
      delta: (text) => choice({ content: text }, null),
      final: (r) => ({ ...choice({}, r.finishReason), speculative: speculativeJson(r) }),
      usage: (r) => req.includeUsage ? { ...head, choices: [], usage: usageJson(r) } : null,
      whole: (r) => ({
        id,
        object: "chat.completion",
        created,
        model,
        system_fingerprint: ctx.fingerprint(),
        choices: [{
          index: 0,
          message: { role: "assistant", content: r.text, refusal: null },
          logprobs: null,
          finish_reason: r.finishReason,
          ...(req.returnTokenIds ? { token_ids: r.tokens } : {}),
        }],
        usage: usageJson(r),
        speculative: speculativeJson(r),
      }),
    });
  });
  return app;
}
