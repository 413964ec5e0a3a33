/**
 * Server-sent events over a plain `ReadableStream`, built for cancellation: the stream's `signal` aborts
 * when the client cancels the body (a disconnect, `reader.cancel()`, or breaking out of the `openai`
 * client's iterator) or when the request's own signal aborts, and that signal is what the generation
 * gets. Writes after the client left are dropped instead of throwing (hono's `streamSSE` swallows them
 * too, but its error path writes non-JSON `event: error` lines the `openai` client cannot parse, so the
 * framing is done here). Events written before the `Response` is handed out are buffered, which lets a
 * route start the generation, wait until it has produced something or failed, and only then choose
 * between an SSE 200 and a real HTTP error status.
 *
 * Framing: `data: <json>\n\n` per event (a payload never contains a newline: JSON.stringify escapes
 * them), `event: <name>\n` before named events, `: <text>\n\n` comments, and `data: [DONE]\n\n` last.
 * @module
 */

const enc = new TextEncoder();

/** The headers of every SSE response. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};

/** One server-sent-event stream. */
export class SseStream {
  readonly #ac = new AbortController();
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #closed = false;
  /** The response body. */
  readonly body: ReadableStream<Uint8Array>;

  /** `requestSignal`: the HTTP request's signal (aborts when the client disconnects). */
  constructor(requestSignal?: AbortSignal) {
    this.body = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
      },
      cancel: (reason) => {
        this.#closed = true;
        this.#ac.abort(reason ?? new DOMException("client disconnected", "AbortError"));
      },
    });
    if (requestSignal) {
      if (requestSignal.aborted) this.#ac.abort(requestSignal.reason);
      else {requestSignal.addEventListener("abort", () => this.#ac.abort(requestSignal.reason), {
          once: true,
        });}
    }
  }

  /** Aborts when the client goes away. */
  get signal(): AbortSignal {
    return this.#ac.signal;
  }

  /** True once the stream is closed or cancelled (further writes are dropped). */
  get closed(): boolean {
    return this.#closed;
  }

  #write(text: string): void {
    if (this.#closed) return;
    try {
      this.#controller.enqueue(enc.encode(text));
    } catch {
      this.#closed = true; // cancelled between the check and the write
    }
  }

  /** `data: <JSON of value>` (a string is sent as is, e.g. `[DONE]`). */
  send(value: unknown): void {
    this.#write(`data: ${typeof value === "string" ? value : JSON.stringify(value)}\n\n`);
  }

  /** A named event (`event: name` + `data: <JSON>`). */
  event(name: string, value: unknown): void {
    this.#write(`event: ${name}\ndata: ${JSON.stringify(value)}\n\n`);
  }

  /** A comment line (ignored by clients; keeps proxies from timing out). */
  comment(text: string): void {
    this.#write(`: ${text.replace(/[\r\n]+/g, " ")}\n\n`);
  }

  /** End the stream. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#controller.close();
    } catch {
      // already cancelled
    }
  }

  /** Cancel without a client (e.g. the request turned into an error status before the response). */
  abort(reason?: unknown): void {
    this.#ac.abort(reason);
    this.close();
  }

  /** The 200 response carrying this stream. */
  response(headers: Record<string, string> = {}): Response {
    return new Response(this.body, { status: 200, headers: { ...SSE_HEADERS, ...headers } });
  }
}
