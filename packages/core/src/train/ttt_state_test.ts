/**
 * Optimizer-state save/restore of the TTT trainer (checkpoints of `deno task train`): after three
 * steps, the draft (read back into a checkpoint and uploaded again) plus the exported AdamW moments
 * and step count, imported into a second trainer, continue exactly as the first trainer does — same
 * losses and identical weights after two more steps. Also the size checks of `importState`.
 * @module
 */
import assert from "node:assert/strict";
import { rng, testGpu } from "../testing/mod.ts";
import { loadModelDir } from "../io/model_dir.ts";
import { LlamaModel } from "../model/llama.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { initEagle3Checkpoint } from "../io/eagle3.ts";
import { ShapeError } from "../errors.ts";
import { type TttBatch, TttTrainer } from "./ttt.ts";

const TINY = decodeURIComponent(new URL("../../../../models/tiny", import.meta.url).pathname);

Deno.test("ttt: exportState/importState continue training exactly", async () => {
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const B = 2, S = 10;
  const r = rng(5);
  const batches: TttBatch[] = Array.from({ length: 5 }, () => ({
    batch: B,
    seqLen: S,
    ids: Array.from({ length: B * S }, () => 6 + Math.floor(r() * 500)),
    lossMask: Array.from({ length: B * S }, (_, i) => (i % S) >= 3 ? 1 : 0),
  }));
  const model = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 32, maxBatch: 8 });
  const sizes = { maxSeqLen: 16, maxBatch: 4 };
  const a = Eagle3Draft.fromCheckpoint(
    gpu,
    initEagle3Checkpoint(dir, { draftVocabSize: 512, seed: 3 }),
    sizes,
  );
  const ta = TttTrainer.create(gpu, model, a, { maxBatch: B, maxSeqLen: S });
  const opt = { lr: 3e-3, weightDecay: 0.01 };
  for (let i = 0; i < 3; i++) {
    ta.step(rec, batches[i], opt);
    rec.submit();
  }
  const state = await ta.exportState(rec);
  assert.equal(state.step, 3);
  assert.equal(state.m.length, ta.optimizerStateSize);
  assert.ok(state.v.some((x) => x > 0), "second moments are non-zero after 3 steps");

  const b = Eagle3Draft.fromCheckpoint(gpu, await a.toCheckpoint(rec), sizes);
  const tb = TttTrainer.create(gpu, model, b, { maxBatch: B, maxSeqLen: S });
  assert.throws(
    () => tb.importState({ step: 3, m: state.m.subarray(1), v: state.v }),
    ShapeError,
  );
  tb.importState(state);
  assert.equal(tb.optimizerSteps, 3);
  for (let i = 3; i < 5; i++) {
    ta.step(rec, batches[i], opt);
    const ma = await ta.readMetrics(rec);
    tb.step(rec, batches[i], opt);
    const mb = await tb.readMetrics(rec);
    assert.deepEqual(mb.plosses, ma.plosses, `step ${i} losses`);
    assert.equal(mb.gradNorm, ma.gradNorm, `step ${i} grad norm`);
  }
  const ca = await a.toCheckpoint(rec), cb = await b.toCheckpoint(rec);
  for (const name of Object.keys(ca.tensors) as (keyof typeof ca.tensors)[]) {
    assert.deepEqual(cb.tensors[name], ca.tensors[name], name);
  }
  const sb = await tb.exportState(rec);
  const sa = await ta.exportState(rec);
  assert.deepEqual(sb.m, sa.m);
  assert.deepEqual(sb.v, sa.v);
  ta.destroy();
  tb.destroy();
  a.destroy();
  b.destroy();
  model.destroy();
});
