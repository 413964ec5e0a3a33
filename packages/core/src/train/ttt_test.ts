/**
 * The EAGLE-3 TTT step: the f64 CPU reference (`ttt_ref.ts`) against central finite differences of
 * its own loss, and the GPU trainer (`ttt.ts`) against the reference — losses, accuracies, every
 * gradient, the gradient norm and the weights after clip + AdamW — on the bundled tiny target with a
 * random draft (hidden 128, draft vocabulary 256 with a non-identity map, B = 2, S = 12), for both
 * hidden-state modes; plus the batched mask, and that the loss falls over 20 steps.
 * @module
 */
import assert from "node:assert/strict";
import { assertAllClose, randn, rng, testGpu } from "../testing/mod.ts";
import { loadModelDir } from "../io/model_dir.ts";
import { LlamaModel } from "../model/llama.ts";
import { Eagle3Draft } from "../model/eagle3.ts";
import { EAGLE3_TENSOR_NAMES, type Eagle3Checkpoint, initEagle3Checkpoint } from "../io/eagle3.ts";
import { LlamaRef } from "../reference/llama_ref.ts";
import { packMask } from "../ops/attention.ts";
import { tttMask } from "../grad/attention_bwd.ts";
import { tttBatchMask, TttTrainer } from "./ttt.ts";
import { type TttRefInput, tttStepRef, tttUpdateRef } from "./ttt_ref.ts";
import { clippedSurrogate, pathRatio } from "./gto_ref.ts";
import { writeTensor } from "../gpu/arena.ts";

const TINY = decodeURIComponent(new URL("../../../../models/tiny", import.meta.url).pathname);
const dir = await loadModelDir(TINY);
const cfg = dir.config;
const B = 2, S = 12, M = B * S, VD = 256;

// Batch: random tokens; loss mask 0 on the first 3 tokens of row 0 and 5 of row 1, 1 after (the
// last position is masked in, so the zero-filled target row of every step counts: token 0 is in
// the draft vocabulary, so its uniform target is used).
const r = rng(11);
const ids = Array.from({ length: M }, () => 6 + Math.floor(r() * 2000));
const lossMask = Array.from({ length: M }, (_, i) => ((i % S) >= (i < S ? 3 : 5) ? 1 : 0));

// Target features and logits from the CPU reference model.
const ref = new LlamaRef(cfg, (name) => dir.weights.f32(name));
const ckpt0 = initEagle3Checkpoint(dir, { draftVocabSize: VD });
const F = ckpt0.config.auxLayerIds.length * cfg.hiddenSize;
const features = new Float32Array(M * F), targetLogits = new Float32Array(M * cfg.vocabSize);
for (let b = 0; b < B; b++) {
  ref.reset();
  const out = ref.forward(ids.slice(b * S, (b + 1) * S), { returnHiddenAtLayers: ckpt0.config.auxLayerIds });
  targetLogits.set(out.logits, b * S * cfg.vocabSize);
  ckpt0.config.auxLayerIds.forEach((l, i) => {
    const h = out.hidden.get(l)!;
    for (let t = 0; t < S; t++) {
      features.set(
        h.subarray(t * cfg.hiddenSize, (t + 1) * cfg.hiddenSize),
        (b * S + t) * F + i * cfg.hiddenSize,
      );
    }
  });
}

// Draft vocabulary: token 0, the target's argmax at most positions (so the masks are mostly 1), and
// random fill; sorted ascending so d2t is a non-trivial offset map.
const vocab = new Set<number>([0]);
for (let t = 0; t < M; t++) {
  if (t % 5 === 4) continue; // leave some argmaxes out of the vocabulary
  let am = 0;
  for (let v = 1; v < cfg.vocabSize; v++) {
    if (targetLogits[t * cfg.vocabSize + v] > targetLogits[t * cfg.vocabSize + am]) am = v;
  }
  vocab.add(am);
}
while (vocab.size < VD) vocab.add(Math.floor(r() * cfg.vocabSize));
const used = [...vocab].sort((a, b) => a - b);
const d2t = Int32Array.from(used, (u, i) => u - i);
const t2d = new Uint8Array(cfg.vocabSize);
for (const u of used) t2d[u] = 1;

