/**
 * `createApp(engine, opts)`: the server as a hono app, independent of sockets and of the GPU. The
 * engine may be a promise: until it resolves, `/health` and the API answer 503 "Loading model".
 * Middleware order: request id → CORS (before auth, so preflights pass) → body limit (413) → API key
 * (401) on the API routes → routes. Every error becomes the OpenAI envelope through `onError`; unknown
 * paths are 404 envelopes. Tests drive it with `app.request()` and a fake engine; `main.ts` serves it.
 * @module
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import { requireKey } from "./auth.ts";
import { loadingError, type ResolvedOptions, type ServeOptions, type ServerContext } from "./context.ts";
import { ApiError } from "./errors.ts";
import { ClientGoneError } from "./generation.ts";
import { type RejectReason, ServerMetrics } from "./metrics.ts";
import { AdmissionQueue } from "./queue.ts";
import { chatCompletionsRoute } from "./routes/chat_completions.ts";
import { completionsRoute } from "./routes/completions.ts";
import { healthRoute } from "./routes/health.ts";
import { modelsRoute } from "./routes/models.ts";
import { playgroundRoute } from "./routes/playground.ts";
import { tokenizeRoute } from "./routes/tokenize.ts";
import type { EngineInfo, ServeEngine } from "./types.ts";

export type { ServeOptions } from "./context.ts";

/** Paths that need the API key when one is set (the page, health and metrics stay public). */
const PROTECTED = ["/v1/*", "/tokenize", "/detokenize", "/playground/generate"];

function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/** `system_fingerprint`: changes when the weights, draft, tree or adapter change. */
export function fingerprintOf(info: EngineInfo): string {
  return `fp_${fnv1a(JSON.stringify([info.model, info.draft, info.tree, info.adapter, info.maxContext]))}`;
}

function rejectReason(e: ApiError): RejectReason {
  if (e.status === 401) return "auth";
  if (e.status === 404) return "not_found";
  if (e.status === 413) return "too_large";
  if (e.status === 503) {
    if (e.code !== "server_overloaded") return "loading";
    return e.message.includes("queue is full") ? "queue_full" : "queue_timeout";
  }
  return e.code === "context_length_exceeded" ? "context" : "invalid";
}

/** Build the server app around `engine` (or its pending load). */
export function createApp(engine: ServeEngine | Promise<ServeEngine>, opts: ServeOptions = {}): Hono {
  const o: ResolvedOptions = {
    apiKey: opts.apiKey,
    maxQueue: opts.maxQueue ?? 8,
    queueTimeoutMs: opts.queueTimeoutMs ?? 60_000,
    maxBody: opts.maxBody ?? 1 << 20,
    maxTokensDefault: opts.maxTokensDefault ?? 512,
    log: opts.log ?? (() => {}),
  };
  let loaded: ServeEngine | null = null;
  let loadError: unknown = null;
  if (engine instanceof Promise) {
    engine.then((e) => (loaded = e), (e) => (loadError = e));
  } else loaded = engine;
  const names = (): string[] =>
    opts.servedModelNames?.length ? opts.servedModelNames : [loaded?.info.model ?? ""];
  let fp: string | null = null;
  const queue = new AdmissionQueue({ maxWaiting: o.maxQueue, timeoutMs: o.queueTimeoutMs });
  const metrics = new ServerMetrics(() => names()[0], {
    running: () => queue.running,
    waiting: () => queue.waiting,
  });
  const seenKeys = new Set<string>();
  const ctx: ServerContext = {
    engine() {
      if (loaded) return loaded;
      if (loadError) throw new ApiError(503, `The model failed to load: ${(loadError as Error)?.message}`);
      throw loadingError();
    },
    ready: () => loaded !== null,
    modelNames: names,
    fingerprint: () => (fp ??= fingerprintOf(ctx.engine().info)),
    opts: o,
    queue,
    metrics,
    unknownKey(key) {
      if (seenKeys.has(key) || seenKeys.size > 256) return;
      seenKeys.add(key);
      o.log(`note: ignoring unknown request field ${JSON.stringify(key.slice(0, 64))}`);
    },
  };

  const app = new Hono();
  app.use(requestId());
  app.use(cors({ origin: "*", exposeHeaders: ["x-request-id", "retry-after"] }));
  app.use(
    "*",
    bodyLimit({
      maxSize: o.maxBody,
      onError: () => {
        throw new ApiError(413, `Request body too large (limit ${o.maxBody} bytes).`, {
          code: "request_too_large",
        });
      },
    }),
  );
  for (const p of PROTECTED) app.use(p, requireKey(o.apiKey));
  app.route("/", healthRoute(ctx));
  app.route("/", modelsRoute(ctx, Math.floor(Date.now() / 1000)));
  app.route("/", chatCompletionsRoute(ctx));
  app.route("/", completionsRoute(ctx));
  app.route("/", tokenizeRoute(ctx));
  app.route("/", playgroundRoute(ctx));
  app.notFound((c) => {
    return new ApiError(404, `No route for ${c.req.method} ${new URL(c.req.url).pathname}.`, {
      type: "invalid_request_error",
      code: "not_found",
    }).toResponse();
  });
  app.onError((e, c) => {
    if (e instanceof ClientGoneError) {
      metrics.disconnects.inc();
      return new Response(null, { status: 499 });
    }
    if (e instanceof ApiError) {
      metrics.rejected.inc({ reason: rejectReason(e) });
      const r = e.toResponse();
      const id = c.get("requestId");
      if (id) r.headers.set("x-request-id", id);
      return r;
    }
    if (e instanceof Error && e.name === "HTTPException") {
      return (e as Error & { getResponse(): Response }).getResponse();
    }
    o.log(`error: ${(e as Error)?.stack ?? e}`);
    return new ApiError(500, "The server had an error while processing your request.", {
      type: "server_error",
    }).toResponse();
  });
  return app;
}
