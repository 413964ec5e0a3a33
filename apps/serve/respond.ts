/**
 * The OpenAI response driver shared by `/v1/chat/completions` and `/v1/completions`: admission, then
 * either one JSON body or an SSE stream of chunks in the exact sequence the `openai` client expects
 * (first chunk, content deltas, a chunk carrying `finish_reason` and the `speculative` extension, the
 * usage chunk when `stream_options.include_usage`, `data: [DONE]`). The endpoints differ only in the
 * chunk shapes, given as a `ChunkFormat`. The streamed deltas always add up to the final text: whatever
 * the engine's `onText` did not deliver (held-back stop-string prefixes, a trailing partial character)
 * is sent before the finish chunk.
 * @module
 */
import type { Context } from "hono";
import type { ServerContext } from "./context.ts";
import { ApiError } from "./errors.ts";
import { admit, type GenerationJob, run } from "./generation.ts";
import { SseStream } from "./sse.ts";
import type { GenerateResult } from "./types.ts";

/** Endpoint-specific JSON shapes. */
export interface ChunkFormat {
  /** The chunk sent before any text (chat: the role), or null. */
  first(): unknown | null;
  /** A text delta chunk. */
  delta(text: string): unknown;
  /** The chunk carrying `finish_reason`. */
  final(r: GenerateResult): unknown;
  /** The `choices: []` usage chunk. */
  usage(r: GenerateResult): unknown;
  /** The non-stream body. */
  whole(r: GenerateResult): unknown;
}

/** Answer one validated request (stream or not). */
export async function respond(
  c: Context,
  ctx: ServerContext,
  job: GenerationJob,
  stream: boolean,
  arrival: number,
  fmt: ChunkFormat,
): Promise<Response> {
  const reqSignal = c.req.raw.signal;
  const slot = await admit(ctx, reqSignal);
  if (!stream) {
    const r = await run(ctx, job, slot, arrival, reqSignal).done;
    if (r.finishReason === "abort") return new Response(null, { status: 499 }); // nobody is listening
    return c.json(fmt.whole(r));
  }
  const sse = new SseStream(reqSignal);
  const first = fmt.first();
  if (first !== null) sse.send(first);
  let sent = "";
  const running = run(ctx, job, slot, arrival, sse.signal, {
    onText: (d) => {
      sent += d;
      sse.send(fmt.delta(d));
    },
  });
  try {
    await running.started;
  } catch (e) {
    // Failed before any text: still a real HTTP status.
    running.done.catch(() => {});
    sse.abort();
    throw e;
  }
  (async () => {
    try {
      const r = await running.done;
      if (r.finishReason === "abort") return;
      if (r.text.startsWith(sent)) {
        if (r.text.length > sent.length) sse.send(fmt.delta(r.text.slice(sent.length)));
      } else {
        ctx.opts.log(`warning: streamed text is not a prefix of the final text (${sent.length} chars sent)`);
      }
      sse.send(fmt.final(r));
      const u = fmt.usage(r);
      if (u !== null) sse.send(u);
      sse.send("[DONE]");
    } catch (e) {
      const err = e instanceof ApiError
        ? e
        : new ApiError(500, `generation failed: ${(e as Error)?.message ?? String(e)}`, {
          type: "server_error",
        });
      if (!(e instanceof ApiError)) ctx.opts.log(`error: ${(e as Error)?.stack ?? e}`);
      sse.send(err.envelope());
      sse.send("[DONE]");
    } finally {
      sse.close();
    }
  })();
  return sse.response();
}
