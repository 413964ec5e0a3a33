/**
 * The EAGLE-3 draft layer's two normalised inputs in one dispatch (`kernels/draft_input.wgsl`):
 * input_layernorm(embedding(ids)) and hidden_norm(hidden), the hidden rows optionally gathered by a
 * GPU index (tree growth picks each frontier node's parent row from the previous level's output).
 * Decoding runs the draft once per tree level, so the four dispatches this replaces (embedding, two
 * RMSNorms, the row gather) are a large share of a level's; each row is normalised with exactly the
 * arithmetic of {@link rmsNorm} (same kernel shape per adapter), so the result is bit-identical to the
 * unfused ops. Training keeps the unfused ops: its backward reads the raw embedding.
 * @module
 */
import { DRAFT_INPUT_WGSL } from "@gto/kernels";
import { specialize } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";
import { grid1d } from "./dispatch.ts";
import { memoKernel, rowGrid, weightDefs } from "./kernel_memo.ts";

function overlaps(a: Tensor, b: Tensor): boolean {
  return a.buffer === b.buffer && a.offset < b.offset + b.byteLength && b.offset < a.offset + a.byteLength;
}

/** Hidden rows picked by a GPU index: row t of the input is `hidden[index[offset + t]]`. */
export interface DraftInputGather {
  /** u32 row indices into `hidden` (≥ offset + T entries); an index ≥ rows(hidden) reads NaNs. */
  index: Tensor;
  /** First entry of `index` used (default 0). */
  offset?: number;
  /** (T, H) f32: receives the picked raw rows (the layer's residual input). */
  out: Tensor;
}

/** Options of {@link draftInput}. */
export interface DraftInputOptions {
  /** Index of the first id in `ids` (default 0). */
  idsOffset?: number;
  /** Gather the hidden rows by a GPU index (default: row t is `hidden[t]`). */
  gather?: DraftInputGather;
  /** `workgroup` or `lanes` kernel, as {@link RmsNormOptions.kernel} (default: as rmsNorm picks). */
  kernel?: "workgroup" | "lanes";
}

/**
 * en (T, H) = rmsNorm(table[ids[idsOffset + t]], inputNorm) and hn (T, H) = rmsNorm(h_t, hiddenNorm)
 * with h_t = hidden[t] (or hidden[index[offset + t]] with `gather`, h_t also written to
 * `gather.out`). en and hn must live in one GPU buffer (they are bound as the span covering both, in
 * which no other tensor of the call may lie). table (V, H) f32 | f16; hidden (S, H) f32 (S ≥ T
 * without gather); inputNorm, hiddenNorm (H) f32. An id ≥ V or an index ≥ S gives a NaN row. Throws
 * {@link ShapeError} naming the tensor on a shape/dtype mismatch or an overlapping output.
 */
