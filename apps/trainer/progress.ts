/**
 * Progress bars on stderr for the trainer's long phases (response regeneration, training). On a
 * terminal the bar redraws one line in place (`\r`, at most ~10 times a second) and ends with a
 * newline; when stderr is not a terminal (CI, pipes, log files) it prints plain lines instead — one
 * per `every` updates and the last — so logs stay readable and carry the same numbers.
 * @module
 */

/** Format seconds as `1h02m`, `3m05s` or `42s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** Where progress goes: a writable text sink and whether it is a terminal. */
export interface ProgressSink {
  /** Write text as is. */
  write(text: string): void;
  /** Redraw in place (true) or print plain lines (false). */
  isTerminal: boolean;
}

/** stderr, terminal-aware. */
export function stderrSink(): ProgressSink {
  const enc = new TextEncoder();
  return {
    write: (t) => {
      Deno.stderr.writeSync(enc.encode(t));
    },
    isTerminal: Deno.stderr.isTerminal(),
  };
}

/** A sink that drops everything (tests, library use). */
export const NULL_SINK: ProgressSink = { write: () => {}, isTerminal: false };

/** One progress bar: `label [#####.....] done/total pct  fields…  ETA`. */
export class ProgressBar {
  readonly #sink: ProgressSink;
  readonly #label: string;
  readonly #total: number;
  readonly #every: number;
  readonly #start = performance.now();
  readonly #startDone: number;
  #lastDraw = 0;
  #lastLen = 0;
  #updates = 0;
  #open = false;

  /**
   * A bar for `total` units starting at `startDone` (a resumed run: the ETA uses the rate of this
   * run only); plain-line mode prints every `every`-th update.
   */
  constructor(
    sink: ProgressSink,
    label: string,
    total: number,
    opts: { startDone?: number; every?: number } = {},
  ) {
    this.#sink = sink;
    this.#label = label;
    this.#total = Math.max(total, 1);
    this.#startDone = opts.startDone ?? 0;
    this.#every = Math.max(1, opts.every ?? 1);
  }

  /** The text of the bar at `done` units with extra `fields` (e.g. `loss 4.21`). */
  render(done: number, fields: string[] = []): string {
    const frac = Math.min(1, Math.max(0, done / this.#total));
    const width = 24;
    const filled = Math.round(frac * width);
    const elapsed = (performance.now() - this.#start) / 1000;
    const rate = (done - this.#startDone) / Math.max(elapsed, 1e-9);
    const eta = done >= this.#total ? 0 : rate > 0 ? (this.#total - done) / rate : NaN;
    const bar = this.#sink.isTerminal ? ` [${"#".repeat(filled)}${".".repeat(width - filled)}]` : "";
    return `${this.#label}${bar} ${done}/${this.#total} ${(frac * 100).toFixed(0).padStart(3)}%  ${
      fields.join("  ")
    }${fields.length ? "  " : ""}elapsed ${formatDuration(elapsed)}  ETA ${formatDuration(eta)}`;
  }

  /** Report progress; `force` draws now (the final update, log points). */
  update(done: number, fields: string[] = [], force = false): void {
    this.#updates++;
    const now = performance.now();
    if (this.#sink.isTerminal) {
      if (!force && now - this.#lastDraw < 100 && done < this.#total) return;
      this.#lastDraw = now;
      const text = this.render(done, fields);
      const pad = Math.max(0, this.#lastLen - text.length);
      this.#sink.write(`\r${text}${" ".repeat(pad)}`);
      this.#lastLen = text.length;
      this.#open = true;
    } else if (force || done >= this.#total || this.#updates % this.#every === 0) {
      this.#sink.write(this.render(done, fields) + "\n");
    }
  }

  /** Print a message above the bar (terminal) or as its own line. */
  log(message: string): void {
    if (this.#open) {
      this.#sink.write(`\r${" ".repeat(this.#lastLen)}\r${message}\n`);
      this.#lastLen = 0;
      this.#open = false;
    } else this.#sink.write(message + "\n");
  }

  /** End the bar's line (terminal mode). */
  done(): void {
    if (this.#open) this.#sink.write("\n");
    this.#open = false;
  }
}
