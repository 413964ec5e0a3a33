/**
 * The speculative decoder's GPU-resident state: a few u32 words that every kernel of a cycle reads
 * and the acceptance kernel advances, so cycles chain on the GPU without CPU round trips. The CPU
 * reads the state (with the token ring) only every few cycles.
 * @module
 */

/** Word indices of the state tensor (mirrored in kernels/accept.wgsl). */
export const STATE = {
  /** Tokens whose target KV is cached (prompt + accepted; the root is not). */
  committed: 0,
  /** Output tokens so far (the prefill's root counts). */
  outLen: 1,
  /** 1 once eos or maxTokens was reached. */
  done: 2,
  /** Verification cycles run. */
  cycles: 3,
  /** Draft KV rows kept. */
  draftLen: 4,
  /** Drafts accepted in the last cycle (bonus excluded). */
  lastAccept: 5,
  /** Prompt length P; ring[P] is the first output token. */
  promptLen: 6,
  /** Most output tokens. */
  maxTokens: 7,
  /** `committed` before the last cycle. */
  base: 8,
  /** `draftLen` before the last cycle. */
  draftBase: 9,
  /** The next cycle's root token (the last bonus; after prefill, the target's argmax). */
  root: 10,
} as const;

/** Number of u32 words in the state tensor. */
export const STATE_WORDS = 16;
