/**
 * A FIFO lock. One engine owns one GPU queue and one `Recorder`, which is not reentrant ("one per
 * stream of work"), so generations run one at a time, in the order they were asked for. Batch-1
 * serialisation is the design: the speculative decoder, like the paper's evaluation, is built for
 * one sequence at a time, and a second request gains nothing from interleaving on one GPU queue.
 * @module
 */

/** Serialises async tasks in arrival order. */
export class FifoLock {
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;

  /** Tasks queued or running. */
  get pending(): number {
    return this.#pending;
  }

  /** Run `task` after every task queued before it has settled; resolves/rejects with its result. */
  run<T>(task: () => Promise<T>): Promise<T> {
    this.#pending++;
    // The count drops before the caller sees the result, so `pending` is 0 once every call resolved.
    const result = this.#tail.then(task).finally(() => this.#pending--);
    this.#tail = result.then(() => {}, () => {});
    return result;
  }
}
