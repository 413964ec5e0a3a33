/**
 * Stop strings over streamed text. Text arrives in deltas; a stop string may straddle two deltas
 * (and so two tokens or two readback batches). The matcher therefore holds back the longest tail of
 * the text that is still the beginning of some stop string, releases text only once it can no longer
 * become part of a match, and on a match cuts the output right before the stop string (the stop
 * string itself is never emitted, as in the OpenAI API).
 * @module
 */

/** What {@link StopMatcher.push} returns. */
export interface StopPush {
  /** Text that is final and can be shown. */
  delta: string;
  /** True once a stop string has matched (the text ends before it; later pushes are ignored). */
  stopped: boolean;
}

/** Finds the first occurrence of any of a set of stop strings in a growing text. */
export class StopMatcher {
  readonly #stops: readonly string[];
  readonly #longest: number;
  #text = ""; // everything pushed (until a match: then cut before the stop string)
  #released = 0; // characters of #text already returned
  #stopped = false;

  /** A matcher for `stops` (empty strings are not allowed; an empty list never matches). */
  constructor(stops: readonly string[]) {
    if (stops.some((s) => s.length === 0)) throw new RangeError("StopMatcher: empty stop string");
    this.#stops = stops;
    this.#longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Whether a stop string has matched. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** The text released so far plus what is held back (the output; cut before a matched stop). */
  get text(): string {
    return this.#text;
  }

  /** Add `delta`: returns the text that is now final, and whether a stop string matched. */
  push(delta: string): StopPush {
    if (this.#stopped) return { delta: "", stopped: true };
    // A match must end inside the new text, so it starts at most longest − 1 characters before it.
    const from = Math.max(0, this.#text.length - this.#longest + 1);
    this.#text += delta;
    let at = -1;
    for (const s of this.#stops) {
      const i = this.#text.indexOf(s, from);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.#stopped = true;
      this.#text = this.#text.slice(0, at);
      return { delta: this.#take(this.#text.length), stopped: true };
    }
    return { delta: this.#take(this.#text.length - this.#heldBack()), stopped: false };
  }

  /** End of stream without a match: everything held back is final. */
  flush(): string {
    return this.#take(this.#text.length);
  }

  /** Length of the longest tail of the text that is a proper prefix of a stop string. */
  #heldBack(): number {
    const t = this.#text;
    for (let n = Math.min(this.#longest - 1, t.length); n > 0; n--) {
      const tail = t.slice(t.length - n);
      if (this.#stops.some((s) => s.startsWith(tail))) return n;
    }
    return 0;
  }

  #take(upTo: number): string {
    if (upTo <= this.#released) return "";
    const out = this.#text.slice(this.#released, upTo);
    this.#released = upTo;
    return out;
  }
}
