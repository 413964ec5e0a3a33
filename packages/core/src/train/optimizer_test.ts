/**
 * The draft optimizer as a gradient sink shared by objectives: two objectives recorded into one
 * step add (the same TTT objective twice gives 2× its gradient; bit for bit where a weight is
 * written once per objective, since x + x is exact in f32), gradients no objective wrote are zeroed before the norm, and a trainer on a shared
 * optimizer leaves it alive when destroyed.
 * @module
 */
import assert from "node:assert/strict";
import { assertAllClose, rng, testGpu } from "../testing/mod.ts";
import { loadModelDir } from "../io/model_dir.ts";
import { LlamaModel } from "../model/llama.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { DRAFT_WEIGHT_KEYS } from "../model/draft_layer.ts";
import { initEagle3Checkpoint } from "../io/eagle3.ts";
import { ShapeError } from "../errors.ts";
import { DraftOptimizer, optimizerStateTensors } from "./optimizer.ts";
import { TttTrainer } from "./ttt.ts";

const TINY = decodeURIComponent(new URL("../../../../models/tiny", import.meta.url).pathname);

Deno.test("DraftOptimizer: objectives add into one step's gradients; unwritten gradients are zeroed", async () => {
  const { gpu, rec } = await testGpu();
  const dir = await loadModelDir(TINY);
  const B = 2, S = 8;
  const r = rng(9);
  const batch = {
    batch: B,
    seqLen: S,
    ids: Array.from({ length: B * S }, () => 6 + Math.floor(r() * 500)),
    lossMask: Array.from({ length: B * S }, (_, i) => (i % S) >= 2 ? 1 : 0),
  };
  const model = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 16, maxBatch: 8 });
  const draft = Eagle3Draft.fromCheckpoint(gpu, initEagle3Checkpoint(dir, { draftVocabSize: 256, seed: 4 }), {
    maxSeqLen: 16,
    maxBatch: 4,
  });
  const opt = DraftOptimizer.create(gpu, draft);
  const ttt = TttTrainer.create(gpu, model, draft, { maxBatch: B, maxSeqLen: S, optimizer: opt });
  const read = async () => {
    const g: Record<string, Float32Array> = {};
    for (const k of DRAFT_WEIGHT_KEYS) g[k] = await rec.readF32(opt.grads[k]);
    return g;
  };
  try {
    assert.equal(ttt.optimizer, opt);
    assert.throws(
      () =>
        TttTrainer.create(gpu, model, draft, { maxBatch: B, maxSeqLen: S, optimizer: opt, backward: false }),
      ShapeError,
    );
    ttt.recordGradients(rec, batch);
    const once = await read();
    const norm1 = (await rec.readF32(opt.normSq))[0];
    opt.zeroGrad();
    ttt.recordObjective(rec, batch);
    ttt.recordObjective(rec, batch);
    opt.recordGradNorm(rec);
    const twice = await read();
    for (const k of DRAFT_WEIGHT_KEYS) {
      assert.ok(once[k].some((x) => x !== 0), `${k} has a gradient`);
      // fc is written once per objective, so g + g is exact; the others sum 7 per-step terms into a
      // running total (((G + a) + b) … ≠ 2G in f32), so they agree to rounding.
      if (k === "fc") assert.deepEqual(twice[k], once[k].map((x) => 2 * x), "fc: two objectives add exactly");
      else assertAllClose(twice[k], once[k].map((x) => 2 * x), { rtol: 1e-5, atol: 1e-9, name: k });
    }
    const norm2 = (await rec.readF32(opt.normSq))[0];
    assert.ok(Math.abs(norm2 / (4 * norm1) - 1) < 1e-5, `‖2g‖² ${norm2} vs 4‖g‖² ${4 * norm1}`);
    // A step in which no objective writes: the gradients read zero, and so does the norm.
    opt.zeroGrad();
    opt.recordGradNorm(rec);
    const none = await read();
    for (const k of DRAFT_WEIGHT_KEYS) assert.ok(none[k].every((x) => x === 0), `${k} zeroed`);
    assert.equal((await rec.readF32(opt.normSq))[0], 0);
    // The update counts steps; the checkpoint tensors carry the moments.
    opt.recordUpdate(rec, { lr: 1e-3 });
    const st = await opt.exportState(rec);
    assert.equal(st.step, 1);
    const [m, v] = optimizerStateTensors(st);
    assert.equal(m.name, "adam_m");
    assert.equal(v.name, "adam_v");
    assert.deepEqual(m.shape, [opt.stateSize]);
  } finally {
    ttt.destroy();
    assert.equal((await rec.readF32(opt.normSq)).length, 1, "a shared optimizer outlives the trainer");
    opt.destroy();
    draft.destroy();
    model.destroy();
  }
});
