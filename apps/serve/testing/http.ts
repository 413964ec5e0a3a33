/**
 * Test helpers for the server: JSON requests through `app.request()` (or a real URL), and an SSE parser
 * that checks the framing as it goes (every event ends with a blank line, `data:` lines only).
 * @module
 */
import type { Hono } from "hono";

/** One parsed server-sent event. */
export interface SseEvent {
  /** `event:` name, if any. */
  event?: string;
  /** The `data:` payload. */
  data: string;
}

/** POST `body` as JSON (a string is sent as is). */
export function post(
  app: Hono,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Response> {
  return Promise.resolve(app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  }));
}

/** Split an SSE body into events; throws on framing errors (a line that is not `data:`/`event:`/comment). */
export function parseSse(text: string): SseEvent[] {
  if (text.length > 0 && !text.endsWith("\n\n")) throw new Error(`SSE body does not end with a blank line`);
  const events: SseEvent[] = [];
  for (const block of text.split("\n\n")) {
    if (block === "") continue;
    const ev: SseEvent = { data: "" };
    let hasData = false;
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      if (line.startsWith("data: ")) {
        ev.data += (hasData ? "\n" : "") + line.slice(6);
        hasData = true;
      } else if (line.startsWith("event: ")) ev.event = line.slice(7);
      else throw new Error(`bad SSE line ${JSON.stringify(line)}`);
    }
    if (hasData) events.push(ev);
  }
  return events;
}

/** Read a whole SSE response and parse it. */
export async function readSse(res: Response): Promise<SseEvent[]> {
  return parseSse(await res.text());
}
