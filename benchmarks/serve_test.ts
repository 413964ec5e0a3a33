/**
 * `bench:serve` against the app with the fake engine (no GPU): every request completes, queue-full
 * 503s are retried after Retry-After and counted apart, the report has every figure, non-loopback
 * URLs are refused.
 */
import assert from "node:assert/strict";
import { createApp } from "../apps/serve/app.ts";
import { FakeEngine } from "../apps/serve/fake_engine.ts";
import { runCli } from "../packages/core/src/testing/cli.ts";

const BENCH = decodeURIComponent(new URL("./serve.ts", import.meta.url).pathname);

Deno.test({
  name:
    "bench:serve: N requests at concurrency C against a server on loopback, 503s retried and counted apart",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const app = createApp(new FakeEngine({ cycleDelayMs: 2 }), { maxQueue: 2, servedModelNames: ["fake"] });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    try {
      const url = `http://127.0.0.1:${server.addr.port}`;
      const r = await runCli(
        BENCH,
        "--url",
        url,
        "--requests",
        "24",
        "--concurrency",
        "6",
        "--json",
        "--retries",
        "20",
      );
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(r.stdout);
      assert.equal(rep.completed, 24);
      assert.equal(rep.unintended_errors, 0);
      assert.ok(
        rep.retried_503 > 0,
        "6 clients against 1 running + 2 waiting: some were turned away and retried",
      );
      assert.ok(rep.output_tokens > 0 && rep.tokens_per_s > 0);
      assert.ok(rep.latency_p99_s >= rep.latency_p50_s && rep.ttft_p50_s > 0);
      assert.ok(rep.health_probes > 0 && rep.health_p99_ms >= 0);
      const bad = await runCli(BENCH, "--url", "http://example.com:8000");
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /loopback only/);
    } finally {
      await server.shutdown();
    }
  },
});
