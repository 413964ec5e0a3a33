/**
 * KV compaction after acceptance for a whole {@link KvCache} in one dispatch: every layer's keys and
 * values of the accepted path are moved to consecutive rows (`kv_compact_all` in
 * `kernels/accept.wgsl`, one workgroup per layer and K/V). A cycle used to pay one `kv_compact`
 * dispatch per target layer; this is the bookkeeping phase's largest dispatch count. Falls back to
 * the per-layer op when the cache's layers are not one buffer at a fixed stride.
 * @module
 */
import { ACCEPT_WGSL } from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import { Tensor } from "../gpu/tensor.ts";
import type { KvCache } from "../model/kv_cache.ts";
import { memoKernel } from "../ops/kernel_memo.ts";
import { kvCompact } from "./accept.ts";
import { STATE_WORDS } from "./state.ts";

/**
 * Element strides of `kv` when all its layers lie in one buffer at a fixed stride — layer l's keys
 * at k[0] + l·layer, its values at that + v — else null.
 */
export function kvCacheLayout(kv: KvCache): { layer: number; v: number } | null {
  const k0 = kv.k[0];
  const layer = kv.layers > 1 ? kv.k[1].offset - k0.offset : 0;
  const v = kv.v[0].offset - k0.offset;
  if (layer % 4 !== 0 || v % 4 !== 0 || v <= 0) return null;
  for (let l = 0; l < kv.layers; l++) {
    if (
      kv.k[l].buffer !== k0.buffer || kv.v[l].buffer !== k0.buffer ||
      kv.k[l].offset !== k0.offset + l * layer || kv.v[l].offset !== k0.offset + l * layer + v
    ) return null;
  }
  return { layer: layer / 4, v: v / 4 };
}

/**
 * Record the KV compaction of every layer of `kv` after `commitPath` / `acceptSample`: cache rows
 * base + path[j] → base + j for j = 1..L (base = state[STATE.base], L = state[STATE.lastAccept]),
 * keys and values. One dispatch when {@link kvCacheLayout} finds a fixed stride (and the span fits
 * one binding), else one per layer.
 */
export function kvCompactAll(rec: Recorder, kv: KvCache, state: Tensor, path: Tensor): void {
  state.expectShape([STATE_WORDS], "u32");
  const lay = kvCacheLayout(kv);
  const k0 = kv.k[0], vLast = kv.v[kv.layers - 1];
  const spanBytes = vLast.offset + vLast.byteLength - k0.offset;
  if (!lay || spanBytes > rec.gpu.limits.maxStorageBufferBindingSize) {
    for (let l = 0; l < kv.layers; l++) kvCompact(rec, kv.k[l], kv.v[l], state, path);
    return;
  }
  const span = new Tensor(k0.buffer, k0.offset, [spanBytes / 4], "f32", "kv.all");
  const kern = memoKernel(rec, "kv_compact_all", () => ({
    name: "kv_compact_all",
    code: ACCEPT_WGSL,
    entryPoint: "kv_compact_all",
    storage: ["rw", "rw", "rw"],
    params: "uuuu",
  }));
  rec.dispatch(kern, [span, state, path], [kv.rowWidth, path.size, lay.layer, lay.v], [2 * kv.layers]);
}
