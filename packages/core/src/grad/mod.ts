/**
 * Gradients of the draft's ops, one floor above `../ops` (the forward ops they mirror) and below
 * `../model` (whose draft layer composes them, `model/draft_layer.ts`) and `../train` (the
 * objectives and the optimizer that use them): backward kernels of every op the draft trains
 * through, the fused soft cross-entropy, and the stateless AdamW / gradient-norm ops.
 *
 * Design choice: **explicit per-layer backward** (llm.c style), not a tape/autograd. The draft is
 * one decoder layer unrolled 7 times, so its backward is written by hand, op by op, in reverse order,
 * reusing the forward activations that were kept. Each backward op here mirrors one forward op of
 * `../ops` and takes the forward's inputs (and outputs where cheaper than recomputing):
 * - {@link linearBackward}: dx = dy·w, dw (+)= dyᵀ·x
 * - {@link rmsNormBackward}: dx, dw (+)= Σ_rows
 * - {@link ropeBackward}: inverse rotation, in place
 * - {@link attentionBackward}: GQA, causal or bitset (TTT, {@link tttMask}) mask; dk/dv summed over
 *   shared heads; recomputes the log-sum-exp (no forward variant needed)
 * - {@link swigluBackward}: over the fused [gate | up] projection
 * - {@link softCrossEntropy}: loss and dLogits in one dispatch
 * - {@link globalNormSq}, {@link adamw} (β 0.9/0.95, decoupled weight decay, torch bias correction,
 *   clip coefficient from the GPU norm)
 * Embeddings are frozen, so there is no embedding backward. Accumulation flags (`accumulateDw`,
 * `accumulateDx`, `accumulate`) let shared weights and multi-path activations sum their gradients
 * without extra add dispatches. CPU f64 references of all of it: `reference_bwd.ts` (exported from
 * `@gto/core/reference`).
 * @module
 */
export * from "./backward.ts";
export * from "./attention_bwd.ts";
export * from "./optim.ts";
