/**
 * The GPU EAGLE-3 draft against the CPU reference (`reference/eagle3_ref.ts`) on a random draft over
 * the bundled tiny target with a 512-token draft vocabulary: fc, a causal prefix forward, then a
 * tree-masked expansion at shared depths (static and GPU-resident offsets); fresh-draft
 * initialisation; save → load round trip; and the loader's validation errors.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { loadModelDir } from "../io/model_dir.ts";
import type { ModelDir } from "../io/model_dir.ts";
import {
  type Eagle3Checkpoint,
  initEagle3Checkpoint,
  loadEagle3Checkpoint,
  saveEagle3Checkpoint,
} from "../io/eagle3.ts";
import { loadSafetensors, type TensorToWrite, writeSafetensors } from "../io/safetensors.ts";
import { BufferArena } from "../gpu/arena.ts";
import { packMask } from "../ops/attention.ts";
import { Eagle3Ref } from "../reference/eagle3_ref.ts";
import { assertAllClose, randn, rng, testGpu } from "../testing/mod.ts";
import { assertLoadError, tempDir, TINY_DIR } from "../io/_testing.ts";
import { Eagle3Draft } from "./eagle3.ts";

let tinyDir: Promise<ModelDir> | null = null;
function tiny(): Promise<ModelDir> {
  tinyDir ??= loadModelDir(TINY_DIR);
  return tinyDir;
}

/** A sorted random draft vocabulary of `vd` target ids out of `V` (EAGLE's d2t/t2d convention). */
function randomVocab(V: number, vd: number, seed: number): { d2t: Int32Array; t2d: Uint8Array } {
  const r = rng(seed);
  const t2d = new Uint8Array(V);
  for (let n = 0; n < vd;) {
    const t = Math.floor(r() * V);
    if (!t2d[t]) {
      t2d[t] = 1;
      n++;
    }
  }
  const d2t = new Int32Array(vd);
  for (let t = 0, i = 0; t < V; t++) if (t2d[t]) d2t[i] = t - i++;
  return { d2t, t2d };
}

/** A random draft with non-trivial norms and weights large enough to matter. */
async function randomDraft(vd = 512): Promise<Eagle3Checkpoint> {
  const target = await tiny();
  const ckpt = initEagle3Checkpoint(target, {
    draftVocab: randomVocab(target.config.vocabSize, vd, 7),
    seed: 3,
    initStd: 0.08,
  });
  let s = 100;
  for (const [name, w] of Object.entries(ckpt.tensors)) {
    if (name.endsWith("norm.weight")) w.set(randn(w.length, s++, 0.2).map((x) => 1 + x));
  }
  return ckpt;
}

