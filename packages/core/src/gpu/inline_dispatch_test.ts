/**
 * The decode-loop tests again, in a child process whose llvmpipe runs every dispatch inline
 * (`LP_NUM_THREADS=0`, the engine's choice for small targets): there `generate` and the speculative
 * decoder read their first batch before encoding more work, a path the parent's test device (Mesa's
 * default threads) never takes. Same assertions (LlamaRef greedy, eos, budgets, sampling, abort, T=0
 * speculative = plain, T>0 exactness statistics).
 */
import assert from "node:assert/strict";
import { testGpu } from "../testing/mod.ts";
import { submitsRunInline } from "./software_threads.ts";

Deno.test("plain and speculative decoding tests pass with inline dispatch (LP_NUM_THREADS=0, child process)", async () => {
  const { gpu } = await testGpu();
  const files = ["../decode/generate_test.ts", "../speculative/decoder_test.ts"]
    .map((f) => decodeURIComponent(new URL(f, import.meta.url).pathname));
  const lock = decodeURIComponent(new URL("../../../../deno.tests.lock", import.meta.url).pathname);
  const probe = `import { testGpu } from "${new URL("../testing/mod.ts", import.meta.url).href}";
import { submitsRunInline } from "${new URL("./software_threads.ts", import.meta.url).href}";
const { gpu } = await testGpu(); console.log(submitsRunInline(gpu)); gpu.device.destroy();`;
  const env = { LP_NUM_THREADS: "0", XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" }; // plain summary line
  const p = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", probe],
    env,
    stderr: "piped",
  })
    .output();
  assert.ok(p.success, new TextDecoder().decode(p.stderr));
  // A hardware adapter never runs inline: then the child would only repeat the parent's run.
  assert.equal(new TextDecoder().decode(p.stdout).trim(), String(gpu.isFallback));
  assert.equal(submitsRunInline(gpu), false, "the parent's device is expected to use Mesa's default threads");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--quiet", `--lock=${lock}`, ...files],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `inline decoding tests failed:\n${text.slice(-3000)}`);
  assert.match(text, /ok \| \d+ passed \| 0 failed/);
});