/** A random draft: linear weights N(0, 0.05²), norm weights 1 + N(0, 0.1²). */
function makeCkpt(seed: number): Eagle3Checkpoint {
  const c = initEagle3Checkpoint(dir, { draftVocab: { d2t, t2d }, seed, initStd: 0.05 });
  EAGLE3_TENSOR_NAMES.forEach((n, i) => {
    if (n.endsWith("norm.weight")) {
      const z = randn(c.tensors[n].length, 100 + seed * 31 + i, 0.1);
      c.tensors[n] = c.tensors[n].map((v, j) => v + z[j]);
    }
  });
  return c;
}

const input: TttRefInput = { batch: B, seqLen: S, ids, lossMask, features, targetLogits };

/** GPU gradient of `name` (EAGLE layout) from the trainer's fused layout. */
function gpuGrad(name: string, g: Record<string, Float32Array>, c: Eagle3Checkpoint): Float32Array {
  const { hiddenSize: H, intermediateSize: I, numHeads: nH, numKvHeads: nKV, headDim: hd } = c.config;
  const unfuse = (rows: number, at: number) => {
    const m = new Float32Array(rows * 2 * H);
    for (let r = 0; r < rows; r++) {
      m.set(g.qkvEmb.subarray((at + r) * H, (at + r + 1) * H), r * 2 * H);
      m.set(g.qkvHidden.subarray((at + r) * H, (at + r + 1) * H), r * 2 * H + H);
    }
    return m;
  };
  switch (name) {
    case "fc.weight":
      return g.fc;
    case "midlayer.input_layernorm.weight":
      return g.inputNorm;
    case "midlayer.hidden_norm.weight":
      return g.hiddenNorm;
    case "midlayer.self_attn.q_proj.weight":
      return unfuse(nH * hd, 0);
    case "midlayer.self_attn.k_proj.weight":
      return unfuse(nKV * hd, nH * hd);
    case "midlayer.self_attn.v_proj.weight":
      return unfuse(nKV * hd, (nH + nKV) * hd);
    case "midlayer.self_attn.o_proj.weight":
      return g.o;
    case "midlayer.post_attention_layernorm.weight":
      return g.postNorm;
    case "midlayer.mlp.gate_proj.weight":
      return g.gateUp.subarray(0, I * H);
    case "midlayer.mlp.up_proj.weight":
      return g.gateUp.subarray(I * H);
    case "midlayer.mlp.down_proj.weight":
      return g.down;
    case "norm.weight":
      return g.norm;
    case "lm_head.weight":
      return g.lmHead;
  }
  throw new Error(name);
}

Deno.test("tttBatchMask: B = 1 equals packMask(tttMask); B = 2 is block-diagonal with padded steps", () => {
  for (let k = 0; k < 4; k++) {
    assert.deepEqual(tttBatchMask(1, 7, k, 7), packMask(tttMask(7, k), 7, 7 * (k + 1)));
  }
  const bits = tttBatchMask(2, 3, 2, 8); // keys: step 0 rows 0..5, step 1 at 8.., step 2 at 16..
  const words = Math.ceil((16 + 6) / 32);
  const sees = (q: number, j: number) => ((bits[q * words + (j >> 5)] >>> (j & 31)) & 1) === 1;
  assert.ok(sees(4, 3) && sees(4, 4) && !sees(4, 5) && !sees(4, 2));
  assert.ok(sees(4, 8 + 4) && sees(4, 16 + 4) && !sees(4, 8 + 3) && !sees(4, 6));
});

