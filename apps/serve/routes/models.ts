/**
 * `GET /v1/models` and `GET /v1/models/{id}`: OpenAI model cards plus vLLM's `max_model_len` and a
 * `meta` object (draft, tree shape, adapter) so clients can see what is being served.
 * @module
 */
import { Hono } from "hono";
import { ApiError } from "../errors.ts";
import type { ServerContext } from "../context.ts";

/** The models routes. */
export function modelsRoute(ctx: ServerContext, startedAt: number): Hono {
  const app = new Hono();
  const card = (id: string) => {
    const info = ctx.engine().info;
    return {
      id,
      object: "model",
      created: startedAt,
      owned_by: "gto",
      root: info.model,
      parent: null,
      max_model_len: info.maxContext,
      permission: [],
      meta: { draft: info.draft, tree: info.tree, adapter: info.adapter },
    };
  };
  app.get("/v1/models", (c) => {
    ctx.engine(); // 503 while loading
    return c.json({ object: "list", data: ctx.modelNames().map(card) });
  });
  app.get("/v1/models/:id{.+}", (c) => {
    ctx.engine();
    const id = c.req.param("id");
    if (!ctx.modelNames().includes(id)) {
      throw new ApiError(404, `The model \`${id}\` does not exist.`, {
        type: "invalid_request_error",
        param: "model",
        code: "model_not_found",
      });
    }
    return c.json(card(id));
  });
  return app;
}
