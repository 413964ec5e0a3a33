/**
 * The playground in headless Chromium (Debian `chromium`, driven by npm `playwright-core`; both are
 * test-only: `.ci/run` installs the browser). The page is served by the app over a real socket with the
 * fake engine (deterministic trees, no GPU) and by a real `deno task serve` (tiny target, random
 * draft: the engine's per-cycle trace). The test loads the page, sends a prompt, waits for `done`, checks that the draft tree is
 * drawn (nodes, the accepted path in green, the bonus node), the timeline has a bar per cycle and the
 * output text is coloured per cycle, and saves a screenshot to `out/playground.png` (or
 * `$GTO_SCREENSHOT`).
 */
import assert from "node:assert/strict";
// Test-only: pinned here and locked in deno.tests.lock, not deno.lock, so `deno task serve` never
// downloads it (docs/serve.md); run this file with --lock=deno.tests.lock, as `deno task test` does.
// deno-lint-ignore no-import-prefix
import { chromium } from "npm:playwright-core@1.65.1";
import { createApp } from "./app.ts";
import { FakeEngine } from "./fake_engine.ts";
import { startServer } from "./testing/server.ts";
import { saveRandomDraft } from "./testing/draft.ts";

const CHROMIUM = Deno.env.get("GTO_CHROMIUM") ?? "/usr/bin/chromium";
const hasChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);
/** Headless Chromium as both tests launch it (no sandbox or GPU: CI containers have neither). */
function launchChromium(): ReturnType<typeof chromium.launch> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-dev-shm-usage",
    ],
  });
}
const SHOT = Deno.env.get("GTO_SCREENSHOT") ??
  decodeURIComponent(new URL("../../out/playground.png", import.meta.url).pathname);

Deno.test({
  name: `playground in headless Chromium: prompt → tree, accepted path, timeline, coloured text${
    hasChromium ? "" : ` (ignored: ${CHROMIUM} is missing; .ci/run installs it)`
  }`,
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const engine = new FakeEngine({ cycleDelayMs: 15 });
    const app = createApp(engine);
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      // Page-side code is passed as strings: the test is type-checked without the DOM library.
      await page.waitForFunction(`document.getElementById("info").textContent.includes("fake-draft")`);
      await page.fill("#prompt", "draw me a tree");
      await page.click("#send");
      await page.waitForSelector("body[data-state='done']", { timeout: 30_000 });
      const reply = "You said: draw me a tree. Bye.";
      assert.equal(await page.textContent("#chat .assistant"), `assistant: ${reply}`);
      // The output text, coloured per cycle: spans add up to the reply.
      const spans: [string, string][] = await page.evaluate(
        `[...document.querySelectorAll("#output span.tok")].map((e) => [e.textContent, e.className])`,
      );
      assert.equal(spans.map((s) => s[0]).join(""), reply);
      assert.ok(spans.some((s) => s[1].includes("draft")) && spans.some((s) => s[1].includes("bonus")));
      // The timeline has one bar per cycle; the last cycle's tree is shown.
      const bars = await page.locator("#timeline rect.bar").count();
      // 30 characters: the first from the prefill, then 29 + eos in cycles of 1, 2, 3, ... tokens = 15 cycles.
      assert.equal(bars, 15);
      // Open a cycle that accepted two drafts (the fake's third cycle) and check its tree.
      await page.click("#timeline rect.bar:nth-of-type(3)");
      const tree = await page.evaluate(`(() => {
        const svg = document.getElementById("tree");
        const n = (sel) => svg.querySelectorAll(sel).length;
        return {
          nodes: Number(svg.dataset.nodes), accepted: Number(svg.dataset.accepted), drawn: n("g.node"),
          green: n("g.node.accepted"), bonus: n("g.node.bonus"), root: n("g.node.root"),
          greenEdges: n("path.edge.accepted"),
        };
      })()`);
      assert.deepEqual(tree, { nodes: 6, accepted: 2, drawn: 7, green: 2, bonus: 1, root: 1, greenEdges: 2 });
      assert.match(
        (await page.textContent("#cycle-head"))!,
        /cycle 3 of \d+ · 6 tree nodes · depth 3 · accepted 2/,
      );
      assert.notEqual(await page.textContent("#s-tau"), "–");
      assert.deepEqual(errors, []);
      await Deno.mkdir(SHOT.replace(/\/[^/]*$/, ""), { recursive: true });
      await page.screenshot({ path: SHOT, fullPage: true });
      console.log(`  screenshot: ${SHOT}`);
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name: `playground in headless Chromium against deno task serve (tiny + random draft)${
    hasChromium ? "" : ` (ignored: ${CHROMIUM} is missing; .ci/run installs it)`
  }`,
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const TINY = decodeURIComponent(new URL("../../models/tiny", import.meta.url).pathname);
    const dir = await saveRandomDraft("gto_pg_draft_");
    const server = await startServer([
      "--model",
      TINY,
      "--draft",
      dir,
      "--tree",
      "8,2,3",
      "--max-context",
      "512",
    ]);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`${server.url}/`);
      await page.fill("#max-tokens", "24");
      await page.fill("#prompt", "What is 12 plus 7?");
      await page.click("#send");
      await page.waitForSelector("body[data-state='done']", { timeout: 120_000 });
      const tree = await page.evaluate(`(() => {
        const svg = document.getElementById("tree");
        return { nodes: Number(svg.dataset.nodes), drawn: svg.querySelectorAll("g.node").length,
          root: svg.querySelectorAll("g.node.root").length, bonus: svg.querySelectorAll("g.node.bonus").length,
          accepted: Number(svg.dataset.accepted), green: svg.querySelectorAll("g.node.accepted").length };
      })()`) as {
        nodes: number;
        drawn: number;
        root: number;
        bonus: number;
        accepted: number;
        green: number;
      };
      assert.ok(tree.nodes >= 2 && tree.drawn === tree.nodes + 1, JSON.stringify(tree));
      assert.equal(tree.root, 1);
      assert.equal(tree.bonus, 1);
      assert.equal(tree.green, tree.accepted);
      const shot = SHOT.replace(/\.png$/, "_tiny.png");
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`  screenshot: ${shot}`);
    } finally {
      await browser.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
