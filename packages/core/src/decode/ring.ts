/**
 * The token ring of a GPU-resident decode loop: a u32 tensor holding the prompt and then every token
 * the loop selects, written by the selection / acceptance kernels and read back a batch at a time.
 * It belongs to a decoder (or to whoever drives `generate`), not to a model, so several loops
 * can share one model; like a `KvCache` it is allocated once per sequence slot.
 * @module
 */
import type { GpuDevice } from "../gpu/device.ts";
import { BufferArena } from "../gpu/arena.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";

/** A u32 token ring with its own GPU buffer (call {@link TokenRing.destroy}). */
export class TokenRing {
  /** Entries (prompt + new tokens it can hold). */
  readonly capacity: number;
  /** (capacity) u32. */
  readonly tensor: Tensor;
  readonly #arena: BufferArena;

  /** Allocate a ring of `capacity` u32 entries. Throws {@link ShapeError} on a bad capacity. */
  constructor(gpu: GpuDevice, capacity: number, label = "token_ring") {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new ShapeError(`TokenRing: capacity must be an integer ≥ 1, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#arena = new BufferArena(gpu, 4 * capacity + 256, label);
    this.tensor = this.#arena.alloc([capacity], "u32", label);
  }

  /** Free the buffer (no recorded work may still use it). */
  destroy(): void {
    this.#arena.destroy();
  }
}