Deno.test("eagle3: GPU forward matches the reference (fc, causal prefix, tree expansion, dynamic offsets)", async () => {
  const { gpu, rec } = await testGpu();
  const ckpt = await randomDraft();
  const cfg = ckpt.config;
  const H = cfg.hiddenSize, Vd = cfg.draftVocabSize, V = cfg.vocabSize;
  const K = cfg.auxLayerIds.length * cfg.targetHiddenSize;
  const draft = Eagle3Draft.fromCheckpoint(gpu, ckpt, { maxSeqLen: 64, maxBatch: 16 });
  const ref = new Eagle3Ref(ckpt, 64);
  const io = new BufferArena(gpu, 1 << 20, "eagle3-test-io");
  const kv = draft.createKvCache();
  const r = rng(11);
  const P = 7;
  try {
    // Prefix: features → fc → causal forward over P pairs at positions 0..P−1.
    const feats = randn(P * K, 21);
    const featsT = io.upload(feats, [P, K], "f32", "feats");
    const hidden0 = io.alloc([P, H], "f32", "hidden0");
    draft.fuse(rec, hidden0, featsT);
    const h0 = ref.fuse(feats);
    assertAllClose(await rec.readF32(hidden0), h0, { rtol: 1e-4, atol: 1e-5, name: "fc" });
    const ids = Array.from({ length: P }, () => Math.floor(r() * V));
    const idsT = io.upload(Uint32Array.from([99, ...ids]), [P + 1], "u32", "ids");
    const { out, logits } = draft.forward(rec, {
      kv,
      hidden: hidden0,
      ids: idsT,
      idsOffset: 1,
      T: P,
      cacheRow: 0,
      kvLen: P,
    });
    const refP = ref.forward({ hidden: h0, ids, cacheRow: 0 });
    assertAllClose(await rec.readF32(out), refP.out, { rtol: 2e-4, atol: 2e-5, name: "prefix out" });
    assertAllClose(await rec.readF32(logits!), refP.logits, {
      rtol: 2e-4,
      atol: 5e-5,
      name: "prefix logits",
    });
    equal(logits!.shape[1], Vd);

    // Tree expansion: 5 nodes after the prefix, n0 at depth P, n1/n2 children of n0, n3 of n1, n4 of n2.
    const parents = [-1, 0, 0, 1, 2];
    const depth = [0, 1, 1, 2, 2];
    const N = parents.length;
    const anc = new Uint8Array(N * N);
    for (let i = 0; i < N; i++) for (let j = i; j >= 0; j = parents[j]) anc[i * N + j] = 1;
    const refMask = new Uint8Array(N * (P + N));
    for (let i = 0; i < N; i++) {
      refMask.fill(1, i * (P + N), i * (P + N) + P);
      for (let j = 0; j < N; j++) refMask[i * (P + N) + P + j] = anc[i * N + j];
    }
    const treeMask = { mask: io.upload(packMask(anc, N, N), [N, 1], "u32", "tree_mask"), treeLen: N };
    const th = randn(N * H, 31, 0.5);
    const tids = Array.from({ length: N }, () => Math.floor(r() * V));
    const thT = io.upload(th, [N, H], "f32", "tree_hidden");
    const tidsT = io.upload(Uint32Array.from(tids), [N], "u32", "tree_ids");
    const posT = io.upload(Uint32Array.from(depth, (d) => P + d), [N], "u32", "tree_pos");
    const refT = ref.forward({
      hidden: th,
      ids: tids,
      cacheRow: P,
      positions: depth.map((d) => P + d),
      kvLen: P + N,
      mask: refMask,
    });
    const a = draft.forward(rec, {
      kv,
      hidden: thT,
      ids: tidsT,
      T: N,
      cacheRow: P,
      positions: posT,
      kvLen: P + N,
      treeMask,
    });
    const aOut = await rec.readF32(a.out), aLogits = await rec.readF32(a.logits!);
    assertAllClose(aOut, refT.out, { rtol: 2e-4, atol: 2e-5, name: "tree out" });
    assertAllClose(aLogits, refT.logits, {
      rtol: 2e-4,
      atol: 5e-5,
      name: "tree logits",
    });

    // The same expansion with the prefix length on the GPU (dynamicRow/dynamicPos/dynamicLen), writing
    // into a caller tensor that is also the hidden input (in-place feedback).
    const meta = io.upload(Uint32Array.from([5, P]), [2], "u32", "meta");
    const rel = io.upload(Uint32Array.from(depth), [N], "u32", "tree_rel_pos");
    const inplace = io.upload(th, [N, H], "f32", "tree_hidden_inplace");
    const b = draft.forward(rec, {
      kv,
      hidden: inplace,
      out: inplace,
      ids: tidsT,
      T: N,
      cacheRow: 0,
      dynamicRow: { meta, index: 1 },
      positions: rel,
      dynamicPos: { meta, index: 1 },
      kvLen: N,
      dynamicLen: { meta, index: 1 },
      treeMask,
    });
    equal(b.out, inplace);
    assertAllClose(await rec.readF32(b.out), refT.out, { rtol: 2e-4, atol: 2e-5, name: "dynamic tree out" });
    assertAllClose(await rec.readF32(b.logits!), refT.logits, {
      rtol: 2e-4,
      atol: 5e-5,
      name: "dynamic tree logits",
    });

    // The same expansion picking its hidden rows from a larger (N + 3, H) source by a GPU index (tree
    // growth's `hiddenRows`), writing over that source: bit-identical to passing the rows themselves.
    const perm = [6, 0, 3, 5, 1];
    const src = randn((N + 3) * H, 41);
    perm.forEach((j, t) => src.set(th.subarray(t * H, (t + 1) * H), j * H));
    const srcT = io.upload(src, [N + 3, H], "f32", "tree_hidden_src");
    const c = draft.forward(rec, {
      kv,
      hidden: srcT,
      hiddenRows: io.upload(Uint32Array.from([7, ...perm]), [N + 1], "u32", "tree_rows"),
      hiddenRowsOffset: 1,
      out: srcT,
      ids: tidsT,
      T: N,
      cacheRow: P,
      positions: posT,
      kvLen: P + N,
      treeMask,
    });
    deepEqual(await rec.readF32(c.out), aOut);
    deepEqual(await rec.readF32(c.logits!), aLogits);

    // head() = lm_head(norm(x)), d2t maps on the GPU.
    const lg = io.alloc([N, Vd], "f32", "head_logits");
    draft.head(rec, lg, thT);
    assertAllClose(await rec.readF32(lg), ref.head(th), { rtol: 2e-4, atol: 5e-5, name: "head" });
    deepEqual([...await rec.read(draft.d2t) as Int32Array], [...ckpt.d2t]);
    const d2tgt = await rec.read(draft.draftToTarget) as Uint32Array;
    for (let i = 0; i < Vd; i++) ok(ckpt.t2d[d2tgt[i]] === 1 && d2tgt[i] === i + ckpt.d2t[i]);
    // params: one flat view over every trainable weight.
    ok(draft.params !== null);
    const flat = await rec.readF32(draft.params!);
    const nn = Object.values(ckpt.tensors).reduce((s, t) => s + t.length, 0);
    ok(flat.length >= nn, `params ${flat.length} < ${nn}`);
  } finally {
    draft.destroy();
    kv.destroy();
    io.destroy();
  }
});