Deno.test("ttt reference: gradients match central finite differences of its loss", () => {
  const c = makeCkpt(3);
  const base = tttStepRef(c, input);
  assert.ok(base.loss > 0 && Number.isFinite(base.gradNormSq));
  const probes: [string, number][] = [
    ["fc.weight", 17],
    ["midlayer.input_layernorm.weight", 5],
    ["midlayer.hidden_norm.weight", 77],
    ["midlayer.self_attn.q_proj.weight", 1000],
    ["midlayer.self_attn.k_proj.weight", 2011],
    ["midlayer.self_attn.v_proj.weight", 333],
    ["midlayer.self_attn.o_proj.weight", 4242],
    ["midlayer.post_attention_layernorm.weight", 9],
    ["midlayer.mlp.gate_proj.weight", 777],
    ["midlayer.mlp.up_proj.weight", 31337],
    ["midlayer.mlp.down_proj.weight", 123],
    ["norm.weight", 64],
    ["lm_head.weight", 2049],
  ];
  for (const [name, i] of probes) {
    const t = c.tensors[name as keyof typeof c.tensors];
    const orig = t[i];
    const h = 1e-3;
    // f64 forward on f32-stored weights: perturb by exactly representable steps.
    t[i] = orig + h;
    const up = tttStepRef(c, input, { backward: false }).loss;
    t[i] = orig - h;
    const down = tttStepRef(c, input, { backward: false }).loss;
    t[i] = orig;
    const fd = (up - down) / (Math.fround(orig + h) - Math.fround(orig - h));
    const an = base.grads[name as keyof typeof base.grads]![i];
    assert.ok(Math.abs(fd - an) <= 1e-6 + 1e-4 * Math.abs(an), `${name}[${i}]: analytic ${an} vs FD ${fd}`);
  }
});

for (const detachHidden of [false, true]) {
  Deno.test(`ttt GPU step matches the f64 reference (detachHidden ${detachHidden})`, async () => {
    const { gpu, rec } = await testGpu();
    const c = makeCkpt(7);
    const want = tttStepRef(c, input, { detachHidden });
    const upd = tttUpdateRef(c, want, { lr: 1e-3 });
    const model = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 32, maxBatch: 8 });
    const draft = Eagle3Draft.fromCheckpoint(gpu, c, { maxSeqLen: 16, maxBatch: 4 });
    const trainer = TttTrainer.create(gpu, model, draft, { maxBatch: B, maxSeqLen: S + 4, detachHidden });
    try {
      trainer.recordGradients(rec, { batch: B, seqLen: S, ids, lossMask });
      const got = await trainer.readMetrics(rec);
      // Measured: plosses ~1e-7 relative, grad norm ~2e-7, gradients ≤ 1e-6 of each tensor's max |g|
      // (f32 GPU vs f64 reference); the bounds leave ~10× margin for other adapters.
      assertAllClose(got.plosses, want.plosses, { rtol: 2e-6, atol: 1e-7, name: "plosses" });
      assertAllClose(got.acces, want.acces, { rtol: 1e-6, atol: 1e-6, name: "acces" });
      assertAllClose([got.loss], [want.loss], { rtol: 2e-6, name: "loss" });
      assertAllClose([got.gradNorm], [Math.sqrt(want.gradNormSq)], { rtol: 5e-6, name: "grad norm" });
      const g: Record<string, Float32Array> = {};
      for (const [k, t] of Object.entries(trainer.grads)) g[k] = await rec.readF32(t);
      let worstRel = 0;
      for (const n of EAGLE3_TENSOR_NAMES) {
        const w = want.grads[n]!;
        let mx = 0;
        for (const v of w) mx = Math.max(mx, Math.abs(v));
        const a = gpuGrad(n, g, c);
        for (let i = 0; i < a.length; i++) worstRel = Math.max(worstRel, Math.abs(a[i] - w[i]) / mx);
        assertAllClose(a, w, { rtol: 1e-4, atol: 1e-5 * mx + 1e-12, name: `grad ${n}` });
      }
      if (Deno.env.get("GTO_TTT_VERBOSE")) {
        console.log(
          `plosses max rel ${Math.max(...got.plosses.map((x, k) => Math.abs(x / want.plosses[k] - 1)))}; ` +
            `grad norm rel ${Math.abs(got.gradNorm / Math.sqrt(want.gradNormSq) - 1)}; ` +
            `worst grad |Δ|/max|g| per tensor ${worstRel}`,
        );
      }
      trainer.recordUpdate(rec, { lr: 1e-3 });
      const after = await draft.toCheckpoint(rec);
      for (const n of EAGLE3_TENSOR_NAMES) {
        // AdamW's first step moves each weight by ≈ lr·sign(g); a gradient that is ~0 relative to
        // its tensor can flip sign under f32 rounding, so such entries are allowed to differ by 2·lr.
        const w = want.grads[n]!;
        let mx = 0;
        for (const v of w) mx = Math.max(mx, Math.abs(v));
        const a = after.tensors[n], e = upd[n];
        for (let i = 0; i < a.length; i++) {
          const tol = Math.abs(w[i]) < 1e-3 * mx ? 2.1e-3 : 2e-5;
          assert.ok(Math.abs(a[i] - e[i]) <= tol, `${n}[${i}]: ${a[i]} vs ${e[i]} (grad ${w[i]})`);
        }
      }
    } finally {
      trainer.destroy();
      draft.destroy();
      model.destroy();
    }
  });
}

