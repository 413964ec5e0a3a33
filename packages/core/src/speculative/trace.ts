/**
 * Opt-in per-cycle traces of speculative decoding (for the playground): what tree the draft grew, which
 * path the target accepted, the bonus token and the tokens committed. The decoder records a copy of
 * those small buffers into a trace slot per cycle (`recordTrace`, kernels/trace.wgsl, one dispatch)
 * and reads the slots back with the batch's readback, so tracing adds no CPU round trip;
 * {@link decodeTraces} turns the words into {@link CycleTrace}s.
 * @module
 */
import { TRACE_WGSL } from "@gto/kernels";
import type { Recorder } from "../gpu/recorder.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { memoKernel } from "../ops/kernel_memo.ts";
import { ShapeError } from "../errors.ts";
import { STATE, STATE_WORDS } from "./state.ts";

/** One verification cycle (see `SpecGenerateOptions.onCycle`). */
export interface CycleTrace {
  /** Tree node token ids, node 0 = the root (the last committed token). */
  tokens: number[];
  /** Parent node of each node, −1 for the root. */
  parents: number[];
  /** Depth of each node (root 0). */
  depths: number[];
  /** Node indices of the accepted path, root first (root included). */
  accepted: number[];
  /** The bonus / correction token emitted after the accepted path (may be an eos id not emitted). */
  bonus: number;
  /**
   * Tokens this cycle committed to the output, in order: the accepted drafts, then the bonus, cut at
   * an eos id (excluded) or at maxTokens. The output's first token comes from the prefill (it is the
   * first cycle's root), so output = [first root, ...every cycle's newTokens].
   */
  newTokens: number[];
}

/** u32 words of one trace slot: tokens, parents, depths (N each), path (DP), seq (DP + 1), state. */
export function traceWords(N: number, dp: number): number {
  return 3 * N + 2 * dp + 1 + STATE_WORDS;
}

/** Buffers {@link recordTrace} copies (one tree, P = 1). */
export interface TraceSources {
  /** (N) u32 tree tokens. */
  tokens: Tensor;
  /** (N) i32 parents. */
  parents: Tensor;
  /** (N) i32 depths. */
  depths: Tensor;
  /** (DP) u32 accepted node indices (padded). */
  path: Tensor;
  /** (DP + 1) u32 [root, accepted drafts, bonus] (padded). */
  seq: Tensor;
  /** (STATE_WORDS) u32 decoder state after the commit. */
  state: Tensor;
}

/** Record one cycle's trace into `trace` (slots, traceWords(N, DP)) at row `slot`. One dispatch. */
export function recordTrace(rec: Recorder, src: TraceSources, trace: Tensor, slot: number): void {
  const N = src.tokens.size, dp = src.path.size;
  for (const t of [src.tokens, src.parents, src.depths]) t.expectShape([N], t.dtype);
  src.seq.expectShape([dp + 1], "u32");
  src.state.expectShape([STATE_WORDS], "u32");
  const W = traceWords(N, dp);
  if (trace.shape.length !== 2 || trace.shape[1] !== W) {
    throw new ShapeError(`recordTrace: ${trace.name} [${trace.shape}] must be (slots, ${W})`);
  }
  trace.expectShape(trace.shape, "u32");
  if (!Number.isInteger(slot) || slot < 0 || slot >= trace.shape[0]) {
    throw new ShapeError(`recordTrace: slot ${slot} outside ${trace.shape[0]} slots`);
  }
  const k = memoKernel(rec, "trace_record", () => ({
    name: "trace_record",
    code: TRACE_WGSL,
    entryPoint: "trace_record",
    storage: ["rw", "rw", "rw", "rw", "rw", "rw", "rw"],
    params: "uuuu",
  }));
  rec.dispatch(
    k,
    [src.tokens, src.parents, src.depths, src.path, src.seq, src.state, trace],
    [N, dp, STATE_WORDS, slot],
    [1],
  );
}

/**
 * Decode the trace slots of one readback batch. `output` is every output token read so far (the
 * batch's included) and `outLen` the output length before the batch's first cycle; cycles that ran
 * after `done` (no state change) are skipped. Returns the traces and the output length after the
 * batch.
 */
export function decodeTraces(
  words: Uint32Array,
  slots: number,
  N: number,
  dp: number,
  output: readonly number[],
  prev: { cycles: number; outLen: number },
): { traces: CycleTrace[]; cycles: number; outLen: number } {
  const W = traceWords(N, dp);
  const i32 = new Int32Array(words.buffer, words.byteOffset, words.length);
  const traces: CycleTrace[] = [];
  let { cycles, outLen } = prev;
  for (let c = 0; c < slots; c++) {
    const b = c * W;
    const st = words.subarray(b + 3 * N + 2 * dp + 1, b + W);
    if (st[STATE.cycles] <= cycles) continue; // ran after done: changed nothing
    cycles = st[STATE.cycles];
    const L = st[STATE.lastAccept];
    const path = words.subarray(b + 3 * N, b + 3 * N + dp);
    const seq = words.subarray(b + 3 * N + dp, b + 3 * N + 2 * dp + 1);
    const end = Math.min(st[STATE.outLen], st[STATE.maxTokens]);
    traces.push({
      tokens: Array.from(words.subarray(b, b + N)),
      parents: Array.from(i32.subarray(b + N, b + 2 * N)),
      depths: Array.from(i32.subarray(b + 2 * N, b + 3 * N)),
      accepted: Array.from(path.subarray(0, L + 1)),
      bonus: seq[L + 1],
      newTokens: output.slice(Math.min(outLen, end), end),
    });
    outLen = end;
  }
  return { traces, cycles, outLen };
}
