/**
 * The EAGLE-3 draft end to end against the EAGLE authors' own code (needs ../shared; fails — never
 * skips — when it is missing): `small-eagle3-reference` over `small`. For the first cycle of several
 * traces: the target runs on the prompt with feature taps [2, 4, 5] captured into a (T, 3H) tensor;
 * the root is the target argmax at the last position; the draft runs its prefill on the pairs
 * (feature of token p, embedding of token p+1), p = 0..N−1 (tokens = prompt ++ [root], positions
 * 0..N−1); the top-10 of log-softmax(lm_head(norm(last out))) mapped through d2t must be the trace's
 * root children (nodes whose parent is 0), in score order. This checks the taps, fc, the draft layer,
 * the draft KV cache and d2t against `cnets.py` `topK_genrate`.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  BufferArena,
  copyRows,
  Eagle3Draft,
  KernelCache,
  LlamaModel,
  loadModelDir,
  logSoftmax,
  Recorder,
  topk,
} from "@gto/core";
import { testGpu } from "../packages/core/src/testing/mod.ts";

const SHARED = decodeURIComponent(new URL("../../shared/models", import.meta.url).pathname);

interface Cycle {
  draft_tokens: number[];
  parents: number[];
}
interface Trace {
  input_ids: number[];
  cycles: Cycle[];
}

Deno.test("EAGLE-3 reference draft: first-cycle root children match the EAGLE authors' traces", async () => {
  const { gpu } = await testGpu();
  const target = await loadModelDir(`${SHARED}/small`);
  const draftDir = `${SHARED}/small-eagle3-reference`;
  const traces =
    (JSON.parse(await Deno.readTextFile(`${draftDir}/traces.json`)) as { traces: Trace[] }).traces;
  const model = await LlamaModel.load(gpu, target, { weightDtype: "f32", maxSeqLen: 256, maxBatch: 256 });
  const draft = await Eagle3Draft.load(gpu, draftDir, target, { maxSeqLen: 256, maxBatch: 256 });
  const rec = new Recorder(gpu, new KernelCache(gpu));
  const H = target.config.hiddenSize, Vd = draft.config.draftVocabSize;
  deepEqual(draft.config.auxLayerIds, [2, 4, 5]);
  equal(Vd, 2048);
  const io = new BufferArena(gpu, 4 << 20, "eagle3-shared-io");
  const kv = model.createKvCache(), draftKv = draft.createKvCache();
  const feats = io.alloc([256, 3 * H], "f32", "feats"); // (T, 3H)
  const hidden = io.alloc([256, H], "f32", "fc_out"); // (T, H)
  const ids = io.alloc([257], "u32", "ids");
  const lp = io.alloc([1, Vd], "f32", "logprobs");
  const topIds = io.alloc([1, 10], "u32", "top_ids");
  const topVals = io.alloc([1, 10], "f32", "top_vals");
  const lastOut = io.alloc([1, H], "f32", "last_out");
  const head = io.alloc([1, Vd], "f32", "head_logits");
  const picks = [0, 1, 2, 3, 4, 5, 6];
  try {
    for (const ti of picks) {
      const tr = traces[ti];
      const prompt = tr.input_ids, N = prompt.length;
      const c0 = tr.cycles[0];
      gpu.device.queue.writeBuffer(ids.buffer, ids.offset, Uint32Array.from(prompt));
      const logits = model.forward(rec, kv, ids, 0, N, 0, {
        logits: "last",
        capture: [2, 4, 5].map((layer, k) => ({ layer, dst: feats, offset: k * H, stride: 3 * H })),
      })!;
      const last = await rec.readF32(logits);
      let root = 0;
      for (let v = 1; v < last.length; v++) if (last[v] > last[root]) root = v;
      equal(root, c0.draft_tokens[0], `trace ${ti}: root`);

      // Draft prefill on pairs (feature p, token p+1), p = 0..N−1.
      gpu.device.queue.writeBuffer(ids.buffer, ids.offset, Uint32Array.from([...prompt, root]));
      const h = hidden.rows(N);
      draft.fuse(rec, h, feats.rows(N));
      const { out } = draft.forward(rec, {
        kv: draftKv,
        hidden: h,
        ids,
        idsOffset: 1,
        T: N,
        cacheRow: 0,
        kvLen: N,
        logits: "none",
      });
      copyRows(rec, lastOut, { offset: 0, stride: H }, out, { offset: (N - 1) * H, stride: H }, 1, H);
      draft.head(rec, head, lastOut);
      logSoftmax(rec, lp, head);
      topk(rec, topIds, topVals, lp, 10);
      const dIds = await rec.read(topIds) as Uint32Array;
      const vals = await rec.readF32(topVals);
      const ours = [...dIds].map((d) => d + draft.d2tHost[d]);
      const want = c0.draft_tokens.filter((_, i) => c0.parents[i] === 0);
      ok(want.length >= 1 && want.length <= 10, `trace ${ti}: ${want.length} root children`);
      // Same tokens in the same order; adjacent ranks may swap only when their scores tie within 1e-4.
      const score = new Map(ours.map((t, k) => [t, vals[k]]));
      for (let k = 0; k < want.length; k++) {
        if (ours[k] === want[k]) continue;
        const a = score.get(want[k]);
        ok(
          a !== undefined && Math.abs(a - vals[k]) < 1e-4,
          `trace ${ti}: rank ${k}: ours ${ours[k]} (${vals[k]}) vs EAGLE ${
            want[k]
          } (ours [${ours}], EAGLE [${want}])`,
        );
      }
      deepEqual(new Set(ours.slice(0, want.length)), new Set(want), `trace ${ti}: root children`);
      console.log(
        `trace ${ti}: N=${N} root ${root}; children [${want}] ✓ (top log-prob ${vals[0].toFixed(4)})`,
      );
    }
  } finally {
    kv.destroy();
    draftKv.destroy();
    draft.destroy();
    model.destroy();
    io.destroy();
    rec.destroy();
  }
});
