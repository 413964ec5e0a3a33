/**
 * The engine's own thread. On a software adapter (llvmpipe) and in Deno's WebGPU, waiting for a GPU
 * readback blocks the JavaScript thread that waits, so an `Engine` on the server's main thread stalls
 * every other request (measured: `/health` p90 240 ms, max 690 ms during one 200-token plain
 * generation on tiny). Here the `Engine` lives in a Worker and talks plain messages (see
 * `worker_engine.ts` for the other side): `load` → `loaded | failed`; `generate` → `text`* `cycle`*
 * then `done | error`; `abort`; `close` → `closed`. Callbacks and the abort signal stay on the main
 * thread; only data crosses.
 * @module
 */
/// <reference lib="deno.worker" />
import { Engine, type GenerateOptions } from "@gto/core";

/** Messages the main thread sends. */
export type ToWorker =
  | { type: "load"; opts: Parameters<typeof Engine.load>[0] }
  | {
    type: "generate";
    id: number;
    kind: "chat" | "complete";
    // deno-lint-ignore no-explicit-any
    input: any;
    opts: Omit<GenerateOptions, "signal" | "onText" | "onCycle">;
    text: boolean;
    cycles: boolean;
  }
  | { type: "abort"; id: number }
  | { type: "close" };

/** A serialised error. */
export interface WireError {
  name: string;
  message: string;
  field?: string;
}

function wire(e: unknown): WireError {
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, field: (err as Error & { field?: string }).field };
}

let engine: Engine | null = null;
const running = new Map<number, AbortController>();

self.onmessage = async (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  switch (m.type) {
    case "load":
      try {
        engine = await Engine.load(m.opts);
        self.postMessage({ type: "loaded", info: engine.info });
      } catch (e) {
        self.postMessage({ type: "failed", error: wire(e) });
      }
      return;
    case "generate": {
      const ac = new AbortController();
      running.set(m.id, ac);
      try {
        const opts: GenerateOptions = {
          ...m.opts,
          signal: ac.signal,
          onText: m.text ? (delta) => self.postMessage({ type: "text", id: m.id, delta }) : undefined,
          onCycle: m.cycles ? (trace) => self.postMessage({ type: "cycle", id: m.id, trace }) : undefined,
        };
        const r = m.kind === "chat"
          ? await engine!.chat(m.input, opts)
          : await engine!.complete(m.input, opts);
        self.postMessage({ type: "done", id: m.id, result: r });
      } catch (e) {
        self.postMessage({ type: "error", id: m.id, error: wire(e) });
      } finally {
        running.delete(m.id);
      }
      return;
    }
    case "abort":
      running.get(m.id)?.abort();
      return;
    case "close":
      await engine?.close();
      self.postMessage({ type: "closed" });
      return;
  }
};