Deno.test("ttt: the loss falls over 20 steps on one tiny batch; no GPU object per step", async () => {
  const { gpu, rec } = await testGpu();
  const model = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 32, maxBatch: 8 });
  const draft = Eagle3Draft.fromCheckpoint(gpu, makeCkpt(9), { maxSeqLen: 16, maxBatch: 4 });
  const trainer = TttTrainer.create(gpu, model, draft, { maxBatch: B, maxSeqLen: S });
  try {
    const batch = { batch: B, seqLen: S, ids, lossMask };
    trainer.step(rec, batch, { lr: 3e-3 });
    const first = await trainer.readMetrics(rec);
    const pipelines = rec.kernels.pipelineCount, groups = rec.kernels.bindGroupCount;
    let last = first;
    for (let s = 1; s < 20; s++) {
      trainer.step(rec, batch, { lr: 3e-3 });
      if (s === 19) last = await trainer.readMetrics(rec);
    }
    assert.equal(rec.kernels.pipelineCount, pipelines);
    assert.equal(rec.kernels.bindGroupCount, groups);
    assert.ok(last.loss < 0.7 * first.loss, `loss ${first.loss} → ${last.loss}`);
    assert.ok(last.plosses[0] < first.plosses[0]);
    assert.ok(last.acces[0] >= first.acces[0]);
  } finally {
    trainer.destroy();
    draft.destroy();
    model.destroy();
  }
});

Deno.test("ttt seams: 8 steps match the f64 reference; an 8th step of weight 0 changes nothing; forward-only losses", async () => {
  const { gpu, rec } = await testGpu();
  const c = makeCkpt(5);
  const want = tttStepRef(c, input, { steps: 8, backward: false });
  const model = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 32, maxBatch: 8 });
  const draft = Eagle3Draft.fromCheckpoint(gpu, c, { maxSeqLen: 16, maxBatch: 4 });
  const sizes = { maxBatch: B, maxSeqLen: S };
  const eight = TttTrainer.create(gpu, model, draft, { ...sizes, steps: 8 });
  const seven = TttTrainer.create(gpu, model, draft, sizes);
  const zero8 = TttTrainer.create(gpu, model, draft, {
    ...sizes,
    steps: 8,
    stepWeights: [...Array.from({ length: 7 }, (_, k) => 0.8 ** k), 0],
  });
  const fwd = TttTrainer.create(gpu, model, draft, { ...sizes, backward: false });
  const batch = { batch: B, seqLen: S, ids, lossMask };
  const grads = async (t: TttTrainer) => {
    const g: Record<string, Float32Array> = {};
    for (const [k, x] of Object.entries(t.grads)) g[k] = await rec.readF32(x);
    return g;
  };
  try {
    eight.recordGradients(rec, batch);
    const m8 = await eight.readMetrics(rec);
    assert.equal(m8.plosses.length, 8);
    assertAllClose(m8.plosses, want.plosses, { rtol: 2e-6, atol: 1e-7, name: "plosses (8 steps)" });
    assertAllClose(m8.acces, want.acces, { rtol: 1e-6, atol: 1e-6, name: "acces (8 steps)" });
    assertAllClose([m8.loss], [want.loss], { rtol: 2e-6, name: "loss (8 steps)" });

    seven.recordGradients(rec, batch);
    const m7 = await seven.readMetrics(rec);
    const g7 = await grads(seven);
    zero8.recordGradients(rec, batch);
    const mz = await zero8.readMetrics(rec);
    assert.deepEqual(mz.plosses.slice(0, 7), m7.plosses);
    assert.equal(mz.plosses[7], 0, "a step of weight 0 reports ploss 0");
    assert.equal(mz.loss, m7.loss);
    assert.equal(mz.gradNorm, m7.gradNorm);
    const gz = await grads(zero8);
    for (const k of Object.keys(g7)) assert.deepEqual(gz[k], g7[k], `grad ${k}`);

    fwd.recordGradients(rec, batch);
    const mf = await fwd.readMetrics(rec);
    assert.deepEqual(mf.plosses, m7.plosses, "forward-only losses equal the trainer's bit for bit");
    assert.deepEqual(mf.acces, m7.acces);
    assert.equal(mf.gradNorm, 0);
    assert.equal(fwd.optimizer, null);
    assert.throws(() => fwd.recordUpdate(rec, { lr: 1e-3 }), /backward: false/);
  } finally {
    for (const t of [eight, seven, zero8, fwd]) t.destroy();
    draft.destroy();
    model.destroy();
  }
});

