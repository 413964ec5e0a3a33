/**
 * A KV cache as a value: per-layer key and value tensors that a caller owns and passes to
 * `LlamaModel.forward` / `Eagle3Draft.forward`, so one model (weights + workspace) can serve several
 * sequences side by side — one cache per conversation in a server, a cache per prefix in GPU
 * training, the target and a reference draft next to each other.
 *
 * A cache is allocated once (its own arena, see {@link KvCache.allocate} or the models'
 * `createKvCache`) and reused for every request; nothing here is created per step.
 *
 * Length bookkeeping is deliberately *not* a field of the cache: forwards only record dispatches, and
 * in a speculative loop the committed length lives in a GPU state word that the CPU sees a few cycles
 * late, so a CPU-side `length` would be stale exactly when it matters. The caller passes the row of
 * the first token (`pos0` / `cacheRow`, plus a GPU-resident `dynamic` offset) to each forward and
 * keeps `pos0 + T ≤ capacity`; the cache only knows its shape.
 * @module
 */
import type { GpuDevice } from "../gpu/device.ts";
import { BufferArena } from "../gpu/arena.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { ShapeError } from "../errors.ts";

/** The shape of a {@link KvCache}. */
export interface KvCacheShape {
  /** Layers (one k and one v tensor each). */
  layers: number;
  /** Rows (token positions) per layer. */
  capacity: number;
  /** f32 per row: numKvHeads · headDim. */
  rowWidth: number;
}

/** Per-layer key/value caches of one sequence; owns its GPU memory (call {@link KvCache.destroy}). */
export class KvCache {
  /** Layers. */
  readonly layers: number;
  /** Rows per layer. */
  readonly capacity: number;
  /** f32 per row (numKvHeads · headDim). */
  readonly rowWidth: number;
  /** k[l]: (capacity, rowWidth) f32 keys of layer l (after RoPE). */
  readonly k: readonly Tensor[];
  /** v[l]: (capacity, rowWidth) f32 values of layer l. */
  readonly v: readonly Tensor[];
  readonly #arena: BufferArena;

  private constructor(arena: BufferArena, shape: KvCacheShape, k: Tensor[], v: Tensor[]) {
    this.#arena = arena;
    this.layers = shape.layers;
    this.capacity = shape.capacity;
    this.rowWidth = shape.rowWidth;
    this.k = k;
    this.v = v;
  }

  /**
   * Allocate a zero-filled cache of `shape` on `gpu` (one arena; each layer's k and v must fit one
   * storage binding). Throws {@link ShapeError} naming the bad field.
   */
  static allocate(gpu: GpuDevice, shape: KvCacheShape, label = "kv"): KvCache {
    for (const f of ["layers", "capacity", "rowWidth"] as const) {
      if (!Number.isInteger(shape[f]) || shape[f] < 1) {
        throw new ShapeError(`KvCache: ${f} must be an integer ≥ 1, got ${shape[f]}`);
      }
    }
    const { layers, capacity: S, rowWidth: W } = shape;
    const arena = new BufferArena(gpu, 2 * layers * (4 * S * W + 256), label);
    const k: Tensor[] = [], v: Tensor[] = [];
    try {
      for (let l = 0; l < layers; l++) {
        k.push(arena.alloc([S, W], "f32", `${label}.k.${l}`));
        v.push(arena.alloc([S, W], "f32", `${label}.v.${l}`));
      }
    } catch (e) {
      arena.destroy();
      throw e;
    }
    return new KvCache(arena, shape, k, v);
  }

  /** Bytes of GPU memory held. */
  get bytes(): number {
    return this.#arena.capacity;
  }

  /**
   * Throw {@link ShapeError} unless this cache has `layers` layers of `rowWidth` columns and at least
   * `rows` rows; `who` names the caller in the message.
   */
  expect(layers: number, rowWidth: number, rows: number, who: string): this {
    if (this.layers !== layers || this.rowWidth !== rowWidth) {
      throw new ShapeError(
        `${who}: KV cache has ${this.layers} layers × ${this.rowWidth} columns; the model needs ${layers} × ${rowWidth}`,
      );
    }
    if (rows > this.capacity) {
      throw new ShapeError(`${who}: rows [0, ${rows}) exceed the KV cache (${this.capacity} rows)`);
    }
    return this;
  }

  /** Free the GPU memory (no recorded work may still use it). */
  destroy(): void {
    this.#arena.destroy();
  }
}