Deno.test("eagle3: fuseRopeAttention (RoPE + KV write inside attention) is bit-identical", async () => {
  const { gpu, rec } = await testGpu();
  const ckpt = await randomDraft();
  const H = ckpt.config.hiddenSize, V = ckpt.config.vocabSize;
  const io = new BufferArena(gpu, 1 << 20, "eagle3-rope-io");
  const r = rng(5);
  const P = 6, N = 4;
  const hidden = io.upload(randn(P * H, 51, 0.5), [P, H], "f32", "hidden");
  const ids = io.upload(Uint32Array.from({ length: P }, () => Math.floor(r() * V)), [P], "u32", "ids");
  // Tree step after the prefix: node 0 at depth 0, nodes 1–3 its children; rows picked from the prefix.
  const anc = Uint8Array.from([1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1]);
  const treeMask = { mask: io.upload(packMask(anc, N, N), [N, 1], "u32", "mask"), treeLen: N };
  const pos = io.upload(Uint32Array.of(0, 1, 1, 1), [N], "u32", "pos");
  const rows = io.upload(Uint32Array.of(5, 2, 0, 3), [N], "u32", "rows");
  const meta = io.upload(Uint32Array.of(P), [1], "u32", "meta");
  const results: Float32Array[][] = [];
  for (const fuseRopeAttention of [false, true]) {
    const draft = Eagle3Draft.fromCheckpoint(gpu, ckpt, { maxSeqLen: 32, maxBatch: 8, fuseRopeAttention });
    equal(draft.fuseRopeAttention, fuseRopeAttention);
    const kv = draft.createKvCache();
    const got: Float32Array[] = [];
    const pre = draft.forward(rec, { kv, hidden, ids, T: P, cacheRow: 0, kvLen: P }); // causal
    got.push(await rec.readF32(pre.out), await rec.readF32(pre.logits!));
    const tree = draft.forward(rec, {
      kv,
      hidden, // not pre.out: the keys written here then depend on the inputs only
      hiddenRows: rows,
      ids,
      T: N,
      cacheRow: 0,
      dynamicRow: { meta, index: 0 },
      positions: pos,
      dynamicPos: { meta, index: 0 },
      kvLen: N,
      dynamicLen: { meta, index: 0 },
      treeMask,
    });
    got.push(await rec.readF32(tree.out), await rec.readF32(tree.logits!));
    got.push(await rec.readF32(kv.k[0]), await rec.readF32(kv.v[0]));
    results.push(got);
    draft.destroy();
  }
  // Keys and values: the same rotation either way, bit for bit. Outputs: bit for bit against the
  // workgroup attention kernel that attentionRope extends (hardware); software adapters attend with
  // the one-lane-per-query kernel (another summation order), so there all-close.
  const names = ["prefix out", "prefix logits", "tree out", "tree logits", "keys", "values"];
  for (let i = 0; i < names.length; i++) {
    if (i >= 4 || !gpu.isFallback) deepEqual(results[1][i], results[0][i], names[i]);
    else assertAllClose(results[1][i], results[0][i], { rtol: 1e-5, atol: 1e-5, name: names[i] });
  }
  io.destroy();
});

