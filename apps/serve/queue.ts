/**
 * Admission in front of the one engine: a bounded FIFO of waiting requests and `slots` running ones
 * (1: the engine generates one sequence at a time). A request that finds the queue full, or waits longer
 * than the queue timeout, gets 503 `server_overloaded` with `Retry-After` (about how long the requests
 * ahead of it take, from a moving mean of recent service times), which the `openai` client honours.
 * Admission happens before a response starts, so every rejection is a real HTTP status. A waiter whose
 * client goes away leaves the queue at once. `release` is idempotent, so a slot cannot be freed twice
 * or leaked by an error path that also releases.
 * @module
 */
import { ApiError } from "./errors.ts";

/** Queue limits. */
export interface QueueOptions {
  /** Most requests waiting (not counting the running ones); 0 = reject whenever all slots are busy. */
  maxWaiting: number;
  /** Longest wait in the queue, in ms. */
  timeoutMs: number;
  /** Requests served at once (default 1). */
  slots?: number;
}

interface Waiter {
  grant: (release: () => void) => void;
}

/** Bounded FIFO admission with timeouts. */
export class AdmissionQueue {
  readonly #maxWaiting: number;
  readonly #timeoutMs: number;
  readonly #slots: number;
  #running = 0;
  readonly #waiters: Waiter[] = [];
  /** Moving mean of how long a slot is held, in seconds (seeded at 1 s). */
  #meanServiceS = 1;

  constructor(opts: QueueOptions) {
    this.#maxWaiting = opts.maxWaiting;
    this.#timeoutMs = opts.timeoutMs;
    this.#slots = opts.slots ?? 1;
  }

  /** Requests holding a slot. */
  get running(): number {
    return this.#running;
  }

  /** Requests waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Seconds a new request would likely wait (for `Retry-After`), at least 1. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((this.#waiters.length + 1) * this.#meanServiceS / this.#slots));
  }

  #overloaded(message: string): ApiError {
    return new ApiError(503, message, {
      type: "server_error",
      code: "server_overloaded",
      headers: { "retry-after": String(this.retryAfterSeconds()) },
    });
  }

  #makeRelease(): () => void {
    const start = performance.now();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const s = (performance.now() - start) / 1000;
      this.#meanServiceS = 0.8 * this.#meanServiceS + 0.2 * s;
      const next = this.#waiters.shift();
      if (next) next.grant(this.#makeRelease()); // hand the slot over: #running unchanged
      else this.#running--;
    };
  }

  /**
   * Wait for a slot (FIFO). Resolves to the slot's `release` function. Throws `ApiError` 503 when the
   * queue is full or the wait times out, and `signal.reason` when the caller gives up first.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#running < this.#slots) {
      this.#running++;
      return Promise.resolve(this.#makeRelease());
    }
    if (this.#waiters.length >= this.#maxWaiting) {
      return Promise.reject(
        this.#overloaded("The server is overloaded (the request queue is full); retry later."),
      );
    }
    return new Promise((resolve, reject) => {
      const leave = () => {
        const i = this.#waiters.indexOf(w);
        if (i >= 0) this.#waiters.splice(i, 1);
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        leave();
        reject(signal!.reason);
      };
      const w: Waiter = {
        grant: (release) => {
          leave();
          resolve(release);
        },
      };
      const timer = setTimeout(() => {
        leave();
        reject(
          this.#overloaded(
            `The request waited ${
              Math.round(this.#timeoutMs / 1000)
            } s in the queue without being served; retry later.`,
          ),
        );
      }, this.#timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(w);
    });
  }
}
