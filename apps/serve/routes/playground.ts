/**
 * The playground: `GET /` serves the page and `GET /playground/app.js` its script (both plain files
 * imported as text: no build step, no CDN), and `POST /playground/generate` streams one chat generation
 * with its per-cycle draft-tree trace as named SSE events — `meta`, then `cycle` (tree tokens and their
 * text pieces, parents, depths, accepted path, bonus) and `text` deltas as they are read back, then
 * `done` (text, finish reason, usage, speculative statistics, timing) or `error`. The trace never goes
 * into `/v1/*` (the `openai` client would hand unknown events to user code). Same validation, auth,
 * admission and cancellation as the OpenAI routes; `model` may be omitted.
 * @module
 */
import { Hono } from "hono";
import { readJson } from "../body.ts";
import type { ServerContext } from "../context.ts";
import { ApiError, badRequest } from "../errors.ts";
import { admit, checkModel, prepareJob, run, speculativeJson, usageJson } from "../generation.ts";
import { SseStream } from "../sse.ts";
import { parseChatRequest, requireObject } from "../validate.ts";
import type { CycleTrace } from "../types.ts";
import PAGE from "../playground/index.html" with { type: "text" };
import SCRIPT from "../playground/app.js" with { type: "text" };

/** The playground routes (page, script, trace endpoint). */
export function playgroundRoute(ctx: ServerContext): Hono {
  const app = new Hono();
  app.get("/", (c) => c.html(PAGE));
  app.get("/playground/app.js", (c) => {
    return c.body(SCRIPT, 200, {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": "no-cache",
    });
  });
  app.post("/playground/generate", async (c) => {
    const arrival = performance.now();
    const o = requireObject(await readJson(c));
    const { speculative: _, ...chat } = o; // the one playground-only field
    const req = parseChatRequest(
      { ...chat, model: o.model ?? ctx.modelNames()[0] },
      (k) => ctx.unknownKey(k),
    );
    checkModel(ctx, req.model);
    const job = prepareJob(ctx, { messages: req.messages }, req.maxTokens, "remaining", req.sampling);
    const engine = ctx.engine();
    // `speculative: false` runs plain decoding (the baseline to compare tokens/s and the text with).
    if (o.speculative !== undefined && typeof o.speculative !== "boolean") {
      throw badRequest("Invalid type for 'speculative': expected a boolean.", "speculative", "invalid_type");
    }
    const speculative = engine.info.draft !== null && o.speculative !== false;
    job.speculative = speculative; // explicit: the engine's default may be plain (auto tree)
    const slot = await admit(ctx, c.req.raw.signal);
    const sse = new SseStream(c.req.raw.signal);
    const info = engine.info;
    sse.event("meta", {
      model: info.model,
      draft: info.draft,
      tree: info.tree,
      speculative,
      adapter: info.adapter,
      prompt_tokens: job.promptTokens,
      max_tokens: job.maxTokens,
    });
    let cycles = 0;
    const onCycle = (t: CycleTrace) => {
      const piece = (id: number) => engine.detokenize([id]);
      sse.event("cycle", {
        index: cycles++,
        t_ms: Math.round(performance.now() - arrival),
        tokens: t.tokens,
        pieces: t.tokens.map(piece),
        parents: t.parents,
        depths: t.depths,
        accepted: t.accepted,
        bonus: t.bonus,
        bonus_piece: piece(t.bonus),
        new_tokens: t.newTokens,
        new_pieces: t.newTokens.map(piece),
      });
    };
    const running = run(ctx, job, slot, arrival, sse.signal, {
      onText: (d) => sse.event("text", { delta: d, t_ms: Math.round(performance.now() - arrival) }),
      onCycle: speculative ? onCycle : undefined,
    });
    try {
      await running.started;
    } catch (e) {
      running.done.catch(() => {});
      sse.abort();
      throw e;
    }
    (async () => {
      try {
        const r = await running.done;
        if (r.finishReason === "abort") return;
        sse.event("done", {
          text: r.text,
          tokens: r.tokens,
          finish_reason: r.finishReason,
          usage: usageJson(r),
          speculative: speculativeJson(r) ?? null,
          timing: { first_token_s: r.timing.firstTokenSeconds, total_s: r.timing.totalSeconds },
          tokens_per_second: r.usage.completionTokens / Math.max(r.timing.totalSeconds, 1e-9),
        });
      } catch (e) {
        const err = e instanceof ApiError
          ? e
          : new ApiError(500, `generation failed: ${(e as Error)?.message}`);
        sse.event("error", err.envelope());
      } finally {
        sse.close();
      }
    })();
    return sse.response();
  });
  return app;
}