export function draftInput(
  rec: Recorder,
  en: Tensor,
  hn: Tensor,
  table: Tensor,
  ids: Tensor,
  hidden: Tensor,
  inputNorm: Tensor,
  hiddenNorm: Tensor,
  eps: number,
  opts: DraftInputOptions = {},
): void {
  if (table.shape.length !== 2) {
    throw new ShapeError(`draftInput: ${table.name} must be (V, H), got [${table.shape}]`);
  }
  const [V, H] = table.shape; // (V, H)
  table.expectShape([V, H], ["f32", "f16"]);
  if (en.shape.length !== 2) throw new ShapeError(`draftInput: ${en.name} must be (T, H), got [${en.shape}]`);
  const T = en.shape[0];
  en.expectShape([T, H], "f32"); // (T, H)
  hn.expectShape([T, H], "f32"); // (T, H)
  if (hn.buffer !== en.buffer) {
    throw new ShapeError(`draftInput: ${en.name} and ${hn.name} must share one GPU buffer`);
  }
  if (overlaps(en, hn)) throw new ShapeError(`draftInput: ${en.name} overlaps ${hn.name}`);
  // The span bound for both outputs (element offsets of en and hn inside it).
  const lo = Math.min(en.offset, hn.offset);
  const hi = Math.max(en.offset + en.byteLength, hn.offset + hn.byteLength);
  const normed = new Tensor(en.buffer, lo, [(hi - lo) / 4], "f32", `${en.name}+${hn.name}`);
  if (hidden.shape.length !== 2) {
    throw new ShapeError(`draftInput: ${hidden.name} must be (S, H), got [${hidden.shape}]`);
  }
  const S = hidden.shape[0];
  hidden.expectShape([S, H], "f32"); // (S, H)
  inputNorm.expectShape([H], "f32");
  hiddenNorm.expectShape([H], "f32");
  ids.expectShape(ids.shape, "u32");
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new ShapeError(`draftInput: eps must be ≥ 0, got ${eps}`);
  const off = opts.idsOffset ?? 0;
  if (!Number.isInteger(off) || off < 0 || off + T > ids.size) {
    throw new ShapeError(`draftInput: ${ids.name} has ${ids.size} ids, needs idsOffset ${off} + T ${T}`);
  }
  const g = opts.gather;
  const gOff = g?.offset ?? 0;
  if (g) {
    g.index.expectShape(g.index.shape, "u32");
    if (!Number.isInteger(gOff) || gOff < 0 || gOff + T > g.index.size) {
      throw new ShapeError(`draftInput: ${g.index.name} has ${g.index.size} entries, needs ${gOff} + ${T}`);
    }
    g.out.expectShape([T, H], "f32"); // (T, H)
  } else if (S < T) {
    throw new ShapeError(`draftInput: ${hidden.name} has ${S} rows < T=${T}`);
  }
  const outs = g ? [normed, g.out] : [normed];
  const ins = g
    ? [table, ids, hidden, g.index, inputNorm, hiddenNorm]
    : [table, ids, hidden, inputNorm, hiddenNorm];
  for (const o of outs) {
    for (const t of [...ins, ...outs]) {
      if (t !== o && overlaps(o, t)) {
        throw new ShapeError(`draftInput: ${o.name} overlaps ${t.name}`);
      }
    }
  }
  if (T === 0 || H === 0) return;
  const written = [ids, hidden, normed, ...(g ? [g.index, g.out] : [])];
  const defs = weightDefs(rec, "draftInput", table, written);
  const access = (w: Tensor): string => written.some((t) => t.buffer === w.buffer) ? "read_write" : "read";
  const gi = access(inputNorm), gh = access(hiddenNorm);
  const sw = opts.kernel === "lanes" || (opts.kernel === undefined && rec.gpu.isFallback);
  const key = `draft_input:${defs.WT}:${defs.WACCESS}:${gi}:${gh}:${g !== undefined}:${sw}`;
  const k = memoKernel(rec, key, () => ({
    name: `draft_input_${defs.WT}${g ? "_gather" : ""}${sw ? "_sw" : ""}`,
    code: specialize(DRAFT_INPUT_WGSL, {
      ENABLE: defs.ENABLE,
      WT: defs.WT,
      TACCESS: defs.WACCESS,
      GIACCESS: gi,
      GHACCESS: gh,
      SROW: g ? "return idx[p.idx_off + t];" : "return t;",
      HOUT: g ? "hout[(r - p.t) * p.h + i] = v;" : "",
    }),
    entryPoint: sw ? "main_sw" : "main",
    storage: [
      defs.WACCESS === "read" ? "read" : "rw",
      "rw",
      "rw",
      g ? "rw" : "unused",
      gi === "read" ? "read" : "rw",
      gh === "read" ? "read" : "rw",
      "rw",
      g ? "rw" : "unused",
    ],
    params: "uuuuuufuu",
  }));
  const grid = sw ? grid1d(2 * T, 8, rec.gpu.limits.maxComputeWorkgroupsPerDimension) : rowGrid(rec, 2 * T);
  rec.dispatch(
    k,
    [table, ids, hidden, g?.index ?? null, inputNorm, hiddenNorm, normed, g?.out ?? null],
    [T, H, V, off, S, gOff, eps, (en.offset - lo) / 4, (hn.offset - lo) / 4],
    grid,
  );
}
