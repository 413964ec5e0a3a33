/**
 * Streaming detokenization: token ids arrive in batches (one per GPU readback) and the caller wants
 * text deltas that are final. Two things make `decode(new ids)` wrong:
 * - a multi-byte UTF-8 character may be split across tokens (byte-level BPE); decoding the first
 *   half yields U+FFFD, which must be held back until the rest arrives;
 * - decoding a suffix without its left context can differ from the same span inside the whole text
 *   (SentencePiece drops a leading "▁" space at the start of a decode; some decoders clean up spaces
 *   around punctuation).
 *
 * So each push decodes a window that keeps the previous emission's tokens as left context (the
 * scheme of Hugging Face text-generation-inference's `decode_token`: `decode(prefix + new)` minus
 * `decode(prefix)`), and only text that no longer ends in U+FFFD is emitted. The sum of the deltas
 * equals `decode(all ids)` for every decoder whose output is prefix-stable; {@link TextStream.flush}
 * returns whatever is left (a trailing U+FFFD included, when the output really ends with a broken
 * character).
 * @module
 */

/** The decode function of a tokenizer (special tokens skipped or not, as the caller chooses). */
export type DecodeFn = (ids: number[]) => string;

/** Incremental, UTF-8-safe detokenizer for one generation. */
export class TextStream {
  readonly #decode: DecodeFn;
  readonly #ids: number[] = [];
  #prefix = 0; // first token of the context window
  #read = 0; // tokens whose text has been emitted
  #shown = ""; // text of the tokens after #read emitted already (before a held-back U+FFFD)
  #text = ""; // everything emitted so far

  /** A stream over `decode` (e.g. `(ids) => tokenizer.decode(ids, { skipSpecialTokens: true })`). */
  constructor(decode: DecodeFn) {
    this.#decode = (ids) => (ids.length === 0 ? "" : decode(ids)); // some tokenizers reject []
  }

  /** Every token pushed so far. */
  get ids(): readonly number[] {
    return this.#ids;
  }

  /** The text emitted so far (the concatenation of every delta returned). */
  get text(): string {
    return this.#text;
  }

  /** Add `ids`; returns the new final text ("" while nothing new is complete). */
  push(ids: readonly number[]): string {
    for (const id of ids) this.#ids.push(id);
    if (this.#ids.length === this.#read) return "";
    const before = this.#decode(this.#ids.slice(this.#prefix, this.#read));
    const after = this.#decode(this.#ids.slice(this.#prefix));
    if (!after.startsWith(before)) return ""; // not prefix-stable here: wait for more context (or flush)
    const tail = after.slice(before.length);
    const safe = tail.replace(/\uFFFD+$/, ""); // may be half of a character split across tokens
    if (!safe.startsWith(this.#shown)) return "";
    const delta = safe.slice(this.#shown.length);
    if (safe.length === tail.length) {
      // Everything up to here is final: the new tokens become the next push's left context.
      this.#prefix = this.#read;
      this.#read = this.#ids.length;
      this.#shown = "";
    } else {
      this.#shown = safe;
    }
    this.#text += delta;
    return delta;
  }

  /** End of stream: the text not emitted yet, so that `text` equals the decode of every id. */
  flush(): string {
    const full = this.#decode(this.#ids);
    const delta = full.startsWith(this.#text) ? full.slice(this.#text.length) : "";
    this.#text += delta;
    this.#read = this.#prefix = this.#ids.length;
    this.#shown = "";
    return delta;
  }
}