// GTO along the TTT rows: prefixes (sequence b, root r, accepted length l); step k at row b·S + r − 1
// carries the hard label of Ŝ's (k+1)-th token (any draft id works for the algebra; the trainer uses
// the data tokens' draft ids).
const GTO_PREFIXES: [number, number, number][] = [[0, 4, 3], [1, 6, 0], [1, 9, 2]];
const GTO_STEPS = 8;
const gtoLabels = new Uint32Array(GTO_STEPS * M).fill(0xffffffff);
GTO_PREFIXES.forEach(([b, root, l], p) => {
  for (let k = 0; k < l; k++) gtoLabels[k * M + b * S + root - 1] = (37 * p + 11 * k + 3) % VD;
});
/** (steps·M) weights: `perPrefix[p]` on the rows of prefix p's path, 0 elsewhere. */
function gtoWeights(perPrefix: number[]): Float64Array {
  const w = new Float64Array(GTO_STEPS * M);
  GTO_PREFIXES.forEach(([b, root, l], p) => {
    for (let k = 0; k < l; k++) w[k * M + b * S + root - 1] = perPrefix[p];
  });
  return w;
}
/** log M(Ŝ_p) per prefix from the reference's hard losses with weight 1. */
function pathLogProbs(c: Eagle3Checkpoint): number[] {
  const res = tttStepRef(c, input, {
    steps: GTO_STEPS,
    backward: false,
    stepWeights: new Array(GTO_STEPS).fill(0),
    hard: { labels: gtoLabels, weights: gtoWeights([1, 1, 1]) },
  });
  return GTO_PREFIXES.map(([b, root, l]) => {
    let s = 0;
    for (let k = 0; k < l; k++) s -= res.hardLoss[k * M + b * S + root - 1];
    return s;
  });
}

