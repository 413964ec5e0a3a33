/**
 * `--regen-endpoint`: responses regenerated through `deno task serve` on loopback (the OpenAI chat
 * API, 3 requests in flight) equal the in-process path at T=0 — the same cache file byte for byte,
 * including the eos that ends a response ("Hi" stops with one on tiny) — plus URL handling and the
 * one-line errors.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { LlamaModel, loadModelDir } from "@gto/core";
import { regenerateResponses, regenerateSettings, regenerateWith, renderPrompt } from "@gto/core/train";
import { testGpu } from "../../packages/core/src/testing/mod.ts";
import { startServer } from "../serve/testing/server.ts";
import { apiBase, EndpointError, endpointResponder, resolveModel } from "./regen_endpoint.ts";

const TINY = fileURLToPath(new URL("../../models/tiny", import.meta.url));

Deno.test("regen endpoint: base URL forms and bad URLs", () => {
  assert.equal(apiBase("http://127.0.0.1:8000"), "http://127.0.0.1:8000/v1");
  assert.equal(apiBase("http://127.0.0.1:8000/v1/"), "http://127.0.0.1:8000/v1");
  assert.equal(apiBase("http://h/v1/chat/completions"), "http://h/v1");
  assert.throws(() => apiBase("not a url"), EndpointError);
});

Deno.test({
  name: "regen endpoint: deno task serve on loopback gives the in-process cache at T=0, byte for byte",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { gpu, rec } = await testGpu();
    const dir = await loadModelDir(TINY);
    const model = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 64, maxBatch: 16 });
    const tmp = await Deno.makeTempDir({ prefix: "gto_regen_ep_" });
    const server = await startServer(["--model", TINY, "--no-draft", "--max-context", "256"]);
    try {
      const texts = ["Hi", "Name a color.", "Count to three.", "What is 2 plus 2?"];
      const prompts = texts.map((t) => renderPrompt(dir, t));
      const opts = { maxTokens: 30 };
      const local = await regenerateResponses(model, dir, rec, prompts, {
        ...opts,
        cacheFile: `${tmp}/local.jsonl`,
      });
      const settings = regenerateSettings(dir, opts);
      const base = apiBase(server.url);
      const id = await resolveModel(base, null);
      assert.equal(id, "tiny");
      const warnings: string[] = [];
      const respond = endpointResponder(dir, texts, settings, id, {
        url: server.url,
        onWarn: (m) => warnings.push(m),
      });
      const progress: number[] = [];
      const remote = await regenerateWith(dir, prompts, settings, model.maxSeqLen, respond, {
        cacheFile: `${tmp}/remote.jsonl`,
        concurrency: 3,
        onProgress: (p) => progress.push(p.done),
      });
      assert.deepEqual(remote, local);
      assert.ok(dir.config.eosTokenIds.includes(local[0].responseIds.at(-1)!), "'Hi' ends with an eos");
      assert.equal(
        await Deno.readTextFile(`${tmp}/remote.jsonl`),
        await Deno.readTextFile(`${tmp}/local.jsonl`),
      );
      assert.deepEqual(progress, [0, 1, 2, 3, 4], "samples are appended in prompt order");
      assert.deepEqual(warnings, []);
      // A model the endpoint does not serve: one clear error.
      const bad = endpointResponder(dir, texts, settings, "nope", { url: server.url });
      await assert.rejects(
        bad(0, prompts[0], 4),
        (e: Error) => e instanceof EndpointError && /404.*nope/.test(e.message),
      );
    } finally {
      await server.stop();
      model.destroy();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
