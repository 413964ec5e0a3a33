/**
 * `deno task train --phase gto` in-process on the bundled tiny target with synthetic samples: a short
 * Phase-I run makes M₀, then GTO from it logs finite GTO metrics on every row (rewards of M and M₀, R,
 * advantages, clip fraction, ratio range, L_token, L_GTO, mean l, tree-simulated τ), writes a final
 * draft, and N steps equal N/2 + `--resume` N/2 bit for bit (GTO metrics included); `--phase gto`
 * without `--init-draft` is one clear error.
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { KernelCache, loadSafetensors, Recorder } from "@gto/core";
import { testGpu } from "@gto/core/testing";
import type { TrainSample } from "@gto/core/train";
import { resolveConfig, type TrainConfig } from "./config.ts";
import { resolveRun, runTraining } from "./train.ts";
import { readMetricsFile, type StepRow } from "./metrics.ts";

const TINY = fileURLToPath(new URL("../../models/tiny", import.meta.url));

Deno.test("train --phase gto: metrics, final draft, exact resume", async () => {
  const { gpu } = await testGpu(); // the process-wide device: one Vulkan device per test process
  const rec = new Recorder(gpu, new KernelCache(gpu));
  const tmp = await Deno.makeTempDir({ prefix: "gto_train_gto_" });
  let s = 777;
  const rand = (n: number) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % n;
  };
  const samples: TrainSample[] = Array.from({ length: 7 }, () => ({
    promptIds: Array.from({ length: 4 + rand(4) }, () => 6 + rand(1500)),
    responseIds: Array.from({ length: 10 + rand(10) }, () => 6 + rand(1500)),
  }));
  const deps = { gpu, rec, samples };
  const common = { target: TINY, batch: 2, seqLen: 32, logEvery: 1, evalPrompts: 0, saveEvery: 0, seed: 3 };
  try {
    assert.throws(
      () => resolveConfig({ target: TINY, out: "x", phase: "gto" }),
      /--phase gto needs --init-draft/,
    );
    assert.equal(resolveConfig({ target: TINY, out: "x", phase: "gto", initDraft: "d" }).lr, 5e-5);
    const m0 = await runTraining(
      resolveConfig({ ...common, out: `${tmp}/m0`, steps: 2, draftVocab: 192, lr: 3e-3 }),
      null,
      deps,
    );
    assert.equal(m0.finished, true);
    const gtoCfg = (out: string): TrainConfig =>
      resolveConfig({
        ...common,
        out,
        phase: "gto",
        initDraft: `${tmp}/m0/draft`,
        steps: 4,
        lr: 1e-3,
        gtoGroups: 1,
        groupSize: 2,
        tree: { totalTokens: 16, depth: 3, topK: 4 },
      });
    const a = await runTraining(gtoCfg(`${tmp}/a`), null, deps);
    assert.equal(a.finished, true);
    const rowsA = (await readMetricsFile(`${tmp}/a/metrics.jsonl`)) as StepRow[];
    assert.deepEqual(rowsA.map((r) => r.step), [1, 2, 3, 4]);
    for (const r of rowsA) {
      assert.ok(r.gto, `step ${r.step}: gto metrics`);
      for (const [k, v] of Object.entries(r.gto!)) {
        assert.ok(Number.isFinite(v), `step ${r.step} gto.${k} = ${v}`);
      }
      assert.ok(r.gto!.prefixes > 0 && r.gto!.simulated_tau >= 1);
    }
    assert.equal(rowsA[0].gto!.mean_r, 0, "step 1 (M = M₀): R ≡ 0");
    const half = await runTraining({ ...gtoCfg(`${tmp}/b`), stopAfter: 2 }, null, deps);
    assert.equal(half.step, 2);
    const { cfg, resume } = await resolveRun(
      { target: TINY, out: `${tmp}/b`, resume: true },
      resolveConfig({ target: TINY, out: `${tmp}/b` }),
    );
    assert.equal(cfg.phase, "gto");
    assert.deepEqual(resume?.changed, []);
    const c = await runTraining(cfg, resume, deps);
    assert.equal(c.finished, true);
    const rowsB = (await readMetricsFile(`${tmp}/b/metrics.jsonl`)) as StepRow[];
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(rowsB[i].loss_k, rowsA[i].loss_k, `step ${i + 1} losses`);
      assert.equal(rowsB[i].grad_norm, rowsA[i].grad_norm, `step ${i + 1} grad norm`);
      assert.deepEqual(rowsB[i].gto, rowsA[i].gto, `step ${i + 1} gto metrics`);
    }
    const wa = await loadSafetensors(`${tmp}/a/draft/model.safetensors`);
    const wb = await loadSafetensors(`${tmp}/b/draft/model.safetensors`);
    for (const n of wa.names()) assert.deepEqual(wb.get(n).bytes, wa.get(n).bytes, n);
    // The ω = 0 control builds trees only on logged steps: those rows still carry GTO metrics.
    const ctl = await runTraining({ ...gtoCfg(`${tmp}/ctl`), omega: 0, logEvery: 2 }, null, deps);
    assert.equal(ctl.finished, true);
    const rowsC = (await readMetricsFile(`${tmp}/ctl/metrics.jsonl`)) as StepRow[];
    assert.deepEqual(rowsC.map((r) => r.step), [2, 4]);
    for (const r of rowsC) assert.ok(r.gto && r.gto.prefixes > 0, `control step ${r.step}: gto metrics`);
  } finally {
    rec.destroy();
    await Deno.remove(tmp, { recursive: true });
  }
});