Deno.test("GTO gradient in f64: hard-label TTT rows with h = −∂L_GTO/∂log M(Ŝ) match finite differences of L_GTO(θ)", () => {
  const c = makeCkpt(13);
  const A = [1.2, -0.5, -0.9], l = GTO_PREFIXES.map(([, , x]) => x), eps = 0.2;
  const lm = pathLogProbs(c);
  const logM0 = [lm[0] + 0.05 * 3, 0, lm[2] - 0.1 * 2]; // s inside [1−ε, 1+ε] for prefixes 0 and 2
  const lossAt = (cc: Eagle3Checkpoint) => {
    const x = pathLogProbs(cc);
    return clippedSurrogate(x.map((v, p) => pathRatio(v, logM0[p], l[p])), A, l, eps).loss;
  };
  const { coeffs } = clippedSurrogate(lm.map((v, p) => pathRatio(v, logM0[p], l[p])), A, l, eps);
  assert.ok(coeffs[0] !== 0 && coeffs[1] === 0 && coeffs[2] !== 0);
  const an = tttStepRef(c, input, {
    steps: GTO_STEPS,
    stepWeights: new Array(GTO_STEPS).fill(0),
    hard: { labels: gtoLabels, weights: gtoWeights(Array.from(coeffs, (x) => -x)) },
  });
  const probes: [string, number][] = [
    ["fc.weight", 29],
    ["midlayer.self_attn.q_proj.weight", 1500],
    ["midlayer.self_attn.v_proj.weight", 301],
    ["midlayer.mlp.down_proj.weight", 4000],
    ["midlayer.hidden_norm.weight", 12],
    ["lm_head.weight", 3 * 128 + 5],
  ];
  for (const [name, i] of probes) {
    const t = c.tensors[name as keyof typeof c.tensors];
    const orig = t[i], h = 1e-3;
    t[i] = orig + h;
    const up = lossAt(c);
    t[i] = orig - h;
    const down = lossAt(c);
    t[i] = orig;
    const fd = (up - down) / (Math.fround(orig + h) - Math.fround(orig - h));
    const g = an.grads[name as keyof typeof an.grads]![i];
    assert.ok(Math.abs(fd - g) <= 1e-8 + 1e-4 * Math.abs(g), `${name}[${i}]: analytic ${g} vs FD ${fd}`);
  }
});

Deno.test("ttt hard-label rows on the GPU match the f64 reference (8 steps, soft + hard gradients, hard losses)", async () => {
  const { gpu, rec } = await testGpu();
  const c = makeCkpt(17);
  const sw = [...Array.from({ length: 7 }, (_, k) => 0.8 ** k), 0];
  const hw = gtoWeights([0.7, 3, -1.9]);
  const want = tttStepRef(c, input, {
    steps: GTO_STEPS,
    stepWeights: sw,
    hard: { labels: gtoLabels, weights: hw },
  });
  const model = await LlamaModel.load(gpu, dir, { weightDtype: "f32", maxSeqLen: 32, maxBatch: 8 });
  const draft = Eagle3Draft.fromCheckpoint(gpu, c, { maxSeqLen: 16, maxBatch: 4 });
  const trainer = TttTrainer.create(gpu, model, draft, {
    maxBatch: B,
    maxSeqLen: S,
    steps: GTO_STEPS,
    stepWeights: sw,
    hardLabels: true,
  });
  try {
    const batch = { batch: B, seqLen: S, ids, lossMask };
    const stride = trainer.rowStride(batch), hard = trainer.hard!;
    const labels = new Uint32Array(hard.labels.size).fill(0xffffffff),
      weights = new Float32Array(hard.weights.size);
    for (let k = 0; k < GTO_STEPS; k++) {
      labels.set(gtoLabels.subarray(k * M, (k + 1) * M), k * stride);
      weights.set(hw.subarray(k * M, (k + 1) * M), k * stride);
    }
    writeTensor(gpu, hard.labels, labels);
    writeTensor(gpu, hard.weights, weights);
    trainer.recordGradients(rec, batch);
    const got = await trainer.readMetrics(rec);
    assertAllClose(got.plosses, want.plosses, {
      rtol: 2e-6,
      atol: 1e-7,
      name: "plosses (hard terms kept apart)",
    });
    const hl = await rec.readF32(hard.loss);
    const hlRows = new Float64Array(GTO_STEPS * M);
    for (let k = 0; k < GTO_STEPS; k++) hlRows.set(hl.subarray(k * stride, k * stride + M), k * M);
    assertAllClose(hlRows, want.hardLoss, { rtol: 1e-5, atol: 1e-6, name: "hard losses" });
    const g: Record<string, Float32Array> = {};
    for (const [k, t] of Object.entries(trainer.grads)) g[k] = await rec.readF32(t);
    for (const n of EAGLE3_TENSOR_NAMES) {
      const w = want.grads[n]!;
      let mx = 0;
      for (const v of w) mx = Math.max(mx, Math.abs(v));
      assertAllClose(gpuGrad(n, g, c), w, { rtol: 1e-4, atol: 1e-5 * mx + 1e-12, name: `grad ${n}` });
    }
  } finally {
    trainer.destroy();
    draft.destroy();
    model.destroy();
  }
});
