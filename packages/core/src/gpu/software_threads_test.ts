/**
 * The software-threads policy: the parameter count against the checkpoint's own tensor sizes (the
 * safetensors header, an independent count), the threshold, and that `requestGpu` really sets
 * Mesa's variable for the first adapter of a process (in a child process, since Mesa reads it once).
 */
import assert from "node:assert/strict";
import { loadLlamaConfig } from "../io/config.ts";
import { INLINE_SOFTWARE_MAX_PARAMS, llamaParamCount, softwareThreadsFor } from "./software_threads.ts";

const tiny = decodeURIComponent(new URL("../../../../models/tiny", import.meta.url).pathname);

Deno.test("llamaParamCount equals the element count of the bundled tiny checkpoint", async () => {
  const bytes = await Deno.readFile(`${tiny}/model.safetensors`);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  let elements = 0;
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    elements += (t as { shape: number[] }).shape.reduce((a, b) => a * b, 1);
  }
  assert.equal(llamaParamCount(await loadLlamaConfig(tiny)), elements);
});

Deno.test("softwareThreadsFor: inline up to the threshold, Mesa's default above", () => {
  assert.equal(softwareThreadsFor(2_230_000), 0);
  assert.equal(softwareThreadsFor(INLINE_SOFTWARE_MAX_PARAMS), 0);
  assert.equal(softwareThreadsFor(INLINE_SOFTWARE_MAX_PARAMS + 1), undefined);
});

async function childThreads(threads: string, env: Record<string, string>): Promise<string> {
  const device = new URL("./device.ts", import.meta.url).href;
  const code = `import { requestGpu } from "${device}";
const a = await requestGpu({ softwareThreads: ${threads} });
const b = await requestGpu({ softwareThreads: 5 });
console.log(JSON.stringify([a.isFallback, a.softwareThreads, b.softwareThreads, Deno.env.get("LP_NUM_THREADS") ?? null]));
a.device.destroy(); b.device.destroy();`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    env: { ...env, XDG_RUNTIME_DIR: "/tmp" },
    clearEnv: false,
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("requestGpu sets LP_NUM_THREADS for the first adapter; the environment and the first call win", async () => {
  const env = { ...Deno.env.toObject() };
  delete env.LP_NUM_THREADS;
  const [fallback, ...rest] = JSON.parse(await childThreads("0", env));
  if (fallback) assert.deepEqual(rest, [0, 0, "0"]);
  else assert.deepEqual(rest, [null, null, "0"]); // hardware adapter: reported as null
  const [, ...given] = JSON.parse(await childThreads("0", { ...env, LP_NUM_THREADS: "1" }));
  if (fallback) assert.deepEqual(given, [1, 1, "1"]);
  const [, ...none] = JSON.parse(await childThreads("undefined", env));
  assert.deepEqual(none, [null, null, null]);
});