Deno.test("eagle3: create() initialises like HF with the target's embedding and an identity vocabulary", async () => {
  const { gpu, rec } = await testGpu();
  const target = await tiny();
  const draft = Eagle3Draft.create(gpu, target, { draftVocabSize: 300, seed: 5, maxSeqLen: 16, maxBatch: 4 });
  try {
    const c = await draft.toCheckpoint(rec);
    equal(c.config.draftVocabSize, 300);
    deepEqual(c.config.auxLayerIds, [2, 3, 3]);
    ok(c.d2t.every((d) => d === 0));
    equal(c.t2d.reduce((s, b) => s + b, 0), 300);
    ok(c.t2d.subarray(0, 300).every((b) => b === 1));
    deepEqual(c.embed, target.weights.f32("model.embed_tokens.weight"));
    deepEqual(await rec.readF32(draft.embed), target.weights.f32("model.embed_tokens.weight"));
    ok(c.tensors["norm.weight"].every((x) => x === 1));
    const q = c.tensors["midlayer.self_attn.q_proj.weight"];
    const mean = q.reduce((s, x) => s + x, 0) / q.length;
    const std = Math.sqrt(q.reduce((s, x) => s + (x - mean) ** 2, 0) / q.length);
    ok(Math.abs(mean) < 1e-3 && Math.abs(std - 0.02) < 1e-3, `q_proj mean ${mean} std ${std}`);
    // Same seed → same weights; different tensors draw different numbers.
    const again = initEagle3Checkpoint(target, { draftVocabSize: 300, seed: 5 });
    deepEqual(again.tensors["fc.weight"], c.tensors["fc.weight"]);
    ok(again.tensors["fc.weight"][0] !== again.tensors["lm_head.weight"][0]);
  } finally {
    draft.destroy();
  }
});

Deno.test("eagle3: save → load round trip gives identical tensors and identical forward output", async () => {
  const { gpu, rec } = await testGpu();
  const target = await tiny();
  const ckpt = await randomDraft();
  const a = Eagle3Draft.fromCheckpoint(gpu, ckpt, { maxSeqLen: 32, maxBatch: 8 });
  const dir = await tempDir();
  const io = new BufferArena(gpu, 1 << 18, "eagle3-rt-io");
  const kv = a.createKvCache(); // shared by a and b (same shape)
  try {
    await a.save(rec, dir);
    const names = (await loadSafetensors(dir)).names().sort();
    deepEqual(names, [...Object.keys(ckpt.tensors), "d2t", "embed_tokens.weight", "t2d"].sort());
    const st = await loadSafetensors(dir);
    equal(st.get("d2t").dtype, "I64");
    equal(st.get("t2d").dtype, "BOOL");
    const cfgJson = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    deepEqual(cfgJson.architectures, ["LlamaForCausalLMEagle3"]);
    equal(cfgJson.draft_vocab_size, 512);
    ok(![...Deno.readDirSync(dir)].some((e) => e.name.includes(".tmp-")), "no temp files left");

    const b = await Eagle3Draft.load(gpu, dir, target, { maxSeqLen: 32, maxBatch: 8 });
    try {
      const ca = await a.toCheckpoint(rec), cb = await b.toCheckpoint(rec);
      for (const n of Object.keys(ca.tensors) as (keyof typeof ca.tensors)[]) {
        deepEqual(cb.tensors[n], ca.tensors[n], n);
        deepEqual(ca.tensors[n], ckpt.tensors[n], n);
      }
      deepEqual(cb.d2t, ckpt.d2t);
      deepEqual(cb.t2d, ckpt.t2d);
      deepEqual(cb.embed, ckpt.embed);
      deepEqual(cb.config, ca.config);
      const H = ckpt.config.hiddenSize, T = 5;
      const h = io.upload(randn(T * H, 41), [T, H], "f32", "h");
      const ids = io.upload(Uint32Array.from([1, 20, 300, 4000, 8191]), [T], "u32", "ids");
      const outs: Float32Array[] = [];
      for (const d of [a, b]) {
        const r = d.forward(rec, { kv, hidden: h, ids, T, cacheRow: 0, kvLen: T });
        outs.push(await rec.readF32(r.logits!), await rec.readF32(r.out));
      }
      deepEqual(outs[2], outs[0]);
      deepEqual(outs[3], outs[1]);
    } finally {
      b.destroy();
    }
  } finally {
    a.destroy();
    kv.destroy();
    io.destroy();
  }
});

/** Save `ckpt` to a temp dir, then rewrite its safetensors / config through `edit`. */
async function corrupted(
  ckpt: Eagle3Checkpoint,
  edit: { tensors?: (t: TensorToWrite[]) => TensorToWrite[]; config?: (c: Record<string, unknown>) => void },
): Promise<string> {
  const dir = await tempDir();
  await saveEagle3Checkpoint(dir, ckpt);
  if (edit.tensors) {
    const st = await loadSafetensors(dir);
    const list: TensorToWrite[] = st.names().map((n) => {
      const e = st.get(n);
      return { name: n, dtype: e.dtype, shape: e.shape, data: e.bytes.slice() };
    });
    await writeSafetensors(`${dir}/model.safetensors`, edit.tensors(list));
  }
  if (edit.config) {
    const c = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    edit.config(c);
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(c));
  }
  return dir;
}

