/**
 * `GET /health` (200 `{"status":"ok"}` when loaded; 503 llama.cpp's `Loading model` envelope while
 * loading), `GET /version` and `GET /metrics` (Prometheus text). None touch the engine's queue, so they
 * answer while a generation runs; none need the API key (as in llama.cpp and vLLM).
 * @module
 */
import { Hono } from "hono";
import type { ServerContext } from "../context.ts";

/** Version reported by `/version`. */
export const SERVER_VERSION = "0.1.0";

/** The health, version and metrics routes. */
export function healthRoute(ctx: ServerContext): Hono {
  const app = new Hono();
  app.get("/health", (c) => {
    if (!ctx.ready()) {
      c.header("retry-after", "5");
      return c.json({ error: { code: 503, message: "Loading model", type: "unavailable_error" } }, 503);
    }
    return c.json({ status: "ok" });
  });
  app.get("/version", (c) => c.json({ version: SERVER_VERSION }));
  app.get("/metrics", (c) => {
    return c.body(ctx.metrics.render(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  });
  return app;
}
