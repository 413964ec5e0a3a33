/**
 * `deno task serve`: load the `Engine` (target + optional EAGLE-3 draft) in its own Worker
 * (`worker_engine.ts`: GPU waits must not block the HTTP thread) and serve the hono app from `app.ts`
 * with `Deno.serve`. The socket opens first, so `/health` answers 503 "Loading model" while
 * the weights load; one line on stdout says when the server is ready (address, model, draft, tree,
 * adapter). Notes and errors go to stderr. Ctrl-C / SIGTERM stop accepting, let the engine finish the
 * generation in flight, free the GPU and exit 0. Bad flags or a model that cannot load: one `error:`
 * line, exit 1.
 * @module
 */
import { createApp } from "./app.ts";
import { fail } from "@gto/core/cli";
import { FlagError, HELP, isLoopback, parseServeArgs, type ServeConfig } from "./cli.ts";
import { WorkerEngine } from "./worker_engine.ts";

function describe(cfg: ServeConfig, engine: WorkerEngine, url: string, seconds: number): string {
  const i = engine.info;
  const shape = i.tree ? `${i.tree.totalTokens}/${i.tree.depth}/${i.tree.topK}` : "";
  // The auto tree may find plain decoding faster on this adapter: requests then decode plainly and the
  // draft serves only explicit speculative requests (the playground).
  const tree = !i.tree
    ? ""
    : i.autoTree?.tree === null
    ? ` (auto tree: plain decoding is faster here; speculative on request, tree ${shape})`
    : ` (tree ${shape}${i.autoTree ? ", auto" : ""})`;
  const names = cfg.servedModelNames.length ? cfg.servedModelNames.join(", ") : i.model;
  return `serve: ready on ${url} · model ${names} (${cfg.model}) · draft ${
    i.draft ?? "none (plain decoding)"
  }${tree}` +
    ` · context ${i.maxContext} · adapter ${i.adapter} · auth ${cfg.apiKey ? "on" : "off"} · loaded in ${
      seconds.toFixed(1)
    } s`;
}

async function main(): Promise<void> {
  let cfg: ServeConfig | "help";
  try {
    cfg = await parseServeArgs(Deno.args);
  } catch (e) {
    if (e instanceof FlagError) fail(e.message);
    throw e;
  }
  if (cfg === "help") {
    console.log(HELP);
    return;
  }
  if (!isLoopback(cfg.host) && !cfg.apiKey) {
    console.error(
      `warning: binding ${cfg.host} (not loopback) without --api-key: anyone who can reach this port can use the model`,
    );
  }
  const t0 = performance.now();
  const loading = WorkerEngine.load({
    target: cfg.model,
    draft: cfg.draft,
    tree: cfg.tree ?? undefined,
    weightDtype: cfg.weightDtype,
    maxContext: cfg.maxContext,
  });
  loading.catch(() => {}); // reported below
  const app = createApp(loading, {
    servedModelNames: cfg.servedModelNames,
    apiKey: cfg.apiKey,
    maxQueue: cfg.maxQueue,
    queueTimeoutMs: cfg.queueTimeout * 1000,
    maxBody: cfg.maxBody,
    maxTokensDefault: cfg.maxTokensDefault,
    log: (line) => console.error(line),
  });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname: cfg.host, port: cfg.port, onListen: () => {} }, app.fetch);
  } catch (e) {
    fail(`cannot listen on ${cfg.host}:${cfg.port}: ${(e as Error).message}`);
  }
  let engine: WorkerEngine;
  try {
    engine = await loading;
  } catch (e) {
    await server.shutdown();
    fail((e as Error).message);
  }
  engine.onFatal = (e) => {
    console.error(`error: ${e.message}; exiting so a supervisor can restart the server`);
    Deno.exit(1);
  };
  const a = server.addr;
  const host = a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname;
  console.log(describe(cfg, engine, `http://${host}:${a.port}`, (performance.now() - t0) / 1000));
  let stopping = false;
  const stop = async () => {
    if (stopping) Deno.exit(130); // a second Ctrl-C: exit now
    stopping = true;
    console.error("serve: shutting down");
    // Idle keep-alive connections can hold shutdown() open; give in-flight requests 3 s.
    await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 3000))]);
    await engine.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
}

await main();