Deno.test("eagle3: loading validates the checkpoint with errors naming file and tensor/field", async () => {
  const target = await tiny();
  const V = target.config.vocabSize;
  const ckpt = initEagle3Checkpoint(target, { draftVocab: randomVocab(V, 64, 9), seed: 1 });
  const i64 = (vals: number[]) => BigInt64Array.from(vals, BigInt);
  const replace = (name: string, f: (t: TensorToWrite) => TensorToWrite | null) => (l: TensorToWrite[]) =>
    l.flatMap((t) => {
      if (t.name !== name) return [t];
      const r = f(t);
      return r ? [r] : [];
    });

  // A valid one loads, and without embed_tokens.weight the target's embedding is used.
  const good = await corrupted(ckpt, { tensors: replace("embed_tokens.weight", () => null) });
  const loaded = await loadEagle3Checkpoint(good, target);
  deepEqual(loaded.embed, target.weights.f32("model.embed_tokens.weight"));
  deepEqual(loaded.d2t, ckpt.d2t);

  await assertLoadError(
    loadEagle3Checkpoint(await corrupted(ckpt, { tensors: replace("d2t", () => null) }), target),
    "model.safetensors",
    `"d2t"`,
    "missing",
  );
  const d2tBad = Array.from(ckpt.d2t);
  d2tBad[10] = V;
  await assertLoadError(
    loadEagle3Checkpoint(
      await corrupted(ckpt, { tensors: replace("d2t", (t) => ({ ...t, data: i64(d2tBad) })) }),
      target,
    ),
    "model.safetensors",
    `"d2t"`,
    "draft id 10",
    `[0, ${V})`,
  );
  const t2dBad = ckpt.t2d.slice();
  t2dBad[t2dBad.indexOf(0)] = 1;
  await assertLoadError(
    loadEagle3Checkpoint(
      await corrupted(ckpt, { tensors: replace("t2d", (t) => ({ ...t, data: t2dBad })) }),
      target,
    ),
    "model.safetensors",
    `"t2d"`,
  );
  await assertLoadError(
    loadEagle3Checkpoint(
      await corrupted(ckpt, {
        tensors: replace("t2d", (t) => ({ ...t, data: new Uint8Array(V - 1), shape: [V - 1] })),
      }),
      target,
    ),
    "model.safetensors",
    `"t2d"`,
    `[${V}]`,
  );
  await assertLoadError(
    loadEagle3Checkpoint(
      await corrupted(ckpt, {
        tensors: replace("fc.weight", (t) => ({ ...t, shape: [t.shape[1], t.shape[0]] })),
      }),
      target,
    ),
    "model.safetensors",
    `"fc.weight"`,
  );
  await assertLoadError(
    loadEagle3Checkpoint(
      await corrupted(ckpt, { tensors: replace("midlayer.self_attn.q_proj.weight", () => null) }),
      target,
    ),
    "model.safetensors",
    `"midlayer.self_attn.q_proj.weight"`,
  );
  await assertLoadError(
    loadEagle3Checkpoint(await corrupted(ckpt, { config: (c) => c.vocab_size = 4096 }), target),
    "config.json",
    `"vocab_size"`,
    "target",
  );
  await assertLoadError(
    loadEagle3Checkpoint(await corrupted(ckpt, { config: (c) => c.draft_vocab_size = 65 }), target),
    "model.safetensors",
    `"lm_head.weight"`,
    "[65, 128]",
  );
  await assertLoadError(
    loadEagle3Checkpoint(
      await corrupted(ckpt, { config: (c) => c.architectures = ["LlamaForCausalLM"] }),
      target,
    ),
    "config.json",
    `"architectures"`,
  );
  await assertLoadError(
    loadEagle3Checkpoint(await corrupted(ckpt, { config: (c) => c.target_hidden_size = 64 }), target),
    "config.json",
    `"target_hidden_size"`,
  );
  await assertLoadError(
    loadEagle3Checkpoint(
      await corrupted(ckpt, {
        config: (c) => c.eagle_config = { eagle_aux_hidden_state_layer_ids: [2, 3, 9] },
      }),
      target,
    ),
    "config.json",
    "eagle_aux_hidden_state_layer_ids",
  );
  // Default taps when eagle_config is absent: {2, ⌊L/2⌋, L−3}.
  const noTaps = await loadEagle3Checkpoint(
    await corrupted(ckpt, { config: (c) => delete c.eagle_config }),
    target,
  );
  deepEqual(noTaps.config.auxLayerIds, [2, 3, 3]);
});
