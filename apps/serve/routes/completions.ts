/**
 * `POST /v1/completions` (legacy text completions): one prompt (a string or token ids; several prompts
 * are a 400), `max_tokens` defaulting to 16 as in OpenAI's reference and vLLM, `text_completion`
 * objects for both the JSON body and the stream chunks. `echo`, `suffix`, `best_of` and `logprobs` are
 * rejected by validation.
 * @module
 */
import { Hono } from "hono";
import { readJson } from "../body.ts";
import type { ServerContext } from "../context.ts";
import { checkModel, newId, prepareJob, speculativeJson, usageJson } from "../generation.ts";
import { respond } from "../respond.ts";
import { parseCompletionRequest } from "../validate.ts";

/** Default `max_tokens` of the completions endpoint. */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

/** The completions route. */
export function completionsRoute(ctx: ServerContext): Hono {
  const app = new Hono();
  app.post("/v1/completions", async (c) => {
    const arrival = performance.now();
    const req = parseCompletionRequest(await readJson(c), (k) => ctx.unknownKey(k));
    const model = checkModel(ctx, req.model);
    const job = prepareJob(
      ctx,
      { prompt: req.prompt },
      req.maxTokens,
      COMPLETIONS_DEFAULT_MAX_TOKENS,
      req.sampling,
    );
    const id = newId("cmpl");
    const created = Math.floor(Date.now() / 1000);
    const head = { id, object: "text_completion", created, model, system_fingerprint: ctx.fingerprint() };
    const usageNull = req.includeUsage ? { usage: null } : {};
    const choice = (text: string, finish: string | null) => ({
      ...head,
      choices: [{ text, index: 0, logprobs: null, finish_reason: finish }],
      ...usageNull,
    });
    return await respond(c, ctx, job, req.stream, arrival, {
      first: () => null,
      delta: (text) => choice(text, null),
      final: (r) => ({ ...choice("", r.finishReason), speculative: speculativeJson(r) }),
      usage: (r) => req.includeUsage ? { ...head, choices: [], usage: usageJson(r) } : null,
      whole: (r) => ({
        ...head,
        choices: [{
          text: r.text,
          index: 0,
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
